"""MeanFlow: learn the *average* velocity over an interval, and sample in one step.

Geng, Deng, Bai, Kolter & He 2025, "Mean Flows for One-step Generative Modeling" (arXiv 2505.13447),
official PyTorch code Gsunshine/py-meanflow (``meanflow/models/meanflow.py``), JAX code Gsunshine/meanflow.

**Convention.** The paper puts noise at t = 1 (z_t = (1 - t) x + t eps, velocity eps - x, sampling from
t = 1 down to 0). The course puts noise at t = 0 and data at t = 1 (``course_lib.flow``): x_t =
(1 - t) x_0 + t x_1, v = x_1 - x_0. Translated (t_course = 1 - t_paper), with the average anchored at
the EARLIER time a (the noise side) and taken up to the later time b >= a:

    u(z_a, a, b) = 1/(b - a) * int_a^b v(z_tau, tau) d tau,   so   z_b = z_a + (b - a) u(z_a, a, b),

and one-step sampling is x_1 = x_0 + u(x_0, 0, 1) (the paper's §4.1 and its 1-NFE sampler: z_0 = eps -
u(eps, 0, 1) in its convention). Differentiating (b - a) u = int_a^b v along the trajectory with
respect to a gives the **MeanFlow identity** (the paper's eq. 6, here with a PLUS sign because the anchor
is the early end; the paper's anchor t is the late, noisy end and carries a minus):

    u(z_a, a, b) = v(z_a, a) + (b - a) * d/da u(z_a, a, b),   d/da u = v . d_z u + d_a u,

a total derivative along the path with b fixed (the paper's §4.1). The training target (eq. 10) is

    u_tgt = v + (b - a) * (v . d_z u_theta + d_a u_theta),   with a stop-gradient on u_tgt,

and ``torch.func.jvp`` gives u_theta and d/da u_theta in one forward-mode pass with the primals
(z, a, b) and the tangents (v, 1, 0): 1 on the anchor, 0 on the end (written in the order (z, b, a),
the tangents are (v, 0, 1)). The paper's Algorithm 1 writes ``jvp(fn, (z, r, t), (v, 0, 1))``, its
anchor t last; py-meanflow's ``meanflow.py`` calls it with (z, t, r) and (v, 1, 0), the same tangents
in the other order, under ``autocast(enabled=False)`` (fp32).

| here | the paper |
| --- | --- |
| a (anchor, early, noise side) | t (anchor, late, noise side), a = 1 - t |
| b (end, data side) | r, b = 1 - r |
| u_here(z, a, b) | -u_paper(z, r, t) (velocities flip sign with time) |
| tangents (v, 1, 0) for (z, a, b) = (v, 0, 1) for (z, b, a) | (v, 0, 1) for (z, r, t) (Algorithm 1) = (v, 1, 0) for (z, t, r) |
| identity with + (b - a) du/da | identity with - (t - r) du/dt |
| times logit-normal(+0.4, 1) | logit-normal(-0.4, 1) (1 - sigmoid(x) = sigmoid(-x)) |

The network sees (a, b - a) (the paper's default (t, t - r), §4.3): :class:`MeanFlowNet` computes b - a
*inside* the function that ``jvp`` differentiates, so d/da also follows the interval's length. Its time
embedding must be smooth in a: a rounded or looked-up time gives d_a u = 0 without any error, and the
method silently turns into flow matching with a wrong target (:func:`time_derivative_error` measures it).

Usage::

    u = MeanFlowNet(nets.MLPConfig(dim=2, time_inputs=2, max_freq=30))
    l = loss(u, x1)                                            # x1 (B, 2) data; scalar
    x = sample(u, x0, steps=1)                                  # x0 (N, 2) noise -> (N, 2)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from course_lib import checks
from course_lib.flow.guidance import drop_labels


class MeanFlowNet(nn.Module):
    """u_theta(z, a, b [, y]): the average velocity from time a to time b >= a, a wrapper around a
    :class:`course_lib.nets.VelocityMLP` with ``time_inputs=2`` that feeds it (a, b - a).

    z (B, D); a, b: (B,) floats or numbers; y (B,) int64 labels or None (the null class).
    ``velocity(z, t)`` is u(z, t, t) = v(z, t), the instantaneous velocity, usable by every solver of
    :mod:`course_lib.flow`. Pass ``net`` (any module ``net(z, a, y, r=h)``) or a config.
    """

    def __init__(self, config=None, net: nn.Module | None = None):
        super().__init__()
        if net is None:
            from course_lib import nets
            config = config or nets.MLPConfig(dim=2, time_inputs=2)
            if config.time_inputs != 2:
                raise ValueError(f"MeanFlowNet needs MLPConfig(time_inputs=2) (a and b - a), got "
                                 f"time_inputs={config.time_inputs}")
            net = nets.VelocityMLP(config)
        self.net = net

    @property
    def null_class(self):
        return getattr(self.net, "null_class", None)

    def forward(self, z: torch.Tensor, a, b, y: torch.Tensor | None = None) -> torch.Tensor:
        checks.tensor(z, "z", ndim=2, floating=True, shape="(B, D)")
        a, b = _times(a, "a", z), _times(b, "b", z)                             # (B,), (B,)
        return self.net(z, a, y, r=b - a)                                        # (B, D)

    def velocity(self, z: torch.Tensor, t, y: torch.Tensor | None = None) -> torch.Tensor:
        """v(z, t) = u(z, t, t): the instantaneous velocity, for multi-step ODE solvers."""
        return self(z, t, t, y)


def _times(t, name: str, z: torch.Tensor, z_name: str = "z") -> torch.Tensor:
    """A time for every row of z: a number, a 0-d tensor, or a floating tensor of shape (B,) (no other
    shape, which would broadcast silently in b - a). Returns (B,) in z's dtype."""
    if isinstance(t, (int, float)) and not isinstance(t, bool):
        return torch.full((z.shape[0],), float(t), device=z.device, dtype=z.dtype)
    checks.tensor(t, name, ndim=(0, 1), floating=True, shape=f"({z.shape[0]},), one time per row of {z_name}")
    if t.dim() == 0:
        return t.to(z.dtype).expand(z.shape[0])                              # one time for every row
    checks.same_rows(t, name, z.shape[0], z_name)
    return t.to(z.dtype)


