"""Exercises of notebook 00 (welcome): one small exercise that shows the mechanism.

The reference is :func:`course_lib.flow.euler_step`, the step the course's ODE solver takes. The
velocity fields the check hands to the learner's function (:class:`Field`) are also used by the
checks of notebook 08's sampler (:mod:`course_lib.course.exercises.flow`).
"""
import math

import torch

from course_lib import flow
from course_lib.course.checking import (Exercise, Mismatch, Mistake, call, device_words, expect_close,
                                        expect_on_another_device, explain, generator, name_mistake, off_by,
                                        stand_in_device)


# ----------------------------------------------------------------------------- velocity fields

def _pull(x, t):
    """Time-dependent: towards a point c, faster as t grows."""
    c = torch.arange(x.shape[1], dtype=x.dtype, device=x.device) * 0.5 - 1.0      # (D,)
    return (c - x) * (1 + 3 * t[:, None])


def _whirl(x, t):
    """Does not depend on time: each coordinate turns towards its neighbour."""
    return torch.roll(x, 1, dims=1) - torch.roll(x, -1, dims=1) + 0.2 * x


def _turning(x, t):
    """Its direction turns with t, whatever x."""
    k = torch.arange(x.shape[1], dtype=x.dtype, device=x.device)                    # (D,)
    return torch.cos(3 * t[:, None] + k) + 0.1 * x


def _constant(x, t):
    """The same velocity everywhere: the position after a step shows the step size directly."""
    c = torch.arange(1, x.shape[1] + 1, dtype=x.dtype, device=x.device) * 0.5      # (D,)
    return c.expand(x.shape[0], -1).clone()


FIELDS = {"a time-dependent pull": _pull, "a whirl": _whirl, "a field that turns with t": _turning,
          "a constant field": _constant}


class Field:
    """A velocity field v(x, t) handed to the learner's function. It records every call and refuses
    a time that is not what a field expects (a float, one time for the whole batch, another device),
    with a message that names the learner's mistake rather than an error inside the field."""

    def __init__(self, name: str, case: str = ""):
        self.name, self.fn, self.calls = name, FIELDS[name], []
        self.where = f"on {case}: " if case else ""

    def __repr__(self):
        return self.name

    def __call__(self, x, t):
        if not isinstance(x, torch.Tensor) or x.dim() != 2:
            what = f"shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else f"type {type(x).__name__}"
            raise Mismatch(f"{self.where}v was called with x of {what}; expected the points, a tensor of shape (N, D)")
        n = x.shape[0]
        how = f"a tensor of shape ({n},), one time per point, e.g. torch.full((x.shape[0],), t, device=x.device)"
        if not isinstance(t, torch.Tensor):
            raise Mismatch(f"{self.where}v was called with t of type {type(t).__name__}; expected {how}")
        if tuple(t.shape) != (n,):
            raise Mismatch(f"{self.where}v was called with t of shape {tuple(t.shape)} for {n} points; expected {how}")
        if not t.is_floating_point():
            raise Mismatch(f"{self.where}v was called with t of dtype {t.dtype}; expected a floating-point time "
                           f"(torch.full((N,), 0) makes integers: write the time as a float)")
        if t.device.type != x.device.type:
            raise Mismatch(f"{self.where}v was called with t on {t.device} while the points x are on "
                           f"{device_words(x.device)}: make t with device=x.device")
        self.calls.append((x.detach().clone(), t.detach().clone()))
        return self.fn(x, t)

    def times(self) -> list:
        """The time of each call (the first entry of t), rounded for a message."""
        return [round(float(t.reshape(-1)[0]), 4) for _, t in self.calls if t.numel() and t.device.type != "meta"]


def same(a, b, atol=1e-6) -> bool:
    return isinstance(a, torch.Tensor) and a.shape == b.shape and bool(
        torch.allclose(a.detach().double().cpu(), b.detach().double().cpu(), atol=atol, rtol=1e-5))


# ----------------------------------------------------------------------------- euler_step

def _times(x, t):
    return torch.full((x.shape[0],), float(t), dtype=x.dtype, device=x.device)      # (N,)


EULER_STEP_MISTAKES = (
    Mistake("did_not_move", lambda v, x, t, dt: x + 0 * v(x, _times(x, t)),
            "the points did not move: x_{t+dt} = x_t + dt * v(x_t, t)"),
    Mistake("returns_step", lambda v, x, t, dt: dt * v(x, _times(x, t)),
            "you returned the step dt * v(x, t); return the new points x + dt * v(x, t)"),
    Mistake("returns_velocity", lambda v, x, t, dt: v(x, _times(x, t)),
            "you returned the velocity v(x, t); return the new points x + dt * v(x, t)"),
    Mistake("forgets_dt", lambda v, x, t, dt: x + v(x, _times(x, t)),
            "the points moved by v(x, t): multiply the velocity by dt"),
    Mistake("backwards", lambda v, x, t, dt: x - dt * v(x, _times(x, t)),
            "the points moved against the field: x + dt * v(x, t), not x - dt * v(x, t)"),
)


def _with_full_like(v, x, t, dt):
    return x + v(x, torch.full_like(x[:, 0], t)) * dt


def _with_new_ones(v, x, t, dt):
    return torch.add(x, v(x, x.new_ones(len(x)) * t), alpha=dt)


