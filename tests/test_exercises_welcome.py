"""Wrong and correct answers to notebook 00's exercise.

The known mistakes and correct alternatives live once, in course_lib/course/exercises/welcome.py:
known_mistake_tests submits each mistake (caught with its own message) and each alternative (passes).
``WRONG`` holds wrong answers that are kinds the check catches (how v is called, the dtype, an input
changed in place, a size the small cases miss) or a known mistake written otherwise, which must still
be named; each must fail with the fragment given. tests/test_homework.py reads WRONG and WRONG_ANSWERS.
"""
import torch

from course_lib.course import homework
from course_lib.course.exercises import welcome
from tests.mistakes import known_mistake_tests

test_known_mistake_named, test_correct_alternative_passes = known_mistake_tests(welcome)


def _t(x, t):
    return torch.full((x.shape[0],), float(t), device=x.device)






def wrong_time(v, x, t, dt):         # evaluates the field at the end of the step
    return x + dt * v(x, _t(x, t + dt))




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


def float32_inside(v, x, t, dt):     # steps in float32, returns float64: right only to float32 precision
    x32 = x.float()
    return (x32 + dt * v(x32, _t(x32, t))).to(x.dtype)


def midpoint(v, x, t, dt):           # a better method, but not the Euler step asked for
    mid = x + 0.5 * dt * v(x, _t(x, t))
    return x + dt * v(mid, _t(x, t + 0.5 * dt))


def step_by_torch_add_backwards(v, x, t, dt):   # the "backwards" mistake written otherwise: still named
    return torch.add(x, v(x, torch.full_like(x[:, 0], t)), alpha=-dt)


def only_the_first_4096_points(v, x, t, dt):    # "in chunks of 4096", the tail forgotten: right up to 4096 points
    out = x.clone()
    n = min(len(x), 4096)
    out[:n] = x[:n] + dt * v(x, _t(x, t))[:n]
    return out


WRONG = {"welcome.euler_step": [
    (wrong_time, "the end of the step"),
    (no_move, "did not move"),
    (in_place, "changed its input `x` in place"),
    (float_time, "v was called with t of type float"),
    (fixed_batch, "v was called with t of shape (5,) for 7 points"),
    (cpu_time, "v was called with t on cpu"),
    (float32_out, "returned dtype torch.float32; expected torch.float64"),
    (float32_inside, "only to float32 precision"),
    (midpoint, "v was called 2 times"),
    (step_by_torch_add_backwards, "the points moved against the field"),
    (only_the_first_4096_points, "on 5000 points in 3-D"),
]}
WRONG_ANSWERS = {name: [fn for fn, _ in pairs] for name, pairs in WRONG.items()}








CORRECT_ANSWERS = {}                   # the correct alternatives are Exercise.alternatives (welcome.py)


def test_half_written_answer_says_which_part_works():
    def only_forward(v, x, t, dt):
        if dt < 0:
            raise NotImplementedError()
        return x + dt * v(x, torch.full((x.shape[0],), float(t), device=x.device))
    r = homework.run_check("welcome.euler_step", only_forward)
    assert r.status == "not attempted" and "works on" in r.message, r