def _same_shape(x: torch.Tensor, name: str, ref: torch.Tensor, ref_name: str) -> torch.Tensor:
    checks.tensor(x, name, floating=True)
    if x.shape != ref.shape:
        raise ValueError(f"{name}: expected the shape of {ref_name}, {tuple(ref.shape)}, got {tuple(x.shape)} "
                         "(a different shape would broadcast silently)")
    return x


# ----------------------------------------------------------------------------- times

def sample_times(n: int, share_equal: float = 0.75, *, mean: float = 0.4, std: float = 1.0,
                 generator: torch.Generator | None = None, device=None):
    """Two times per sample, a <= b, shapes (n,) each.

    Two independent draws of logit-normal(mean, std) (SD3's sampler, Esser et al. 2024 §3.1), then
    a = min, b = max, then b = a for the first ``round(share_equal * n)`` samples (those are plain
    flow matching: the target is v itself). The paper's ImageNet default is logit-normal(-0.4, 1) with
    75% of the batch at r = t (Gsunshine/meanflow ``meanflow.py``, ``data_proportion = 0.75``); in the
    course's convention the mean flips sign: +0.4.
    """
    checks.positive_int(n, "n")
    checks.number(share_equal, "share_equal", 0.0, 1.0)
    checks.number(mean, "mean")
    checks.number(std, "std", 0.0)
    checks.generator(generator)
    where = "cpu" if generator is not None or device is None else device
    s = torch.sigmoid(mean + std * torch.randn(2, n, generator=generator, device=where))   # (2, n)
    a, b = s.min(0).values, s.max(0).values                                  # (n,), (n,)
    k = int(round(share_equal * n))
    b = torch.cat([a[:k], b[k:]])                                            # the first k: b = a
    return (a.to(device), b.to(device)) if device is not None else (a, b)


# ----------------------------------------------------------------------------- the target