def _with_float64_time(v, x, t, dt):                  # t in float64 whatever x is: fine for a field that promotes
    times = torch.tensor([t] * x.shape[0], dtype=torch.float64, device=x.device)
    return x + dt * v(x, times).to(x.dtype)


EULER_STEP_ALTERNATIVES = (_with_full_like, _with_new_ones, _with_float64_time)


def _expect_step(got, want, x, t, dt, field, case):
    """The new points, with the mistake they reproduce named, else how the step x_new - x is off."""
    try:
        expect_close(got, want, f"on {case}")            # float64 input: float64 precision
    except Mismatch as e:
        mistake = name_mistake(got, EULER_STEP_MISTAKES, field, x, t, dt)
        same_kind = isinstance(got, torch.Tensor) and got.shape == x.shape and got.dtype == x.dtype
        ratio = off_by(got - x, dt * field(x, _times(x, t))) if same_kind and not mistake else ""
        raise explain(Mismatch(f"{e} (the step x_new - x: {ratio})") if ratio else e, mistake) from None


def _one_step(candidate, field_name, x, t, dt, case):
    """Run the learner's step once with a recording field; check how it called v and what it returned."""
    v = Field(field_name, case)
    got = call(candidate, v, x, t, dt, case=case)
    if not v.calls:
        moved = "the points did not move: " if same(got, x) else ""
        raise Mismatch(f"on {case}: {moved}your function never called v; x_(t+dt) = x_t + dt * v(x_t, t)")
    if len(v.calls) > 1:
        raise Mismatch(f"on {case}: v was called {len(v.calls)} times; one Euler step evaluates it once, "
                       f"at the current points x and time t")
    seen_x, seen_t = v.calls[0]
    if x.device.type != "meta":
        if not same(seen_x, x):
            raise Mismatch(f"on {case}: v was evaluated at other points than x; an Euler step evaluates "
                           f"v(x, t) at the current points")
        if not torch.allclose(seen_t.double().cpu(), torch.full_like(seen_t, t, dtype=torch.float64, device="cpu")):
            at = seen_t.reshape(-1)[0].item()
            extra = " (the end of the step, t + dt)" if math.isclose(at, t + dt, abs_tol=1e-6) else ""
            raise Mismatch(f"on {case}: v was evaluated at time {at:.4g}{extra}; evaluate it at the start "
                           f"of the step, t = {t:g}")
    return got


_CASES = [  # field, N, D, t, dt, dtype: several sizes (N = 1, D = 1), both ends of [0, 1], dt < 0, and the
    # notebook's: 4000 points in 2-D with dt = 1/2000, then beyond it
    ("a time-dependent pull", 7, 3, 0.5, 0.25, torch.float32),
    ("a whirl", 1, 2, 0.0, 0.1, torch.float32),
    ("a field that turns with t", 4, 1, 1.0, -0.25, torch.float32),
    ("a time-dependent pull", 3, 5, 0.0, 1.0, torch.float64),
    ("a field that turns with t", 6, 2, 0.75, 0.1, torch.float64),      # dt not exact in float32 (t is)
    ("a field that turns with t", 4000, 2, 0.9995, 1 / 2000, torch.float32),
    ("a whirl", 5000, 3, 0.5, 1 / 4096, torch.float32),
]


def check_euler_step(candidate):
    """Euler step x + dt v(x, t): v called once, at x and a (N,) time tensor t on x's device; values
    on four fields for N = 1 to 5000 points (the notebook's 4000 and beyond) in D = 1..5 dimensions,
    t = 0 and 1, dt = 1, 1/2000 and dt < 0, float32 and float64 (the output keeps the input's dtype,
    float64 outputs at float64 precision: the times tried are exact in float32, so a time tensor made
    in float32 is fine, a step computed in float32 is not);
    the input x unchanged; one case on another device (a GPU, or PyTorch's meta device) where the
    output stays on x's device."""
    g = generator(0)
    x = torch.randn(5, 2, generator=g)
    case = "5 points in 2-D, a time-dependent pull, t = 0.25, dt = 0.5"
    got = _one_step(candidate, "a time-dependent pull", x, 0.25, 0.5, case)
    _expect_step(got, flow.euler_step(_pull, x, 0.25, 0.5), x, 0.25, 0.5, _pull, case)
    for name, n, d, t, dt, dtype in _CASES:
        x = torch.randn(n, d, generator=g, dtype=dtype) * 2
        case = f"{n} point{'s' * (n > 1)} in {d}-D ({dtype}), {name}, t = {t:g}, dt = {dt:g}"
        got = _one_step(candidate, name, x, t, dt, case)
        _expect_step(got, flow.euler_step(FIELDS[name], x.clone(), t, dt), x, t, dt, FIELDS[name], case)
    x = torch.randn(3, 2, generator=g)
    desc = "3 points, t = 0.5, dt = 0.25"
    field = Field("a time-dependent pull", f"{desc} on {device_words(stand_in_device())}")
    expect_on_another_device(candidate, (field, x, 0.5, 0.25), flow.euler_step(_pull, x, 0.5, 0.25), desc)


# the exercises of this topic, in notebook order
EXERCISES = [
    Exercise("welcome.euler_step", reference=flow.euler_step, checker=check_euler_step,
             description=check_euler_step.__doc__, mistakes=EULER_STEP_MISTAKES, alternatives=EULER_STEP_ALTERNATIVES),
]
