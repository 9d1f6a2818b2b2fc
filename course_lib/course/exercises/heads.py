"""Exercises of notebook 09 (generation heads); see course_lib.course.homework for the mechanism.

* heads.flow_head_loss: the flow-matching head's loss with several (t, noise) draws per token
  (NextStep-1 / MAR's batch multiplier), in the course's convention t = 0 noise, t = 1 data;
* heads.energy_score: SLED's two-sample energy-score loss (beta = 1).

Every check calls the learner's function through :func:`~course_lib.course.checking.call` (inputs
changed in place, time limit, the reference handed in), compares the value and its gradients with
the reference's, on sizes and multipliers that change from case to case (down to one token, and
beyond the notebook's), a float64 case, and one case on another device (the GPU, or without one
PyTorch's meta device). Each exercise lists its known mistakes once
(:class:`~course_lib.course.checking.Mistake`); a check names one only when it reproduces the
learner's value and gradients.
"""
from __future__ import annotations

import torch

from course_lib.course.checking import (Exercise, Mistake, call, expect_loss, expect_on_another_device, generator,
                                        gradients, naming)
from course_lib.heads import energy_score_loss


# ----------------------------------------------------------------------------- references

def flow_head_loss(velocity, z: torch.Tensor, x: torch.Tensor, x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """velocity(x_t (M N, D), t (M N,), z (M N, C)) -> (M N, D); z (N, C) conditions; x (N, D) tokens;
    x0 (M N, D) noise and t (M N,) times for M = len(t) // N draws per token, the batch repeated
    as ``x.repeat(M, 1)`` (MAR's and NextStep-1's order). Returns the mean over the M N rows and D
    dims of || velocity(x_t, t, z) - (x - x0) ||^2 with x_t = (1 - t) x0 + t x."""
    m = t.shape[0] // x.shape[0]
    x1, zz = x.repeat(m, 1), z.repeat(m, 1)                              # (M N, D), (M N, C)
    x_t = (1 - t[:, None]) * x0 + t[:, None] * x1
    return (velocity(x_t, t, zz) - (x1 - x0)).pow(2).mean()


def energy_score(x1: torch.Tensor, x2: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean over the N rows of ||x1 - y|| + ||x2 - y|| - ||x1 - x2|| (Euclidean norms over the last dim)."""
    return energy_score_loss(x1, x2, y, 1.0)


# ----------------------------------------------------------------------------- flow_head_loss

def _velocity(x_t, t, z):
    """A made-up velocity field that reads all three inputs, elementwise (works on any device)."""
    d = x_t.shape[1]
    return torch.sin(x_t + z[:, :d]) * (1 + t[:, None]) + 0.5 * z[:, -d:] * t[:, None]


def _fm(path=lambda x0, x1, tt: (1 - tt) * x0 + tt * x1, target=lambda x0, x1: x1 - x0, repeat="batch",
        reduce=lambda e: e.mean()):
    """flow_head_loss with one part swapped for a known mistake's: the path x_t, the target, how the
    batch is repeated, the reduction of the squared errors."""
    def loss(velocity, z, x, x0, t):
        m = t.shape[0] // x.shape[0]
        rep = (lambda a: a.repeat(m, 1)) if repeat == "batch" else (lambda a: a.repeat_interleave(m, 0))
        x1, zz, tt = rep(x), rep(z), t[:, None]                           # (M N, D), (M N, C), (M N, 1)
        return reduce((velocity(path(x0, x1, tt), t, zz) - target(x0, x1)).pow(2))
    return loss


_FLIPPED = lambda x0, x1, tt: tt * x0 + (1 - tt) * x1                    # noqa: E731

FLOW_MISTAKES = (
    Mistake("flipped_time", _fm(path=_FLIPPED),
            "t = 0 is noise and t = 1 is data in this course: x_t = (1 - t) x0 + t x, not t x0 + (1 - t) x"),
    Mistake("other_convention", _fm(path=_FLIPPED, target=lambda x0, x1: x0 - x1),
            "that is the other convention (t = 1 noise, target x0 - x): the course's is x_t = (1 - t) x0 + t x "
            "with target x - x0"),
    Mistake("target_sign", _fm(target=lambda x0, x1: x0 - x1),
            "the target velocity is x - x0 (from noise to data), not x0 - x"),
    Mistake("target_is_data", _fm(target=lambda x0, x1: x1), "the target is the velocity x - x0, not the token x itself"),
    Mistake("sum", _fm(reduce=lambda e: e.sum()), "that is a sum; take the mean over rows and dimensions"),
    Mistake("sum_over_dims", _fm(reduce=lambda e: e.sum(1).mean()),
            "that sums over the D dimensions; take the mean over them too"),
    Mistake("interleave", _fm(repeat="interleave"),
            "repeat the batch as x.repeat(M, 1) (the whole batch M times, [x_1..x_N, x_1..x_N, ...]), not "
            "repeat_interleave (each token M times in a row): x0 and t are laid out that way"),
    Mistake("z_detached", lambda velocity, z, x, x0, t: _fm()(velocity, z.detach(), x, x0, t),
            "z was detached: the loss must train the transformer that made z too (no .detach() on z)"),
)


def check_flow_head_loss(candidate):
    """A 0-d loss attached to the graph with the reference's value and gradients with respect to z
    and x: the notebook's sizes (D = 4, M = 4; its toy: 256 tokens of D = 2 from C = 3), one draw per
    token (M = 1), M = 2, 3 and 8, a single token, D = 1, a float64 case, and one on another device;
    the inputs unchanged. A known mistake is named only when the learner's value AND gradients are
    that mistake's."""
    g = generator(9)
    cases = [("the notebook's sizes: z (32, 16), x (32, 4), 4 draws per token", 32, 16, 4, 4, torch.float32),
             ("one draw per token: z (10, 8), x (10, 3)", 10, 8, 3, 1, torch.float32),
             ("2 draws per token: z (6, 8), x (6, 2)", 6, 8, 2, 2, torch.float32),
             ("3 draws per token: z (5, 6), x (5, 3)", 5, 6, 3, 3, torch.float32),
             ("a single token, 4 draws: z (1, 4), x (1, 2)", 1, 4, 2, 4, torch.float32),
             ("D = 1: z (7, 3), x (7, 1), 2 draws", 7, 3, 1, 2, torch.float32),
             ("float64: z (6, 8), x (6, 4), 3 draws", 6, 8, 4, 3, torch.float64),
             ("beyond the notebook's toy: z (300, 3), x (300, 2), 8 draws", 300, 3, 2, 8, torch.float32)]
    for desc, n, c, d, m, dtype in cases:
        z = torch.randn(n, c, generator=g, dtype=dtype).requires_grad_(True)
        x = torch.randn(n, d, generator=g, dtype=dtype).requires_grad_(True)
        x0 = torch.randn(m * n, d, generator=g, dtype=dtype)
        t = torch.rand(m * n, generator=g, dtype=dtype)
        got = call(candidate, _velocity, z, x, x0, t, case=desc)
        atol, rtol = (1e-10, 1e-9) if dtype == torch.float64 else (1e-5, 1e-4)
        with naming(FLOW_MISTAKES, (got, gradients(got, [z, x])), _velocity, z, x, x0, t, wrt=(1, 2)):
            expect_loss(got, flow_head_loss(_velocity, z, x, x0, t), f"on {desc}, the loss", {"z": z, "x": x},
                        atol=atol, rtol=rtol)
    z = torch.randn(8, 8, generator=g).requires_grad_(True)
    x = torch.randn(8, 4, generator=g)
    x0, t = torch.randn(32, 4, generator=g), torch.rand(32, generator=g)
    expect_on_another_device(candidate, (_velocity, z, x, x0, t), flow_head_loss(_velocity, z, x, x0, t),
                             "z (8, 8), x (8, 4), 4 draws")


# ----------------------------------------------------------------------------- energy_score

def _es(w1=1.0, w2=1.0, spread=-1.0, power=1, dim=-1, reduce=lambda e: e.mean(), second=lambda x1, x2: x2):
    """w1 ||x1 - y||^power + w2 ||x2' - y||^power + spread ||x1 - x2'||^power, reduced; x2' =
    second(x1, x2): the energy score with one part swapped for a known mistake's."""
    def loss(x1, x2, y):
        x2 = second(x1, x2)
        n = lambda a: torch.linalg.vector_norm(a, dim=dim).pow(power)       # noqa: E731
        return reduce(w1 * n(x1 - y) + w2 * n(x2 - y) + spread * n(x1 - x2))
    return loss


ENERGY_MISTAKES = (
    Mistake("no_repulsion", _es(spread=0.0),
            "the third term is missing: subtract ||x1 - x2||, the repulsion between the two samples; without it "
            "the best head outputs one point, as the MSE head does"),
    Mistake("plus_spread", _es(spread=1.0),
            "the spread ||x1 - x2|| is SUBTRACTED (it rewards two different samples), not added"),
    Mistake("squared", _es(power=2),
            "use the norms themselves (beta = 1), not their squares: with beta = 2 the score only sees the mean "
            "and is no longer strictly proper"),
    Mistake("half_spread", _es(spread=-0.5),
            "the spread enters with weight 1 in the two-sample form: ||x1 - y|| + ||x2 - y|| - ||x1 - x2||"),
    Mistake("half", _es(w1=0.5, w2=0.5, spread=-0.5),
            "that is half of SLED's loss; use ||x1 - y|| + ||x2 - y|| - ||x1 - x2||"),
    Mistake("sum", _es(reduce=lambda e: e.sum()), "that is a sum over the rows; take the mean"),
    Mistake("norm_over_batch", lambda x1, x2, y: _es(dim=0, reduce=lambda e: e.sum())(x1, x2, y) / x1.shape[0],
            "take each norm over the last dimension (one distance per token), not over the batch"),
    Mistake("one_sample_twice", _es(w1=2.0, w2=0.0), "use both samples: ||x1 - y|| + ||x2 - y||, not 2 ||x1 - y||"),
    Mistake("second_detached", _es(second=lambda x1, x2: x2.detach()),
            "x2 was detached: both samples come from the head and both must be trained (no .detach())"),
)


def check_energy_score(candidate):
    """A 0-d loss attached to the graph with the reference's value and gradients with respect to
    x1, x2 (both samples must be trained) and y: the notebook's tokens (D = 4; its toy: 256 rows of
    D = 2), one row, D = 1, many rows, a float64 case (at float64 precision; distances ~1e4, where
    F.pairwise_distance's eps of 1e-6 does not matter), and one on another device; the inputs
    unchanged. A known mistake is named only when the learner's value AND gradients are that mistake's."""
    g = generator(4)
    cases = [("the notebook's tokens: (64, 4)", 64, 4, torch.float32), ("one row: (1, 3)", 1, 3, torch.float32),
             ("D = 1: (9, 1)", 9, 1, torch.float32), ("(200, 8)", 200, 8, torch.float32),
             # float64 at float64 precision, on distances ~1e4: a norm with a small eps (F.pairwise_distance's
             # 1e-6) agrees there, a step in float32 does not
             ("float64: (7, 5), entries ~1e4", 7, 5, torch.float64), ("beyond the notebook's toy: (2000, 2)", 2000, 2, torch.float32)]
    for desc, n, d, dtype in cases:
        scale = 1e4 if dtype == torch.float64 else 1.0
        x1, x2, y = ((torch.randn(n, d, generator=g, dtype=dtype) * scale).requires_grad_(True) for _ in range(3))
        got = call(candidate, x1, x2, y, case=desc)
        atol, rtol = (1e-10, 1e-9) if dtype == torch.float64 else (1e-5, 1e-4)
        with naming(ENERGY_MISTAKES, (got, gradients(got, [x1, x2, y])), x1, x2, y, wrt=(0, 1, 2)):
            expect_loss(got, energy_score(x1, x2, y), f"on {desc}, the loss", {"x1": x1, "x2": x2, "y": y},
                        atol=atol, rtol=rtol)
    x1, x2, y = (torch.randn(16, 4, generator=g) for _ in range(3))
    expect_on_another_device(candidate, (x1, x2, y), energy_score(x1, x2, y), "(16, 4)")


# the exercises of this topic, in notebook order
EXERCISES = [
    Exercise("heads.flow_head_loss", reference=flow_head_loss, checker=check_flow_head_loss,
             description=check_flow_head_loss.__doc__, mistakes=FLOW_MISTAKES),
    Exercise("heads.energy_score", reference=energy_score, checker=check_energy_score,
             description=check_energy_score.__doc__, mistakes=ENERGY_MISTAKES),
]