def jvp_target(u: Callable, z: torch.Tensor, a: torch.Tensor, b: torch.Tensor, v: torch.Tensor, **extra):
    """The MeanFlow regression target by forward-mode differentiation (the paper's eq. 10, Alg. 1):

        (u_pred, du_da) = jvp(u, primals (z, a, b), tangents (v, 1, 0))
        u_tgt = v + (b - a) * du_da                   (course convention; the paper's has -(t - r))

    u(z, a, b, **extra) -> (B, D); z, v (B, D); a, b (B,). Returns (u_pred, u_tgt), both (B, D):
    u_pred keeps its graph to the parameters, u_tgt is detached (stop-gradient). Runs in fp32 outside
    autocast (bf16 JVPs are noisy; py-meanflow does the same)."""
    checks.tensor(z, "z", ndim=2, floating=True, shape="(B, D)")
    _same_shape(v, "v", z, "z")
    a, b = _times(a, "a", z), _times(b, "b", z)
    ones, zeros = torch.ones_like(a), torch.zeros_like(b)

    def f(z_, a_, b_):
        return u(z_, a_, b_, **extra)
    with torch.autocast(z.device.type, enabled=False):
        u_pred, du_da = torch.func.jvp(f, (z, a, b), (v, ones, zeros))        # (B, D) each, one pass
    u_tgt = v + (b - a)[:, None] * du_da                                     # (B, D)
    return u_pred, u_tgt.detach()


def adaptive_loss(u_pred: torch.Tensor, u_tgt: torch.Tensor, p: float = 1.0, c: float = 1e-3,
                  weight: torch.Tensor | None = None) -> torch.Tensor:
    """The paper's adaptively weighted loss (§4.3, "Loss metrics"; py-meanflow ``meanflow.py``):

        delta^2 = sum over dims (u_pred - sg(u_tgt))^2        (a SUM per sample, not a mean)
        loss    = mean over the batch of  delta^2 / sg((delta^2 + c)^p)

    p = 0 is plain L2, p = 0.5 the "robust" (pseudo-Huber-like) loss, p = 1 the paper's default
    (about a log of the error). (B, D), (B, D) -> scalar. ``weight`` (B,): a fixed weight per sample
    on top (α-Flow's, :mod:`course_lib.flow.alphaflow`)."""
    checks.tensor(u_pred, "u_pred", ndim=(2, 3, 4, 5), floating=True, shape="(B, D)")
    _same_shape(u_tgt, "u_tgt", u_pred, "u_pred")
    checks.number(p, "p", 0.0)
    checks.number(c, "c", 0.0)
    delta2 = (u_pred - u_tgt.detach()).pow(2).flatten(1).sum(1)              # (B,)
    w = (delta2.detach() + c).pow(p)                                         # (B,) weights, no gradient
    if weight is not None:
        checks.tensor(weight, "weight", ndim=1, floating=True, shape="(B,)")
        checks.same_rows(weight, "weight", u_pred.shape[0], "u_pred")
        w = w / weight.detach()
    return (delta2 / w).mean()


@dataclass
class Guidance:
    """Classifier-free guidance baked into training (the paper's §4.2, "Mean Flows with
    Guidance"; Gsunshine/meanflow ``meanflow.py`` guidance branch):

        v_guided = omega v + (1 - omega - kappa) u(z_a, a, a | null) + kappa u(z_a, a, a | y)

    for samples with a label, inside ``interval`` of the anchor time a (course convention); v for the
    others. The effective scale is omega / (1 - kappa). v_guided replaces v in the target AND as the JVP
    tangent. Sampling then uses the plain conditional u (no second pass)."""
    omega: float = 2.0
    kappa: float = 0.0
    interval: tuple = (0.0, 1.0)

    def __post_init__(self):
        checks.number(self.omega, "omega")
        checks.number(self.kappa, "kappa")
        if self.kappa == 1.0:
            raise ValueError("kappa: expected a number other than 1 (the effective scale is omega / (1 - kappa)), got 1.0")
        lo_hi = tuple(self.interval) if isinstance(self.interval, (tuple, list)) else ()
        if len(lo_hi) != 2 or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in lo_hi) \
                or not 0.0 <= lo_hi[0] <= lo_hi[1] <= 1.0:
            raise ValueError(f"interval: expected (low, high) with 0 <= low <= high <= 1, got {self.interval!r}")

    @property
    def scale(self) -> float:
        return self.omega / (1.0 - self.kappa)


def guided_velocity(u: Callable, z: torch.Tensor, a: torch.Tensor, v: torch.Tensor, y: torch.Tensor,
                    null_class: int, g: Guidance) -> torch.Tensor:
    """v_guided of :class:`Guidance` for a batch: z, v (B, D), a (B,), y (B,) labels after dropout
    (``null_class`` = dropped: those keep v). Computed without gradient. Returns (B, D)."""
    with torch.no_grad():
        keep = (y != null_class) & (a >= g.interval[0]) & (a <= g.interval[1])  # (B,)
        v_u = u(z, a, a, torch.full_like(y, null_class))                    # (B, D) u(z, a, a | null)
        mix = g.omega * v + (1 - g.omega - g.kappa) * v_u
        if g.kappa:
            mix = mix + g.kappa * u(z, a, a, y)
        return torch.where(keep[:, None], mix, v)


