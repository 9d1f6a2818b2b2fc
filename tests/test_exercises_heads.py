"""Notebook 09's exercises (generation heads): each known mistake (Exercise.mistakes, in
course_lib/course/exercises/heads.py) is caught with its own message and each correct alternative passes
(tests/mistakes.py); the wrong answers below are not named mistakes but kinds the checks must catch (a
fixed size, a float, an input changed in place, a device); the correct ones, written otherwise than the
reference, pass. tests/test_homework.py runs WRONG and CORRECT_ANSWERS."""
import torch

from course_lib.course.exercises import heads as topic
from tests.mistakes import known_mistake_tests

test_known_mistake_named, test_correct_alternative_passes = known_mistake_tests(topic)


# ----------------------------------------------------------------------------- flow_head_loss

def _parts(z, x, t):
    m = t.shape[0] // x.shape[0]
    return x.repeat(m, 1), z.repeat(m, 1), t[:, None]


def fm_fixed_four(velocity, z, x, x0, t):
    x1, zz, tt = x.repeat(4, 1), z.repeat(4, 1), t[:, None]
    return (velocity((1 - tt) * x0 + tt * x1, t, zz) - (x1 - x0)).pow(2).mean()


def fm_item(velocity, z, x, x0, t):
    x1, zz, tt = _parts(z, x, t)
    return (velocity((1 - tt) * x0 + tt * x1, t, zz) - (x1 - x0)).pow(2).mean().item()


def fm_in_place(velocity, z, x, x0, t):
    x1, zz, tt = _parts(z, x, t)
    x0.mul_(1 - tt)
    return (velocity(x0 + tt * x1, t, zz) - (x1 - x0 / (1 - tt))).pow(2).mean()


# ----------------------------------------------------------------------------- energy_score

def _n(a):
    return torch.linalg.vector_norm(a, dim=-1)


def es_item(x1, x2, y):
    return (_n(x1 - y) + _n(x2 - y) - _n(x1 - x2)).mean().item()


def es_cpu_accumulator(x1, x2, y):
    per_row = torch.zeros(x1.shape[0])                                  # made on the CPU
    return (per_row + _n(x1 - y) + _n(x2 - y) - _n(x1 - x2)).mean()


WRONG = {
    "heads.flow_head_loss": [
        (fm_fixed_four, ("raised", "expected shape")),
        (fm_item, "did you call .item()"),
        (fm_in_place, "in place"),
    ],
    "heads.energy_score": [
        (es_item, "did you call .item()"),
        (es_cpu_accumulator, ("another device", "on cpu")),
    ],
}
WRONG_ANSWERS = {name: [fn for fn, _ in pairs] for name, pairs in WRONG.items()}


def fm_by_hand(velocity, z, x, x0, t):
    n, d = x.shape
    m = len(t) // n
    rows = [velocity((1 - t[k * n:(k + 1) * n, None]) * x0[k * n:(k + 1) * n] + t[k * n:(k + 1) * n, None] * x,
                     t[k * n:(k + 1) * n], z) - (x - x0[k * n:(k + 1) * n]) for k in range(m)]
    return torch.cat(rows).square().sum() / (m * n * d)


def es_by_hand(x1, x2, y):
    d = lambda a, b: ((a - b) ** 2).sum(dim=1).sqrt()                    # noqa: E731
    return torch.mean(d(x1, y) + d(x2, y) - d(x1, x2))


def es_pairwise_distance(x1, x2, y):        # F.pairwise_distance adds eps = 1e-6 to the differences
    d = torch.nn.functional.pairwise_distance
    return (d(x1, y) + d(x2, y) - d(x1, x2)).mean()


CORRECT_ANSWERS = {
    "heads.flow_head_loss": [fm_by_hand],
    "heads.energy_score": [es_by_hand, es_pairwise_distance],
}
