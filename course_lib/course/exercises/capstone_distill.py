"""Notebook 11, open project A (consistency distillation): the check of its first step.

* capstone.consistency_target: the consistency-distillation target of Song et al. 2023 (eq. 7,
  Algorithm 2) in the course's direction: the teacher's Euler step from t to t + dt, then the target
  network at t + dt, without gradient.

The reference is :func:`course_lib.flow.distill.consistency_target`. Every call of the learner's function
goes through :func:`~course_lib.course.checking.call`; sizes change from call to call (one sample,
one dimension, B = D), float32 and float64, a batch larger than the notebook's, rows that end at t = 1,
and one case runs on another device. Each known mistake is named only when it reproduces the learner's
values on the failing case (the missing stop-gradient: when the values are right and the target carries
a gradient).
"""
from __future__ import annotations

import torch

from course_lib.course.checking import (BROADCAST, Exercise, Mismatch, Mistake, call_hinted, device_words, expect_close,
                                        expect_on_another_device, generator, naming)
from course_lib.flow import distill


# ----------------------------------------------------------------------------- test networks

class _Net(torch.nn.Module):
    """A smooth network g(x, t) = tanh(x W + t c + e) M with parameters (so a target without
    stop-gradient shows), that refuses times that are not (B,) tensors in x's dtype on x's device.
    As a consistency function (``boundary=True``) it returns x + (1 - t) g(x, t): f(x, 1) = x."""

    def __init__(self, dim: int, seed: int, dtype=torch.float32, boundary: bool = False, role: str = "v"):
        super().__init__()
        g = generator(seed)
        h = 8
        self.W = torch.nn.Parameter(torch.randn(dim, h, generator=g, dtype=dtype))
        self.c = torch.nn.Parameter(3 * torch.randn(h, generator=g, dtype=dtype))
        self.e = torch.nn.Parameter(torch.randn(h, generator=g, dtype=dtype))
        self.M = torch.nn.Parameter(torch.randn(h, dim, generator=g, dtype=dtype) / h ** 0.5)
        self.boundary, self.role, self.where = boundary, role, ""

    def forward(self, x, t):
        how = f"a tensor of shape ({x.shape[0]},) in x's dtype {x.dtype}, one time per row"
        if not isinstance(t, torch.Tensor) or t.shape != (x.shape[0],):
            got = f"shape {tuple(t.shape)}" if isinstance(t, torch.Tensor) else f"type {type(t).__name__}"
            raise Mismatch(f"{self.where}{self.role} was called with t of {got}; expected {how}")
        if t.device.type != x.device.type:
            raise Mismatch(f"{self.where}{self.role} was called with t on {t.device} while x is on "
                           f"{device_words(x.device)}: make the times on x's device")
        if t.dtype != x.dtype:
            raise Mismatch(f"{self.where}{self.role} was called with t of dtype {t.dtype} while x is {x.dtype}")
        out = torch.tanh(x @ self.W + t[:, None] * self.c + self.e) @ self.M          # (B, D)
        return x + (1 - t)[:, None] * out if self.boundary else out


def _models(dim, seed, dtype=torch.float32, case=""):
    teacher = _Net(dim, seed, dtype, role="teacher_velocity")
    target = _Net(dim, seed + 500, dtype, boundary=True, role="target_model")
    teacher.where = target.where = f"on {case}: " if case else ""
    return teacher, target


def _inputs(n, dim, seed, dtype=torch.float32):
    """x_t (n, D), t (n,) in [0, 0.9) and dt (n,) per row with t + dt <= 1 (the last rows end at 1)."""
    g = generator(seed)
    x = torch.randn(n, dim, generator=g, dtype=dtype)
    t = torch.rand(n, generator=g, dtype=dtype) * 0.9
    dt = 0.02 + torch.rand(n, generator=g, dtype=dtype) * (1 - t - 0.02)
    if n > 2:
        dt[-1] = 1 - t[-1]                                           # a row that lands on the data end
    return x, t, dt


# ----------------------------------------------------------------------------- the known mistakes

def _target(step=lambda v, f, x, t, dt: x + dt[:, None] * v(x, t), when=lambda t, dt: t + dt, grad=False):
    """consistency_target with one part swapped for a known mistake's: the solver step, the time at
    which the target network is asked, the stop-gradient."""
    def target(teacher_velocity, target_model, x_t, t, dt):
        with torch.set_grad_enabled(grad):
            return target_model(step(teacher_velocity, target_model, x_t, t, dt), when(t, dt))
    return target


