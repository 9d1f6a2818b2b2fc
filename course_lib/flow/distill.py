"""Consistency distillation: a trained flow squeezed into a one-step sampler.

Song, Dhariwal, Chen & Sutskever 2023, "Consistency Models" (ICML), §4 "Training consistency models
via distillation", the loss of eq. (7) and Algorithm 2 (CD); official code openai/consistency_models,
``cm/karras_diffusion.py`` (``consistency_losses``, ``get_scalings_for_boundary_condition``).

A *consistency function* maps every point of one ODE trajectory to the trajectory's data end. It is
trained on neighbouring points of a time grid: the point x at the noisier time, and the point one
teacher-solver step closer to the data, must map to the same place. The target side is a slowly
moving copy of the student (an EMA, theta^-) seen through a stop-gradient.

**Convention.** The paper runs time from data (t = eps) to noise (t = T); the course runs it from
noise (t = 0) to data (t = 1) (:mod:`course_lib.flow`). Translated:

| the paper | here |
| --- | --- |
| x_{t_{n+1}}, the noisier grid point | x_t, the EARLIER time t (closer to noise) |
| x_hat_{t_n} = x_{t_{n+1}} + (t_n - t_{n+1}) Phi(x_{t_{n+1}}, t_{n+1}; phi) (one step of the teacher's solver toward data) | x_t + dt v(x_t, t), the teacher's Euler step from t to t + dt |
| f_theta(x_{t_{n+1}}, t_{n+1}) | f_theta(x_t, t) |
| f_{theta^-}(x_hat_{t_n}, t_n), no gradient | f^-(x_t + dt v(x_t, t), t + dt), no gradient |
| boundary condition f(x, eps) = x | f(x, 1) = x |

so the consistency distillation loss (eq. 7, lambda = 1, d = squared L2) reads

    L = E_{x_1, x_0, n} || f_theta(x_t, t) - sg[ f^-(x_t + dt v(x_t, t), t + dt) ] ||^2,
        t = t_n = n / N, dt = 1 / N, x_t = (1 - t) x_0 + t x_1,

and Algorithm 2 moves theta^- <- mu theta^- + (1 - mu) theta after every step.

**Parameterisation.** f(x, t) = c_skip(t) x + c_out(t) F(x, t) with c_skip(1) = 1, c_out(1) = 0 (the
paper's §3 and its code's ``get_scalings_for_boundary_condition``). For a flow the natural choice is
c_skip = 1, c_out = 1 - t:

    f(x, t) = x + (1 - t) F(x, t),

the jump to t = 1 with a learned velocity F. Started from the teacher (F = v), f is the teacher's own
one-Euler-step jump; distillation corrects it so that jumps from neighbouring times agree. One-step
sampling is x_1 = f(x_0, 0) = x_0 + F(x_0, 0); multistep sampling (the paper's Algorithm 1) re-noises
the estimate to a later time and jumps again.

What the course simplifies: Euler as the teacher's solver (the official code's teacher step is Heun's); a uniform grid of N times
(not Karras' rho = 7 grid) with N and mu fixed (no schedule for either); squared L2 on 2-D points
instead of LPIPS; c_skip = 1, c_out = 1 - t instead of the sigma_data scalings; lambda(t_n) = 1.

Usage::

    student, hist = distill(teacher, data_fn, steps=400)         # data_fn(n, seed) -> (n, D)
    x1 = sample(student, x0)                                      # one network evaluation per point
    table = compare(teacher, student, data_fn, n=4096)            # SWD and grid TV of each sampler to the data
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from course_lib import checks, metrics, runtime
from course_lib import train as _train
from course_lib.flow.solvers import prior, sample as flow_sample
from course_lib.record import History


# ----------------------------------------------------------------------------- the consistency function

class ConsistencyModel(nn.Module):
    """f(x, t) = x + (1 - t) F(x, t): a consistency function that meets the boundary condition
    f(x, 1) = x by construction (c_skip = 1, c_out = 1 - t; module docstring).

    ``net`` is a velocity network F(x (B, D), t (B,)) -> (B, D), e.g. a copy of the teacher. Then
    f(x_0, 0) = x_0 + F(x_0, 0) is one Euler step of F over the whole interval: ``net`` also works
    with :func:`course_lib.flow.sample` at ``steps=1``."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        checks.tensor(x, "x", ndim=2, floating=True, shape="(B, D)")
        checks.tensor(t, "t", ndim=1, floating=True, shape=f"({x.shape[0]},)")
        checks.same_rows(t, "t", x.shape[0], "x")
        return x + (1 - t)[:, None] * self.net(x, t)                             # (B, D)


# ----------------------------------------------------------------------------- the target (the exercise)

