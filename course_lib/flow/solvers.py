"""One ODE solver for dx/dt = v(x, t): fixed steps of Euler, midpoint or Heun, with the trajectory.

Generation integrates the learned field from noise (t = 0) to data (t = 1). "The number of steps
can be seen as the number of layers": each step is one more pass through the network (one NFE for
Euler, two for midpoint and Heun). The step rules are the explicit Runge-Kutta methods of order 1
and 2 (Hairer, Norsett & Wanner, "Solving Ordinary Differential Equations I", §II.1); the course
uses fixed steps, like the ``"euler"`` / ``"midpoint"`` methods of facebookresearch/flow_matching's
``flow_matching/solver/ode_solver.py``, so that a step count is an exact cost.

A "velocity field" is any callable ``v(x, t) -> (N, D)`` with x (N, D) and t (N,): a
:class:`course_lib.nets.VelocityMLP`, a hand-written function, or :func:`course_lib.flow.field`.
Usage::

    x1 = integrate(v, x0, steps=100)                                  # (N, D) samples
    x1, traj = integrate(v, x0, steps=8, method="heun", trajectory=True)   # traj (9, N, D)
    x1 = sample(model, 5000, 2, steps=100, seed=0)                    # seeded noise, then integrate
"""
from __future__ import annotations

from typing import Callable

import torch

from course_lib import checks, runtime


def device_for(v: Callable, device) -> torch.device | None:
    """Where a sampler draws its noise: ``device`` (checked: it exists here and is ``v``'s own when
    ``v`` is a module), else ``v``'s device (None: the course's device)."""
    if device is None:
        return checks.model_device(v)
    dev = runtime.validate_device(device)
    own = checks.model_device(v)
    if own is not None and (dev.type != own.type or dev.index not in (None, own.index)):
        raise ValueError(f"device: the noise would be drawn on {dev} but the model is on {own}: "
                         f"pass device={str(own)!r} or leave it unset")
    return dev


def _times(x: torch.Tensor, t: float) -> torch.Tensor:
    return torch.full((x.shape[0],), float(t), device=x.device, dtype=x.dtype)  # (N,) one time per point


def euler_step(v: Callable, x: torch.Tensor, t: float, dt: float) -> torch.Tensor:
    """One Euler step of dx/dt = v(x, t) (order 1, one NFE):

        x_{t+dt} = x_t + dt v(x_t, t).

    v: (x (N, D), t (N,)) -> (N, D); x: (N, D); t, dt: floats. Returns (N, D). This is the step of
    notebook 00's exercise and the ``"euler"`` method of :func:`integrate`.
    """
    return x + dt * v(x, _times(x, t))


def midpoint_step(v: Callable, x: torch.Tensor, t: float, dt: float) -> torch.Tensor:
    """One explicit midpoint step (order 2, two NFE): x + dt v(x + dt/2 v(x, t), t + dt/2)."""
    tt = _times(x, t)                                                            # (N,)
    return x + dt * v(x + 0.5 * dt * v(x, tt), tt + 0.5 * dt)


def heun_step(v: Callable, x: torch.Tensor, t: float, dt: float) -> torch.Tensor:
    """One Heun step (explicit trapezoid, order 2, two NFE): predict with Euler, correct with the
    mean of both slopes, x + dt/2 (v(x, t) + v(x + dt v(x, t), t + dt))."""
    tt = _times(x, t)                                                            # (N,)
    k1 = v(x, tt)
    k2 = v(x + dt * k1, tt + dt)
    return x + 0.5 * dt * (k1 + k2)


STEPS = {"euler": euler_step, "midpoint": midpoint_step, "heun": heun_step}
METHODS = {"euler": 1, "midpoint": 2, "heun": 2}   # method -> network evaluations (NFE) per step


def integrate(v: Callable, x0: torch.Tensor, steps: int, method: str = "euler", *, t0: float = 0.0,
              t1: float = 1.0, trajectory: bool = False, grad: bool = False):
    """Solve dx/dt = v(x, t) from t0 to t1 with ``steps`` equal steps of ``method`` (a key of
    :data:`STEPS`: :func:`euler_step`, :func:`midpoint_step`, :func:`heun_step`).

    ``t0 = 0, t1 = 1`` turns noise into data; ``t0 = 1, t1 = 0`` runs it backwards (data to noise).
    Runs under ``torch.no_grad()`` unless ``grad=True``.

    x0: (N, D), on ``v``'s device and in its dtype when ``v`` is a module (or :func:`~course_lib.flow.field`
    of one), else an error naming x0 and both devices (dtypes). Returns x(t1) (N, D), or
    (x(t1), trajectory (steps+1, N, D)) with ``trajectory=True``.
    """
    checks.tensor(x0, "x0", ndim=2, floating=True, shape="(N, D)")
    checks.same_place(v, x0, "x0")
    checks.positive_int(steps, "steps")
    step = STEPS[checks.one_of(method, "method", tuple(STEPS))]
    h = (t1 - t0) / steps
    x, xs = x0, [x0]
    with torch.set_grad_enabled(grad):
        for k in range(steps):
            x = step(v, x, t0 + k * h, h)
            if trajectory:
                xs.append(x)
    return (x, torch.stack(xs)) if trajectory else x                              # (steps+1, N, D)


def euler_sample(v: Callable, x0: torch.Tensor, steps: int) -> torch.Tensor:
    """Integrate dx/dt = v(x, t) from t = 0 to 1 with ``steps`` Euler steps of size h = 1/steps:

        x_{t+h} = x_t + h v(x_t, t),   t = 0, h, 2h, ..., 1 - h.

    v: (x (N, D), t (N,)) -> (N, D); x0 (N, D) noise. Returns x at t = 1, (N, D). The sampler of
    notebook 08's exercise: :func:`integrate` with ``method="euler"``, keeping the caller's
    gradient mode (like a plain loop would).
    """
    return integrate(v, x0, steps, "euler", grad=torch.is_grad_enabled())


def euler_paths(v: Callable, x0: torch.Tensor, steps: int) -> torch.Tensor:
    """The positions of ``steps`` Euler steps from x0 (N, D): (steps+1, N, D), x0 first. The
    ``paths`` argument of :func:`course_lib.viz.field_explorer`."""
    return integrate(v, x0, steps, "euler", trajectory=True)[1]


def prior(n: int, dim: int, *, seed: int = 0, device=None) -> torch.Tensor:
    """n seeded draws of the source x_0 ~ N(0, I), (n, dim), drawn on the CPU (the same numbers on
    every device) and moved to ``device`` (default: the course's device; a device this machine lacks,
    e.g. ``"cuda"`` without a GPU, is a ValueError naming ``device``)."""
    device = runtime.validate_device(device) if device is not None else None
    x0 = torch.randn(checks.positive_int(n, "n"), checks.positive_int(dim, "dim"),
                     generator=torch.Generator().manual_seed(seed))
    return x0.to(device if device is not None else runtime.device())


def sample(v: Callable, n: int, dim: int, steps: int = 100, method: str = "euler", *, seed: int = 0,
           device=None, trajectory: bool = False):
    """Draw n samples: :func:`prior` noise (seeded, (n, dim), on ``v``'s device unless ``device`` is
    given), then :func:`integrate` from 0 to 1. Returns (n, dim) (and the trajectory). A ``device``
    this machine lacks, or one other than the model's, is a ValueError naming ``device``."""
    x0 = prior(n, dim, seed=seed, device=device_for(v, device))
    return integrate(v, x0, steps, method, trajectory=trajectory)
