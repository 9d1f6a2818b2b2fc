"""α-Flow: a curriculum from trajectory flow matching to MeanFlow.

Zhang, Siarohin, Menapace, Vasilkovsky, Tulyakov, Qu & Skorokhodov, "AlphaFlow: Understanding and
Improving MeanFlow Models" (ICLR 2026, arXiv 2510.20771); official code snap-research/alphaflow
(``src/training/loss.py``: ``AlphaFlowLoss.forward``, ``_compute_mean_velocity_d``, ``get_ratio``;
the schedules in ``infra/experiments/experiments-alphaflow.yaml``).

**Why.** The MeanFlow loss splits into *trajectory flow matching* (regress u(z, a, b) on the
conditional velocity v for every interval) and *trajectory consistency* (the part that comes from
the derivative term); the paper measures their gradients to be strongly negatively correlated, so
training from scratch pulls two ways and converges slowly. α-Flow is a family of targets between
the two, and the curriculum anneals from the easy end to MeanFlow.

**The α-Flow target** (the paper's loss L_α; translated to the course's convention, t = 0 noise,
anchor a on the noise side, end b >= a, as in :mod:`course_lib.flow.meanflow`). For a step ratio
α in (0, 1], take a point a fraction α of the way from a to b along the *conditional* path and ask
the (stop-gradient) network for the rest:

    a' = a + α (b - a),     z' = z_a + α (b - a) v                     (v = x_1 - x_0)
    u_tgt = α v + (1 - α) sg(u_θ(z', a', b))

* α = 1: u_tgt = v for every interval: **trajectory flow matching** (no extra network pass);
* 0 < α < 1: a consistency target over a finite step, of the Shortcut model's kind (at α = 1/2,
  two half steps make one step), which the paper's family includes;
* α -> 0: the finite difference becomes the derivative, and the target becomes MeanFlow's
  v + (b - a) du/da (:func:`course_lib.flow.meanflow.jvp_target`). The official code switches to that
  JVP target once α falls below ``clamp`` (0.005), and so does :func:`loss`.

Rows with b = a are plain flow matching (target v) at every α. The official code weights the
rows with 0 < α and b > a by α (``weight_d = alpha``), the others by 1; :func:`loss` does the same,
then applies MeanFlow's adaptive weight (p, c) of :func:`course_lib.flow.meanflow.adaptive_loss`.

**The curriculum** (``get_ratio`` with ``scheduler: sigmoid``): over the training steps between
``start`` and ``end`` (fractions of the run),

    α(k) = 1 - sigmoid(γ (k - k_mid) / (k_end - k_start)),   γ = 25,

α = 1 before, 0 after, and α is clamped to 1 above 1 - clamp and to 0 (MeanFlow) below clamp. The
paper's ImageNet B/2 run anneals over the whole run (start 0, end 1); its XL/2 run from 50% to 83%.

Usage::

    al = alpha_schedule(step, steps)                         # float in [0, 1]
    l = loss(u, x1, al, share_equal=0.5, mean=0.0, std=2.0)  # scalar, as meanflow.loss
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from course_lib import checks
from course_lib.flow import meanflow as mf


def alpha_schedule(step: int, steps: int, *, start: float = 0.0, end: float = 1.0, gamma: float = 25.0,
                   clamp: float = 0.005) -> float:
    """α at training step ``step`` of ``steps`` (the official sigmoid scheduler, see the module
    docstring): 1 before ``start * steps``, 0 after ``end * steps``, a sigmoid in between, clamped to
    1 or 0 within ``clamp`` of either end."""
    checks.positive_int(steps, "steps")
    checks.positive_int(step, "step", 0)
    checks.number(start, "start", 0.0, 1.0)
    checks.number(end, "end", start, 1.0)
    checks.number(gamma, "gamma", 0.0)
    checks.number(clamp, "clamp", 0.0, 0.5)
    k0, k1 = start * steps, end * steps
    if step < k0:
        alpha = 1.0
    elif step > k1 or k1 == k0:
        alpha = 0.0
    else:
        progress = (step - (k0 + k1) / 2) / (k1 - k0)                       # in [-1/2, 1/2]
        alpha = 1.0 - 1.0 / (1.0 + math.exp(-gamma * progress))
    if alpha < clamp:
        return 0.0
    return 1.0 if alpha > 1.0 - clamp else alpha


def alpha_target(u: Callable, z: torch.Tensor, a: torch.Tensor, b: torch.Tensor, v: torch.Tensor,
                 alpha: float, **extra) -> torch.Tensor:
    """The α-Flow target for rows with b > a (see the module docstring), without gradient:

        u_tgt = α v + (1 - α) u(z + α (b - a) v, a + α (b - a), b)

    u(z, a, b, **extra) -> (B, D); z, v (B, D); a, b (B,); 0 < α <= 1. Returns (B, D). At α = 1 the
    network is not called (the target is v)."""
    checks.number(alpha, "alpha", 0.0, 1.0)
    if alpha == 0.0:
        raise ValueError("alpha: expected a number in (0, 1]; at alpha = 0 the target is MeanFlow's "
                         "(meanflow.jvp_target)")
    if alpha == 1.0:
        return v.detach().clone()
    h = alpha * (b - a)                                                      # (B,) the first part of the step
    with torch.no_grad():
        rest = u(z + h[:, None] * v, a + h, b, **extra)                      # (B, D) u from a' to b
    return (alpha * v + (1 - alpha) * rest).detach()


def loss(u: Callable, x1: torch.Tensor, alpha: float, *, share_equal: float = 0.5, mean: float = 0.0,
         std: float = 2.0, p: float = 0.0, c: float = 1e-3, generator: torch.Generator | None = None) -> torch.Tensor:
    """The α-Flow loss on a batch x1 (B, D) at step ratio ``alpha`` (course convention):

        x0 ~ N(0, I);  (a, b) from meanflow.sample_times;  z = (1 - a) x0 + a x1;  v = x1 - x0
        target v where b = a, :func:`alpha_target` where b > a (MeanFlow's JVP target at alpha = 0)
        loss = mean of w * |u(z, a, b) - target|^2 / sg((|.|^2 + c)^p),  w = alpha where b > a, else 1

    At ``alpha = 0`` this is exactly :func:`course_lib.flow.meanflow.loss`. Returns a scalar."""
    checks.number(alpha, "alpha", 0.0, 1.0)
    if alpha == 0.0:
        return mf.loss(u, x1, share_equal=share_equal, mean=mean, std=std, p=p, c=c, generator=generator)
    checks.tensor(x1, "x1", ndim=2, floating=True, shape="(B, D)")
    checks.rows(x1, "x1")
    checks.finite(x1, "x1")
    checks.same_place(u, x1, "x1")
    checks.generator(generator)
    x0 = (torch.randn_like(x1) if generator is None else
          torch.randn(x1.shape, generator=generator, dtype=x1.dtype).to(x1.device))      # (B, D)
    a, b = mf.sample_times(x1.shape[0], share_equal, mean=mean, std=std, generator=generator, device=x1.device)
    a, b = a.to(x1.dtype), b.to(x1.dtype)                                    # (B,), (B,)
    z = (1 - a)[:, None] * x0 + a[:, None] * x1                              # (B, D)
    v = x1 - x0                                                              # (B, D)
    far = b > a                                                              # (B,)
    tgt = v.clone()
    if far.any():
        tgt[far] = alpha_target(u, z[far], a[far], b[far], v[far], alpha)
    weight = torch.where(far, torch.full_like(a, alpha), torch.ones_like(a))  # (B,)
    return mf.adaptive_loss(u(z, a, b), tgt, p, c, weight=weight)
