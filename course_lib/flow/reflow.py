"""Straightening a flow: reflow (Liu et al. 2023, "Flow Straight and Fast: Learning to Generate and
Transfer Data with Rectified Flow", §2.3 and Algorithm 1) and two measures of how straight it is.

One Euler step is exact only if every particle moves on a straight line at constant speed. Paths of
a flow trained on independent (noise, data) pairs bend, because the lines of different pairs cross
and the field averages them. Reflow samples couplings (x_0, x_1 = ODE(x_0)) from the trained flow and
trains again on *those* pairs; their lines no longer cross, so the new field is straighter.
Usage::

    x0, x1 = reflow_pairs(teacher, 20000, 2, steps=32, method="heun")
    student = copy.deepcopy(teacher)
    hist = reflow(student, x0, x1, 1500)
    straightness(integrate(student, x0_test, 100, trajectory=True)[1])      # near 0: straight
"""
from __future__ import annotations

from typing import Callable

import torch

from course_lib import checks
from course_lib import train as _train
from course_lib.flow.path import loss
from course_lib.flow.solvers import device_for, integrate, prior


def reflow_pairs(v: Callable, n: int, dim: int, steps: int = 100, method: str = "euler", *, seed: int = 0,
                 device=None, batch: int = 8192):
    """Noise/sample couplings from a trained flow (Liu et al. 2023, Algorithm 1, the "reflow" of
    §2.3): x0 ~ N(0, I) (:func:`~course_lib.flow.solvers.prior`), x1 = ODE solution from x0, solved
    in chunks of ``batch`` points. Returns (x0, x1), each (n, dim).

    The pairs carry the teacher's solver errors: make them with an accurate solver (Heun, enough
    steps); reflow trades a little accuracy at many steps for much better few-step samples.
    ``device`` as in :func:`~course_lib.flow.solvers.sample` (checked; default ``v``'s device).
    """
    checks.positive_int(batch, "batch")
    x0 = prior(n, dim, seed=seed, device=device_for(v, device))               # (n, dim)
    x1 = torch.cat([integrate(v, chunk, steps, method) for chunk in x0.split(batch)])
    return x0, x1


def reflow(model: torch.nn.Module, x0: torch.Tensor, x1: torch.Tensor, steps: int, *, batch: int = 1024,
           lr: float = 1e-3, y: torch.Tensor | None = None, seed: int = 0, **train_kw) -> _train.History:
    """Train ``model`` (usually a copy of the teacher) on fixed pairs (x0, x1) with
    :func:`~course_lib.flow.path.loss` (Liu et al. 2023, eq. 1 on the reflow coupling): each step
    draws ``batch`` random pairs and a fresh t. ``y`` (n,) labels go with the pairs.
    Returns the :class:`course_lib.train.History`."""
    checks.positive_int(steps, "steps")
    checks.positive_int(batch, "batch")
    checks.tensor(x0, "x0", ndim=2, floating=True, shape="(N, D)")
    checks.rows(x0, "x0")
    if x0.shape != x1.shape:
        raise ValueError(f"x0 and x1 must have the same shape, got {tuple(x0.shape)} and {tuple(x1.shape)}")
    checks.same_place(model, x0, "x0")
    checks.same_place(model, x1, "x1")
    if y is not None:
        checks.same_device(model, y, "y")
    n = x0.shape[0]

    def loss_fn(step):
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        idx = torch.randint(0, n, (batch,), generator=g).to(x0.device)           # (batch,)
        return loss(model, x1[idx], x0=x0[idx], y=None if y is None else y[idx], generator=g)
    train_kw.setdefault("desc", "reflow")
    return _train.train(model, loss_fn, steps, lr=lr, **train_kw)


def _trajectory(traj) -> torch.Tensor:
    checks.tensor(traj, "traj", ndim=3, floating=True, shape="(K+1, N, D)")
    if traj.shape[0] < 2:
        raise ValueError(f"traj: expected shape (K+1, N, D) with K >= 1, got {tuple(traj.shape)}")
    return traj


def straightness(traj: torch.Tensor) -> float:
    """How far a trajectory is from straight lines (Liu et al. 2023, eq. 6, discretised):

        S = mean_k mean_n || (x_{k+1} - x_k) / h - (x_K - x_0) ||^2,

    0 exactly when every particle moves along a straight line at constant speed (then one Euler
    step is exact). traj: (K+1, N, D) positions on a uniform time grid over [0, 1].
    """
    k = _trajectory(traj).shape[0] - 1
    seg = (traj[1:] - traj[:-1]) * k                                             # (K, N, D) velocities
    chord = traj[-1] - traj[0]                                                   # (N, D)
    return (seg - chord[None]).pow(2).sum(-1).mean().item()


def length_ratio(traj: torch.Tensor) -> float:
    """Mean over particles of (path length) / (distance from start to end); 1 for straight paths.
    traj: (K+1, N, D)."""
    _trajectory(traj)
    length = (traj[1:] - traj[:-1]).norm(dim=-1).sum(0)                          # (N,)
    chord = (traj[-1] - traj[0]).norm(dim=-1).clamp_min(1e-8)                    # (N,)
    return (length / chord).mean().item()