@torch.no_grad()
def consistency_target(teacher_velocity: Callable, target_model: Callable, x_t: torch.Tensor,
                       t: torch.Tensor, dt: torch.Tensor) -> torch.Tensor:
    """The consistency-distillation target (Song et al. 2023, eq. 7 and Algorithm 2), in the course's
    direction (t = 0 noise, t = 1 data): one Euler step of the TEACHER toward the data, then the
    target network at the later time, with no gradient:

        x_next = x_t + dt v(x_t, t),          (B, D)  the paper's x_hat_{t_n}, one step closer to data
        target = f^-(x_next, t + dt).         (B, D)  the paper's f_{theta^-}(x_hat_{t_n}, t_n)

    teacher_velocity(x (B, D), t (B,)) -> (B, D); target_model(x (B, D), t (B,)) -> (B, D), an
    estimate of the data end x_1; x_t (B, D); t, dt (B,) (one time and one step per row). Returns
    (B, D), detached (the stop-gradient of Algorithm 2: the loss moves only the student)."""
    checks.tensor(x_t, "x_t", ndim=2, floating=True, shape="(B, D)")
    for name, arg in (("t", t), ("dt", dt)):
        checks.tensor(arg, name, ndim=1, floating=True, shape=f"({x_t.shape[0]},), one per row")
        checks.same_rows(arg, name, x_t.shape[0], "x_t")
    x_next = x_t + dt[:, None] * teacher_velocity(x_t, t)                    # (B, D) teacher's Euler step
    return target_model(x_next, t + dt)                                       # (B, D) f^- at the later time


# ----------------------------------------------------------------------------- training

@dataclass(frozen=True)
class Budget:
    """A distillation run in one mode (the demo of notebook 11's first open project)."""
    mode: str                 # the course mode this budget is for
    steps: int                # student updates
    batch: int                # points per update
    grid: int                 # N: times t_n = n / N, n = 0 .. N-1, step dt = 1 / N
    lr: float                 # AdamW's learning rate (cosine decay)
    mu: float                 # EMA decay of the target network theta^- (Algorithm 2)
    n_eval: int               # samples per SWD estimate


BUDGETS = {   # measured on notebook 08's quick spirals flow: N = 4, 8, 16, 32 gave SWD 0.37, 0.22, 0.16, 0.44 at 300 steps
    "quick": Budget("quick", steps=300, batch=512, grid=16, lr=1e-3, mu=0.95, n_eval=2048),
    # lecture, on the shipped teacher (grid TV of one step, floor 0.12; 1200 steps): N = 8 0.24, 16 0.21, 32 0.23;
    # mu near 0 (no EMA) 0.36; 22 s each on a busy 2-core machine
    "lecture": Budget("lecture", steps=1200, batch=512, grid=16, lr=1e-3, mu=0.95, n_eval=4096),
    "full": Budget("full", steps=5000, batch=2048, grid=32, lr=5e-4, mu=0.95, n_eval=16384),
}


def budget(mode: str | None = None) -> Budget:
    """The distillation budget of the current (or given) mode."""
    return runtime.pick(BUDGETS, mode)


