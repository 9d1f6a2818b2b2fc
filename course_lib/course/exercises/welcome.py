"""Exercises of notebook 00 (welcome): one small exercise that shows the mechanism.

The reference is :func:`course_lib.flow.euler_step`, the step the course's ODE solver takes.
"""
import torch

from course_lib import flow
from course_lib.course.checking import Case, Exercise, Mismatch, compare


def _fields():
    def rotate(x, t):                     # a whirl that does not depend on time
        return torch.stack([-x[:, 1], x[:, 0]], 1)

    def to_target(x, t):                  # time-dependent: the speed grows with t
        return (torch.tensor([2.0, -1.0]) - x) * (1 + 3 * t[:, None])

    def shrink(x, t):
        return -0.5 * x
    return {"a rotation field": rotate, "a time-dependent field pulling to (2, -1)": to_target,
            "a shrinking field": shrink}


def check_euler_step(candidate):
    """Euler step on three fields, several times and step sizes."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 2, generator=g)
    probe = candidate(_fields()["a shrinking field"], x.clone(), 0.0, 0.25)
    if isinstance(probe, torch.Tensor) and probe.shape == x.shape and torch.allclose(probe, x):
        raise Mismatch("the point did not move: x_{t+dt} should be x_t + dt * v(x_t, t)")
    cases = [Case(f"{name}, t={t}, dt={dt}", (v, x, t, dt))
             for name, v in _fields().items() for t, dt in [(0.0, 0.25), (0.5, 0.25), (0.75, 0.1)]]
    compare(candidate, flow.euler_step, cases)


# the exercises of this topic, in notebook order
EXERCISES = [
    Exercise("welcome.euler_step", reference=flow.euler_step, checker=check_euler_step, description=check_euler_step.__doc__),
]