def loss(u: Callable, x1: torch.Tensor, *, x0: torch.Tensor | None = None, a: torch.Tensor | None = None,
         b: torch.Tensor | None = None, y: torch.Tensor | None = None, p_uncond: float = 0.0,
         guidance: Guidance | None = None, share_equal: float = 0.75, mean: float = 0.4, std: float = 1.0,
         p: float = 1.0, c: float = 1e-3, generator: torch.Generator | None = None,
         target: Callable | None = None, weighting: Callable | None = None,
         cond: torch.Tensor | None = None) -> torch.Tensor:
    """The MeanFlow loss for a batch of data x1 (B, D) (the paper's Algorithm 1, course convention):

        x0 ~ N(0, I);  (a, b) from :func:`sample_times`;  z = (1 - a) x0 + a x1;  v = x1 - x0
        u_pred, u_tgt = jvp_target(u, z, a, b, v)       (v -> v_guided with ``guidance``)
        loss = adaptive_loss(u_pred, u_tgt, p, c)

    x0, a, b may be given (tests, fixed pairs). y (B,) labels: a share ``p_uncond`` is replaced by the
    null class (10% in the paper). ``target`` and ``weighting`` replace :func:`jvp_target` and
    :func:`adaptive_loss` (notebook 10 passes its exercises' versions). ``cond`` (B, ...): a
    continuous condition per row, handed to u as the keyword ``cond`` and held constant by the JVP
    (a generation head's z, :mod:`course_lib.heads.meanflow_head`); its gradient flows through
    u_pred. Returns a scalar."""
    checks.tensor(x1, "x1", ndim=2, floating=True, shape="(B, D)")
    checks.rows(x1, "x1")
    checks.finite(x1, "x1")
    checks.same_place(u, x1, "x1")
    checks.number(p_uncond, "p_uncond", 0.0, 1.0)
    checks.generator(generator)
    if guidance is not None and not isinstance(guidance, Guidance):
        raise TypeError(f"guidance: expected a meanflow.Guidance or None, got {type(guidance).__name__}")
    n = x1.shape[0]
    if x0 is not None:
        checks.finite(_same_shape(x0, "x0", x1, "x1"), "x0")
    if y is not None:
        checks.tensor(y, "y", ndim=1, floating=False, shape="(B,), one label per row of x1")
        checks.same_rows(y, "y", n, "x1")
    if x0 is None:
        x0 = (torch.randn_like(x1) if generator is None else
              torch.randn(x1.shape, generator=generator, dtype=x1.dtype).to(x1.device))   # (B, D)
    if a is None or b is None:
        a, b = sample_times(n, share_equal, mean=mean, std=std, generator=generator, device=x1.device)
        a, b = a.to(x1.dtype), b.to(x1.dtype)
    a, b = _times(a, "a", x1, "x1"), _times(b, "b", x1, "x1")
    checks.value_range(a, "a", 0.0, 1.0)
    checks.value_range(b, "b", 0.0, 1.0)
    if (b < a).any():
        raise ValueError("b must be >= a for every sample (the average runs forward in time, noise to data)")
    z = (1 - a)[:, None] * x0 + a[:, None] * x1                              # (B, D) on the path at time a
    v = x1 - x0                                                              # (B, D) conditional velocity
    extra = {}                                                               # keywords of u, one row per row of x1
    if cond is not None:
        checks.tensor(cond, "cond", floating=True, shape="(B, ...), one condition per row of x1")
        checks.same_rows(cond, "cond", n, "x1")
        if guidance is not None:
            raise ValueError("guidance with cond: the baked guidance evaluates u with the null label y, "
                             "not with a null cond; guide a continuous condition at sampling")
        extra["cond"] = cond
    if y is not None:
        null = getattr(u, "null_class", None)
        if p_uncond > 0:
            if null is None:
                raise ValueError("p_uncond > 0 needs a conditional model with a null_class")
            y = drop_labels(y, p_uncond, null, generator)
        if guidance is not None:
            v = guided_velocity(u, z, a, v, y, null, guidance)
        extra["y"] = y
    elif guidance is not None:
        raise ValueError("guidance needs labels y")
    # rows with b = a need no JVP: their target is v itself (the (b - a) factor is 0), so only the
    # rows with b > a pay for forward-mode differentiation (the same loss, computed for less)
    far = b > a                                                              # (B,)
    u_pred, u_tgt = torch.empty_like(v), v.clone()
    if far.any():
        sub = {k: t[far] for k, t in extra.items()}
        u_pred[far], u_tgt[far] = (target or jvp_target)(u, z[far], a[far], b[far], v[far], **sub)
    if (~far).any():
        sub = {k: t[~far] for k, t in extra.items()}
        u_pred[~far] = u(z[~far], a[~far], a[~far], **sub)                  # u(z, a, a) = v(z, a)
    return (weighting or adaptive_loss)(u_pred, u_tgt, p, c)