def distill_loss(student: ConsistencyModel, target_model: Callable, teacher: Callable, x1: torch.Tensor,
                 grid: int, *, target_fn: Callable = consistency_target,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """The CD loss (eq. 7, lambda = 1, squared L2 summed over dimensions and averaged over the batch)
    on a batch x1 (B, D) of data: fresh noise x_0, a grid index n ~ U{0 .. N-1} per row (the paper's
    n ~ U[1, N-1]), x_t on the straight path, the student at (x_t, t_n) against
    ``target_fn(teacher, target_model, x_t, t_n, dt)`` (default :func:`consistency_target`)."""
    checks.tensor(x1, "x1", ndim=2, floating=True, shape="(B, D)")
    grid = checks.positive_int(grid, "grid")
    checks.generator(generator)
    B = x1.shape[0]
    x0 = torch.randn(x1.shape, generator=generator, dtype=x1.dtype).to(x1.device)         # (B, D) noise
    n = torch.randint(0, grid, (B,), generator=generator).to(x1.device)                   # (B,) grid index
    t = (n / grid).to(x1.dtype)                                                            # (B,) t_n
    dt = torch.full_like(t, 1.0 / grid)                                                    # (B,)
    x_t = (1 - t)[:, None] * x0 + t[:, None] * x1                                          # (B, D)
    target = target_fn(teacher, target_model, x_t, t, dt)                                  # (B, D)
    if isinstance(target, torch.Tensor) and target.requires_grad:
        raise ValueError("target_fn returned a target with a gradient: the target takes no gradient "
                         "(torch.no_grad() or .detach(), the stop-gradient of Algorithm 2)")
    return (student(x_t, t) - target).pow(2).sum(1).mean()


def distill(teacher: nn.Module, data_fn: Callable, steps: int, *, batch: int = 512, grid: int = 8,
            lr: float = 5e-4, mu: float = 0.95, target_fn: Callable = consistency_target, seed: int = 0,
            progress: bool = True) -> tuple[ConsistencyModel, History]:
    """Distil ``teacher`` (a velocity network v(x, t)) into a one-step :class:`ConsistencyModel`
    (Algorithm 2): the student starts as f(x, t) = x + (1 - t) v(x, t) (a copy of the teacher inside),
    the target network theta^- is the EMA of the student (decay ``mu``; ``hist.ema.model``), and each
    of ``steps`` steps draws ``batch`` points ``data_fn(batch, seed * 1_000_003 + step)`` and takes one
    AdamW step (cosine learning rate) on :func:`distill_loss` with ``target_fn``. The teacher is
    a frozen copy (the model passed in is left as it was). Returns (student in eval mode, :class:`course_lib.train.History`)."""
    steps, batch = checks.positive_int(steps, "steps"), checks.positive_int(batch, "batch")
    checks.number(mu, "mu", 0.0, 1.0)
    torch.manual_seed(seed)
    student = ConsistencyModel(copy.deepcopy(teacher).requires_grad_(True))    # F starts as the teacher's v
    teacher = copy.deepcopy(teacher).eval().requires_grad_(False)              # a frozen copy: the caller's stays as it was
    hist = History()
    hist.ema = _train.EMA(student, mu)                                        # theta^-, updated after each step
    g = torch.Generator().manual_seed(seed)

    def loss_fn(step):
        x1 = data_fn(batch, seed * 1_000_003 + step)                          # (batch, D)
        dev = checks.model_device(teacher)
        x1 = x1.to(dev) if dev is not None else x1
        return distill_loss(student, hist.ema.model, teacher, x1, grid, target_fn=target_fn, generator=g)
    _train.train(student, loss_fn, steps, lr=lr, schedule="cosine", progress=progress, desc="consistency distillation",
                 history=hist)
    return student, hist


# ----------------------------------------------------------------------------- sampling and measuring

@torch.no_grad()
def sample(student: Callable, x0: torch.Tensor, times=(0.0,), *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Consistency sampling (the paper's Algorithm 1, in the course's direction): x = f(x0, times[0]),
    then for each later time t of ``times``: re-noise x_t = (1 - t) z + t x with fresh z ~ N(0, I)
    and jump again, x = f(x_t, t). ``times=(0.0,)`` is one step, one network evaluation per point.
    x0 (N, D) noise. Returns (N, D)."""
    checks.tensor(x0, "x0", ndim=2, floating=True, shape="(N, D)")
    if isinstance(times, (str, bytes)) or not hasattr(times, "__iter__"):
        raise TypeError(f"times: expected a sequence of times in [0, 1] such as (0.0,) or (0.0, 0.5), "
                        f"got {type(times).__name__} {times!r}")
    times = [checks.number(s.item() if isinstance(s, torch.Tensor) else s, "times", 0.0, 1.0) for s in times]
    if not times or any(b <= a for a, b in zip(times, times[1:])):
        raise ValueError(f"times: expected increasing times in [0, 1], the first usually 0, got {times}")
    n = x0.shape[0]
    x = student(x0, torch.full((n,), times[0], dtype=x0.dtype, device=x0.device))           # (N, D)
    for s in times[1:]:
        z = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)        # (N, D) fresh noise
        x = student((1 - s) * z + s * x, torch.full((n,), s, dtype=x0.dtype, device=x0.device))
    return x


def compare(teacher: Callable, student: Callable, data_fn: Callable, n: int, *, teacher_steps=(1, 100),
            seeds=(0,), noise_seed: int = 100) -> dict:
    """How far each sampler's output is from held-out data: the one-step student and the teacher at each
    of ``teacher_steps`` Euler steps, all from the same seeded noise (seed ``noise_seed`` + s), and the
    data's own floor at n points. Two distances (:mod:`course_lib.metrics`): the sliced Wasserstein
    distance (``"swd"``) and, for 2-D data, the grid total variation (``"tv"``: it sees the shape that
    the SWD is nearly blind to, a filled disk against a spiral). Returns {"student, 1 step": {"swd": ...,
    "tv": ...}, "teacher, k steps": {...}, ..., "floor": {...}}."""
    dev = checks.model_device(teacher) or runtime.device()
    dim = data_fn(1, 0).shape[1]                                              # D of the data

    def scores(sample_fn):
        out = {"swd": metrics.swd_to_data(sample_fn, data_fn, n, seeds)}
        if dim == 2:
            out["tv"] = metrics.grid_tv_to_data(sample_fn, data_fn, n, seeds)
        return out
    table = {"student, 1 step": scores(lambda m, s: sample(student, prior(m, dim, seed=noise_seed + s, device=dev)))}
    for k in teacher_steps:
        table[f"teacher, {k} step{'s' * (k > 1)}"] = scores(
            lambda m, s, k=k: flow_sample(teacher, m, dim, k, seed=noise_seed + s, device=dev))
    floor = {"swd": metrics.noise_floor(data_fn, n, seeds)}
    if dim == 2:
        floor["tv"] = metrics.grid_tv_floor(data_fn, n, seeds)
    table["floor"] = floor
    return table
