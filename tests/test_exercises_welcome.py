"""Wrong and correct answers to notebook 00's exercise: each wrong one is caught with a message that
names its mistake; each correct one, written otherwise than the reference, passes.
tests/test_homework.py reads WRONG_ANSWERS too."""
import torch

from course_lib.course import homework


def _t(x, t):
    return torch.full((x.shape[0],), float(t), device=x.device)


def backwards(v, x, t, dt):          # steps against the field
    return x - dt * v(x, _t(x, t))


def forgets_dt(v, x, t, dt):         # a whole unit of time per step
    return x + v(x, _t(x, t))


def wrong_time(v, x, t, dt):         # evaluates the field at the end of the step
    return x + dt * v(x, _t(x, t + dt))


def returns_step(v, x, t, dt):       # the displacement, not the new position
    return dt * v(x, _t(x, t))


def no_move(v, x, t, dt):            # forgets to apply the update
    return x.clone()


def in_place(v, x, t, dt):           # moves the caller's points
    x += dt * v(x, _t(x, t))
    return x


def float_time(v, x, t, dt):         # hands v the float t, not one time per point
    return x + dt * v(x, t)


def fixed_batch(v, x, t, dt):        # one time per point... for the 5 points of the first try
    return x + dt * v(x, torch.full((5,), float(t)))


def cpu_time(v, x, t, dt):           # the times on a fixed device
    return x + dt * v(x, torch.full((x.shape[0],), float(t), device="cpu"))


def float32_out(v, x, t, dt):        # casts to float32
    x = x.float()
    return x + dt * v(x, _t(x, t))


def midpoint(v, x, t, dt):           # a better method, but not the Euler step asked for
    mid = x + 0.5 * dt * v(x, _t(x, t))
    return x + dt * v(mid, _t(x, t + 0.5 * dt))


WRONG = {"welcome.euler_step": [
    (backwards, "moved against the field"),
    (forgets_dt, "multiply the velocity by dt"),
    (wrong_time, "the end of the step"),
    (returns_step, "you returned the step dt * v(x, t)"),
    (no_move, "did not move"),
    (in_place, "changed its input `x` in place"),
    (float_time, "v was called with t of type float"),
    (fixed_batch, "v was called with t of shape (5,) for 7 points"),
    (cpu_time, "v was called with t on cpu"),
    (float32_out, "returned dtype torch.float32; expected torch.float64"),
    (midpoint, "v was called 2 times"),
]}
WRONG_ANSWERS = {name: [fn for fn, _ in pairs] for name, pairs in WRONG.items()}


def with_full_like(v, x, t, dt):
    return x + v(x, torch.full_like(x[:, 0], t)) * dt


def with_new_ones(v, x, t, dt):
    tt = x.new_ones(len(x)) * t
    return torch.add(x, v(x, tt), alpha=dt)


def with_float64_time(v, x, t, dt):  # t in float64 whatever x is: fine for a field that promotes
    times = torch.tensor([t] * x.shape[0], dtype=torch.float64, device=x.device)
    velocity = v(x, times)
    return x + dt * velocity.to(x.dtype)


CORRECT_ANSWERS = {"welcome.euler_step": [with_full_like, with_new_ones, with_float64_time]}


def test_half_written_answer_says_which_part_works():
    def only_forward(v, x, t, dt):
        if dt < 0:
            raise NotImplementedError()
        return x + dt * v(x, torch.full((x.shape[0],), float(t), device=x.device))
    r = homework.run_check("welcome.euler_step", only_forward)
    assert r.status == "not attempted" and "works on" in r.message, r