# ----------------------------------------------------------------------------- sampling

@torch.no_grad()
def sample(u: Callable, x0: torch.Tensor, steps: int = 1, y: torch.Tensor | None = None,
           trajectory: bool = False):
    """Few-step MeanFlow sampling on the uniform grid 0 = t_0 < ... < t_steps = 1 (the paper's 1- and
    2-NFE samplers, translated): z_{t_{k+1}} = z_{t_k} + (t_{k+1} - t_k) u(z_{t_k},
    t_k, t_{k+1}). One step: x_1 = x_0 + u(x_0, 0, 1). x0 (N, D) noise; returns (N, D) (and the
    (steps + 1, N, D) trajectory)."""
    checks.tensor(x0, "x0", ndim=2, floating=True, shape="(N, D)")
    checks.rows(x0, "x0")
    checks.finite(x0, "x0")
    checks.same_place(u, x0, "x0")
    checks.positive_int(steps, "steps")
    if y is not None:
        checks.tensor(y, "y", ndim=1, floating=False, shape="(N,), one label per row of x0")
        checks.same_rows(y, "y", x0.shape[0], "x0")
    extra = {} if y is None else {"y": y}
    z, zs = x0, [x0]
    for k in range(steps):
        a, b = k / steps, (k + 1) / steps
        ta = torch.full((z.shape[0],), a, device=z.device, dtype=z.dtype)    # (N,)
        tb = torch.full((z.shape[0],), b, device=z.device, dtype=z.dtype)
        z = z + (b - a) * u(z, ta, tb, **extra)
        zs.append(z)
    return (z, torch.stack(zs)) if trajectory else z


# ----------------------------------------------------------------------------- diagnostics

def identity_residual(u: Callable, v: Callable, z: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> float:
    """How far u is from satisfying the MeanFlow identity, relative to its size:

        |u(z, a, b) - v(z, a) - (b - a) d/da u(z, a, b)| / |u|    (RMS over the batch)

    with d/da u by the JVP of :func:`jvp_target`. ~1e-15 in float64 for the exact average velocity of a
    flow whose instantaneous field v is known; large for a u with a wrong time derivative."""
    checks.tensor(z, "z", ndim=2, floating=True, shape="(B, D)")
    a, b = _times(a, "a", z), _times(b, "b", z)
    vz = v(z, a)
    u_pred, u_tgt = jvp_target(u, z, a, b, vz)
    return float((u_pred - u_tgt).pow(2).mean().sqrt() / u_pred.pow(2).mean().sqrt().clamp_min(1e-30))


def time_derivative_error(u: Callable, z: torch.Tensor, a: torch.Tensor, b: torch.Tensor, eps: float = 1e-3) -> float:
    """d_a u by the JVP (tangents (0, 1, 0)) against a central finite difference of step ``eps``,
    relative RMS error. A time embedding that rounds or looks up t gives a JVP derivative of 0 but a
    finite difference that is not (pitfall 5 of py-meanflow's notes): the error is then ~1."""
    checks.tensor(z, "z", ndim=2, floating=True, shape="(B, D)")
    a, b = _times(a, "a", z), _times(b, "b", z)
    if checks.number(eps, "eps") <= 0:
        raise ValueError(f"eps: expected a step > 0, got {eps}")
    with torch.no_grad():
        fd = (u(z, a + eps, b) - u(z, a - eps, b)) / (2 * eps)                # (B, D)
    _, jv = torch.func.jvp(lambda a_: u(z, a_, b), (a,), (torch.ones_like(a),))
    jv = jv.detach()
    return float((jv - fd).pow(2).mean().sqrt() / fd.pow(2).mean().sqrt().clamp_min(1e-30))
