"""The MeanFlow head: a small AdaLN MLP that jumps from noise to a token in one pass, conditioned on z.

The flow head (:mod:`~course_lib.heads.flow_head`) learns the instantaneous velocity v(x_t, t | z)
and needs several Euler passes per token; the lecture's open question is how to cut them. This head
learns the AVERAGE velocity over an interval instead, MeanFlow (Geng, Deng, Bai, Kolter & He 2025,
"Mean Flows for One-step Generative Modeling", arXiv 2505.13447, §4.1; official PyTorch code
Gsunshine/py-meanflow ``meanflow/models/meanflow.py``), with the transformer's output z as its
condition, in the shape of MAR's ``DiffLoss`` (Li et al. 2024, §3.1; LTH14/mar ``models/diffloss.py``:
``loss(x, z)`` trains, ``sample(z)`` draws). In the course's convention (t = 0 noise, t = 1 data;
the paper's runs the other way, see :mod:`course_lib.flow.meanflow` for the translation):

    u(x_a, a, b | z) = 1/(b - a) int_a^b v(x_tau, tau | z) d tau,     so   x_b = x_a + (b - a) u,

trained with the MeanFlow identity u = v + (b - a) d/da u (the paper's eq. 6, here with a plus
sign) as a regression target with a stop-gradient (eq. 10, Algorithm 1) and the paper's adaptive
weight (§4.3, p = 1): :func:`course_lib.flow.meanflow.loss` itself, with z handed to the network as
its ``cond`` and held fixed by the JVP. The times are those of the official code's small-scale run
(py-meanflow ``meanflow/scripts/cifar10_v0.sh``, ``models/time_sampler.py``: two logit-normal(-2, 2)
draws in its convention, logit-normal(+2, 2) in the course's, b != a for 75% of the draws), not
the ImageNet default (logit-normal(-0.4, 1), b != a for 25%), with which a small head trained as
long on the two-mode toy of tests/test_meanflow_head.py left most of its one-pass samples between
the modes. A caution that toy gave too: with these times, the same head trained with b = a only
(plain flow matching, no JVP term) also put its one-pass samples on the modes; the times rarely
reach a = 0, and what the network extrapolates there is not the flow-matching mean. So what the
MeanFlow target adds has to be measured against that ablation (``share_equal=1``), not assumed.
Under notebook 09's transformer (notebook 11, :data:`course_lib.recipes.generation_heads.ONE_STEP`) these
defaults trained badly in lecture mode; the recipe passes p = 0.5 and b = a for 75% of the draws
(measured there, with the figures in its comment).
As the flow head, each token is drawn ``batch_mul`` = 4 times with its own (a, b, x_0) (MAR's
``diffusion_batch_mul``): the transformer ran once, the head is cheap.
The gradient reaches the transformer through z (through u_pred; the target is detached).

The network is the heads' :class:`~course_lib.heads.adaln.AdaLNMLP` (MAR's ``SimpleMLPAdaLN``): its
own time input embeds the anchor a, and the interval b - a gets a second embedding of the same
kind (Fourier features, then an MLP) appended to z, so the condition of every block is
cond(z) + phi(a) + psi(b - a), the paper's (t, t - r) conditioning (§4.3) with the two embeddings
summed. b - a is computed inside the function the JVP differentiates, so d/da follows it too.

Sampling, ``steps`` passes per token (default 1): x_1 = x_0 + u(x_0, 0, 1 | z) with x_0 ~ N(0, I),
or n uniform steps of :func:`course_lib.flow.meanflow.sample`. ``temperature`` scales x_0, as the
flow head's.

What is simplified or changed, and why:

* Guidance. MeanFlow bakes classifier-free guidance into training (§4.2: the target's v becomes
  omega v + (1 - omega) u(x_a, a, a | null)) and samples with one pass. That needs the
  transformer's null-prompt condition for every training token, which ``loss(x, z)`` does not
  receive. This head guides at sampling as the flow head does, on its output at every step, u_u +
  w (u_c - u_u) with z and z_u: two passes per step, and only an approximation, since the average
  velocity of the guided field is not the guided mix of the two averages.
* The paper's networks are DiT/U-Net image models and the paper has no per-token head; the head,
  its sizes, ``batch_mul`` and the summed interval embedding are the course's, as is the Fourier
  time embedding of the AdaLN MLP (see :mod:`~course_lib.heads.adaln`).
* MAR's DiffLoss is a 1000-step DDPM noise predictor with a learned variance; here, as in the flow
  head, there is no variance term.

Usage::

    head = MeanFlowHead(token_dim=8, cond_dim=64)
    loss = head.loss(x, z)                       # x (N, 8) tokens, z (N, 64) from the transformer
    x = head.sample(z, generator=g)              # (N, 8), one pass of the head per token
"""
from __future__ import annotations