_BROADCAST = ("dt has shape (B,), one step per row: give it a trailing axis, dt[:, None], so that each "
              "row's velocity is scaled by its own step")

TARGET_MISTAKES = (
    Mistake("backwards", _target(step=lambda v, f, x, t, dt: x - dt[:, None] * v(x, t), when=lambda t, dt: t - dt),
            "the step goes the wrong way: in the course's convention the data end is t = 1, so the teacher steps "
            "FORWARD, x_t + dt v(x_t, t), to the later time t + dt (the paper's time runs the other way)"),
    Mistake("target_at_t", _target(when=lambda t, dt: t),
            "the target network is asked at time t: after the teacher's step the point lives at t + dt, so the "
            "target is f^-(x_next, t + dt)"),
    Mistake("no_teacher_step", _target(step=lambda v, f, x, t, dt: x),
            "the teacher's step is missing: the target is f^- at the point ONE TEACHER STEP closer to the data, "
            "f^-(x_t + dt v(x_t, t), t + dt), not f^-(x_t, t + dt)"),
    Mistake("step_with_target", _target(step=lambda v, f, x, t, dt: x + dt[:, None] * f(x, t)),
            "the Euler step uses the target network: the step is the TEACHER's, x_t + dt teacher_velocity(x_t, t) "
            "(the target network returns an estimate of the data end, not a velocity)"),
    Mistake("no_dt", _target(step=lambda v, f, x, t, dt: x + v(x, t)),
            "the step is x_t + dt v(x_t, t): the factor dt is missing"),
    Mistake("teacher_at_next_time", _target(step=lambda v, f, x, t, dt: x + dt[:, None] * v(x, t + dt)),
            "the teacher is asked at t + dt: an Euler step takes the velocity where the step starts, v(x_t, t)"),
    Mistake("unbroadcast_dt", _target(step=lambda v, f, x, t, dt: x + dt * v(x, t)), _BROADCAST),
    Mistake("no_stop_gradient", _target(grad=True),
            "the target carries a gradient: compute it under torch.no_grad() (or .detach() it), the stop-gradient "
            "of Algorithm 2, else the loss also moves the target network"),
)
_NO_SG = TARGET_MISTAKES[-1].message


def _call(candidate, teacher, target, x, t, dt, case):
    return call_hinted(candidate, teacher, target, x, t, dt, case=case, hints={BROADCAST: _BROADCAST})


def check_consistency_target(candidate):
    """f^-(x_t + dt v(x_t, t), t + dt) without gradient, with v the teacher and f^- the target network,
    on smooth networks with parameters (a step the wrong way, the target asked at t, a missing teacher
    step, a step with the target network, a missing dt, the teacher asked at t + dt and dt not broadcast
    per row are named), t and dt per row (rows that land on t = 1 included), B = 1..9 in D = 1..7 (B = D
    too) and 5000 in 2-D (the notebook's batches are 512), float32 and float64; the networks are called
    with (B,) times in x's dtype; the target has no gradient (stop-gradient); the inputs unchanged; one
    case on another device."""
    cases = [(6, 2, torch.float32), (1, 3, torch.float32), (5, 5, torch.float64), (9, 1, torch.float64),
             (4, 7, torch.float32), (3, 3, torch.float32), (5000, 2, torch.float32)]
    for i, (n, d, dtype) in enumerate(cases):
        case = f"{n} point{'s' * (n > 1)} in {d}-D ({dtype})"
        teacher, target = _models(d, 10 + i, dtype, case)
        x, t, dt = _inputs(n, d, 20 + i, dtype)
        got = _call(candidate, teacher, target, x, t, dt, case)
        with naming(TARGET_MISTAKES[:-1], got, *_models(d, 10 + i, dtype), x, t, dt):
            expect_close(got, distill.consistency_target(*_models(d, 10 + i, dtype), x, t, dt), f"on {case}")
        if got.requires_grad:
            raise Mismatch(f"on {case}: {_NO_SG}")
    teacher, target = _models(2, 40)
    args = _inputs(4, 2, 41)
    want = distill.consistency_target(teacher, target, *args)
    dev_teacher, dev_target = (m.to(torch.device("cuda") if torch.cuda.is_available() else torch.device("meta"))
                               for m in _models(2, 40))
    expect_on_another_device(candidate, (dev_teacher, dev_target, *args), want, "4 points in 2-D")


PROJECT = (
    Exercise("capstone.consistency_target", reference=distill.consistency_target, checker=check_consistency_target,
             description=check_consistency_target.__doc__, mistakes=TARGET_MISTAKES),
)
