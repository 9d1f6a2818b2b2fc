"""The probability path of flow matching, its time sampler and its loss.

**Time convention of the whole course:** t = 0 is noise, t = 1 is data,

    x_t = (1 - t) x_0 + t x_1,        x_0 ~ N(0, I) (noise),  x_1 ~ data,
    d x_t / d t = x_1 - x_0,          the regression target.

This is the conditional optimal-transport path of Lipman et al. 2023, "Flow Matching for Generative
Modeling" (eq. 20-23; with sigma_min = 0 the ``CondOTScheduler`` of facebookresearch/flow_matching,
``flow_matching/path/scheduler/scheduler.py``) and the straight line of Liu et al. 2023 (rectified
flow, eq. 1). Stable Diffusion 3 (Esser et al. 2024) and MeanFlow put noise at t = 1 instead: flip
t before mixing code from them.

Usage::

    s = CondOTPath().sample(x_0, x_1, t)           # PathSample: s.x_t, s.dx_t, both (N, D)
    l = loss(model, x1)                             # E || v_theta(x_t, t) - (x_1 - x_0) ||^2
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from course_lib import checks
from course_lib.flow.guidance import drop_labels

TIME_SAMPLERS = ("uniform", "logit_normal")


@dataclass
class PathSample:
    """A batch drawn from the path: x_0 (noise), x_1 (data), t, x_t, and the target dx_t.
    x_0, x_1, x_t, dx_t: (N, D); t: (N,)."""
    x_0: torch.Tensor
    x_1: torch.Tensor
    t: torch.Tensor
    x_t: torch.Tensor
    dx_t: torch.Tensor


class CondOTPath:
    """The conditional optimal-transport path (Lipman et al. 2023, eq. 22 for x_t, eq. 23 for its
    velocity):

        x_t  = (1 - (1 - sigma_min) t) x_0 + t x_1,
        dx_t = x_1 - (1 - sigma_min) x_0.

    With ``sigma_min = 0`` (the default, as in facebookresearch/flow_matching's ``CondOTScheduler``
    and in rectified flow) this is the straight line x_t = (1 - t) x_0 + t x_1 with constant
    velocity x_1 - x_0. ``sample(x_0, x_1, t)`` takes x_0, x_1 (N, D) and t (N,) and returns a
    :class:`PathSample`.
    """

    def __init__(self, sigma_min: float = 0.0):
        if not 0.0 <= sigma_min < 1.0:
            raise ValueError(f"sigma_min must be in [0, 1), got {sigma_min!r}")
        self.sigma_min = float(sigma_min)

    def sample(self, x_0: torch.Tensor, x_1: torch.Tensor, t: torch.Tensor) -> PathSample:
        checks.tensor(x_0, "x_0", ndim=2, floating=True, shape="(N, D)")
        checks.tensor(x_1, "x_1", ndim=2, floating=True, shape="(N, D)")
        if x_0.shape != x_1.shape:
            raise ValueError(f"x_0 and x_1 must have the same shape, got {tuple(x_0.shape)} and {tuple(x_1.shape)}")
        n = x_0.shape[0]
        checks.tensor(t, "t", floating=True, shape=f"({n},)")
        if t.shape != (n,):
            raise ValueError(f"t must have shape ({n},) (one time per point), got {tuple(t.shape)}")
        k = 1.0 - self.sigma_min
        tt = t.to(x_0.dtype)[:, None]                                           # (N, 1) broadcasts over D
        x_t = (1.0 - k * tt) * x_0 + tt * x_1                                   # (N, D)
        dx_t = x_1 - k * x_0                                                    # (N, D)
        return PathSample(x_0=x_0, x_1=x_1, t=t, x_t=x_t, dx_t=dx_t)

    def __repr__(self):
        return f"CondOTPath(sigma_min={self.sigma_min})"


def fm_pair(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor):
    """The flow-matching training pair of notebook 08's first exercise: the point
    x_t = (1 - t) x0 + t x1 of :class:`CondOTPath` and its target velocity v = x1 - x0.

    x0 (N, D) noise, x1 (N, D) data, t (N,) in [0, 1]. Returns (x_t, v), both (N, D).
    """
    _pair_of(x0, x1)
    s = CondOTPath().sample(x0, x1, t)
    return s.x_t, s.dx_t


def _pair_of(x0, x1) -> None:
    """x0 and x1: (N, D) float tensors of one shape, named as the caller passed them."""
    checks.tensor(x0, "x0", ndim=2, floating=True, shape="(N, D)")
    checks.tensor(x1, "x1", ndim=2, floating=True, shape="(N, D)")
    if x0.shape != x1.shape:
        raise ValueError(f"x0 and x1 must have the same shape, got {tuple(x0.shape)} and {tuple(x1.shape)}")


def sample_time(n: int, kind: str = "uniform", *, mean: float = 0.0, std: float = 1.0,
                generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """n training times in (0, 1), shape (n,).

    * ``"uniform"``: t ~ U(0, 1) (Lipman et al. 2023, eq. 23);
    * ``"logit_normal"``: t = sigmoid(u), u ~ N(mean, std^2) (Esser et al. 2024, SD3, §3.1; best
      was mean 0, std 1). In *this* convention (t = 1 is data) a negative mean puts more weight near
      the noise end; SD3 and MeanFlow choose their mean in the opposite convention.
    """
    checks.positive_int(n, "n")
    checks.one_of(kind, "kind", TIME_SAMPLERS)
    checks.generator(generator)
    # a seeded generator lives on the CPU: draw there and move; without one, draw on the device
    where = "cpu" if generator is not None or device is None else device
    if kind == "uniform":
        t = torch.rand(n, generator=generator, device=where)
    else:
        checks.number(std, "std")
        if not std > 0:
            raise ValueError(f"std: expected a number > 0, got {std!r}")
        t = torch.sigmoid(mean + std * torch.randn(n, generator=generator, device=where))
    return t.to(device) if device is not None else t


def loss(model: Callable, x1: torch.Tensor, *, x0: torch.Tensor | None = None, t: torch.Tensor | None = None,
         y: torch.Tensor | None = None, p_uncond: float = 0.0, time: str = "uniform",
         path: CondOTPath | None = None, generator: torch.Generator | None = None, **time_kw) -> torch.Tensor:
    """Conditional flow-matching loss (Lipman et al. 2023, eq. 23):

        L = E_{t, x_0, x_1} || v_theta(x_t, t [, y]) - (x_1 - x_0) ||^2,   mean over batch and dims.

    x1 (N, D) data. Optional: x0 (N, D) noise (drawn from N(0, I) if None; reflow and minibatch OT
    pass their pairs), t (N,) (drawn with :func:`sample_time` ``time`` if None), y (N,) labels, of
    which a fraction ``p_uncond`` is replaced by ``model.null_class`` (label dropout for
    classifier-free guidance, Ho & Salimans 2022 §3.2). Returns a scalar. Data on another device
    than the model, or in another floating dtype, is an error naming the argument (x1, x0, t, y).

    Why it never reaches 0: for a given x_t many pairs (x_0, x_1) pass through it, and the best
    v is their *average* direction E[x_1 - x_0 | x_t] (Lipman et al. 2023, Theorem 2); the loss
    left over is the variance around it.
    """
    checks.tensor(x1, "x1", ndim=2, floating=True, shape="(N, D)")
    checks.rows(x1, "x1")
    checks.same_place(model, x1, "x1")
    checks.one_of(time, "time", TIME_SAMPLERS)
    checks.number(p_uncond, "p_uncond", 0.0, 1.0)
    checks.generator(generator)
    if x0 is not None:
        _pair_of(x0, x1)
    if y is not None:
        checks.tensor(y, "y", ndim=1, floating=False, shape="(N,) int64 labels")
        checks.same_rows(y, "y", x1.shape[0], "x1")
    for name, arg in (("x0", x0), ("t", t), ("y", y)):
        if arg is not None:
            checks.same_device(model, arg, name)
    if x0 is not None:
        checks.same_dtype(model, x0, "x0")
    n = x1.shape[0]
    if x0 is None:
        x0 = (torch.randn_like(x1) if generator is None else
              torch.randn(x1.shape, generator=generator, dtype=x1.dtype).to(x1.device))    # (N, D)
    if t is None:
        t = sample_time(n, time, generator=generator, device=x1.device, **time_kw).to(x1.dtype)  # (N,)
    s = (path or CondOTPath()).sample(x0, x1, t)
    if y is not None:
        null = getattr(model, "null_class", None)
        if p_uncond > 0:
            if null is None:
                raise ValueError("p_uncond > 0 needs a conditional model with a null_class")
            y = drop_labels(y, p_uncond, null, generator)
        v = model(s.x_t, s.t, y)                                                 # (N, D)
    else:
        if p_uncond > 0:
            raise ValueError("p_uncond > 0 but no labels y were given")
        v = model(s.x_t, s.t)                                                    # (N, D)
    if v.shape != s.dx_t.shape:
        raise ValueError(f"the model returned shape {tuple(v.shape)}, expected {tuple(s.dx_t.shape)}")
    return (v - s.dx_t).pow(2).mean()