import torch
from torch import nn

from course_lib import checks
from course_lib.flow import meanflow
from course_lib.heads.adaln import AdaLNMLP
from course_lib.heads.base import Head
from course_lib.nets.mlp import FourierTime


class MeanFlowHead(Head):
    """u(x_a, a, b | z): an :class:`~course_lib.heads.adaln.AdaLNMLP` of ``depth`` blocks of ``width``
    whose condition is z and an embedding of b - a, trained with :func:`course_lib.flow.meanflow.loss`.

    token_dim: D, the size of a token; cond_dim: C, the size of z; batch_mul: (a, b, x_0) draws per
    token in :meth:`loss`; share_equal, mean, std: the times (:func:`course_lib.flow.meanflow.sample_times`);
    p, c: the adaptive weight (:func:`course_lib.flow.meanflow.adaptive_loss`); default_steps:
    passes of :meth:`sample` when none are given (1: one-step generation).
    """

    def __init__(self, token_dim: int, cond_dim: int, width: int = 128, depth: int = 3, batch_mul: int = 4,
                 share_equal: float = 0.25, mean: float = 2.0, std: float = 2.0, p: float = 1.0,
                 c: float = 1e-3, default_steps: int = 1, time_features: int = 64, max_freq: float = 100.0):
        super().__init__(token_dim, cond_dim)
        width = checks.positive_int(width, "width")
        self.batch_mul = checks.positive_int(batch_mul, "batch_mul")
        self.default_steps = checks.positive_int(default_steps, "default_steps")
        self.times = dict(share_equal=checks.number(share_equal, "share_equal", 0.0, 1.0),
                          mean=checks.number(mean, "mean"), std=checks.number(std, "std", 0.0))
        self.weighting = dict(p=checks.number(p, "p", 0.0), c=checks.number(c, "c", 0.0))
        self.interval_embed = nn.Sequential(FourierTime(time_features, max_freq), nn.Linear(time_features, width),
                                            nn.SiLU(), nn.Linear(width, width))          # psi(b - a)
        for i in (1, 3):                                                     # as the AdaLN MLP's phi(a)
            nn.init.normal_(self.interval_embed[i].weight, std=0.02)
            nn.init.zeros_(self.interval_embed[i].bias)
        self.net = AdaLNMLP(token_dim, cond_dim + width, width, depth, time=True,
                            time_features=time_features, max_freq=max_freq)

    def forward(self, x_a: torch.Tensor, a: torch.Tensor, b: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """The average velocity u(x_a, a, b | cond): x_a (N, D), a, b (N,), cond (N, C) -> (N, D)."""
        c = torch.cat([cond, self.interval_embed(b - a)], dim=-1)            # (N, C + W): z and psi(b - a)
        return self.net(x_a, c, a)                                           # phi(a) added inside

    def nfe(self, steps: int | None = None) -> int:
        return self.default_steps if steps is None else checks.positive_int(steps, "steps")

    def flat_loss(self, x, z, generator=None):
        """MeanFlow loss with ``batch_mul`` draws of (a, b, x_0) per token; x (N, D), z (N, C)."""
        x1 = x.repeat(self.batch_mul, 1)                                     # (M N, D): MAR's batch_mul
        cond = z.repeat(self.batch_mul, 1)                                   # (M N, C)
        return meanflow.loss(self, x1, cond=cond, generator=generator, **self.times, **self.weighting)

    def flat_sample(self, z, steps, generator, z_uncond, cfg_scale, temperature):
        """``steps`` MeanFlow jumps from noise (t = 0) to a token (t = 1); one head pass each (two guided)."""
        x0 = temperature * self._noise(z.shape[0], self.token_dim, generator, z)   # (N, D)

        def u(x, a, b):                                                      # (N, D), (N,), (N,) -> (N, D)
            if z_uncond is None:
                return self(x, a, b, z)
            u_c, u_u = self(*(torch.cat([t, t]) for t in (x, a, b)), torch.cat([z, z_uncond])).chunk(2)
            return u_u + cfg_scale * (u_c - u_u)                             # guidance on the output
        return meanflow.sample(u, x0, steps)                                 # (N, D)
