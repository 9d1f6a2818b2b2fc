"""Exercises of notebook 09 (generation heads); see course_lib.course.homework for the mechanism.

* heads.flow_head_loss: the flow-matching head's loss with several (t, noise) draws per token
  (NextStep-1 / MAR's batch multiplier), in the course's convention t = 0 noise, t = 1 data;
* heads.energy_score: SLED's two-sample energy-score loss (beta = 1).

Every check calls the learner's function through :func:`~course_lib.course.checking.call` (inputs
changed in place, time limit, the reference handed in), compares the value and its gradients with
the reference's, on sizes and multipliers that change from case to case (down to one token), a
float64 case, and one case on another device (the GPU, or without one PyTorch's meta device).
"""
from __future__ import annotations

import math

import torch

from course_lib.course.checking import Exercise, Mismatch, call, expect_loss, expect_on_another_device
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


def _flow_alternatives(z, x, x0, t):
    m = t.shape[0] // x.shape[0]
    x1, zz = x.repeat(m, 1), z.repeat(m, 1)
    tt = t[:, None]
    inter = lambda a: a.repeat_interleave(m, 0)                          # noqa: E731
    sq = lambda v, target: (v - target).pow(2)                           # noqa: E731
    xt = (1 - tt) * x0 + tt * x1
    xt_flip = tt * x0 + (1 - tt) * x1
    yield (sq(_velocity(xt_flip, t, zz), x1 - x0).mean(),
           "t = 0 is noise and t = 1 is data in this course: x_t = (1 - t) x0 + t x, not t x0 + (1 - t) x")
    yield (sq(_velocity(xt_flip, t, zz), x0 - x1).mean(),
           "that is the other convention (t = 1 noise, target x0 - x): the course's is x_t = (1 - t) x0 + t x "
           "with target x - x0")
    yield (sq(_velocity(xt, t, zz), x0 - x1).mean(), "the target velocity is x - x0 (from noise to data), not x0 - x")
    yield (sq(_velocity(xt, t, zz), x1).mean(), "the target is the velocity x - x0, not the token x itself")
    yield (sq(_velocity(xt, t, zz), x1 - x0).sum(), "that is a sum; take the mean over rows and dimensions")
    yield (sq(_velocity(xt, t, zz), x1 - x0).sum(1).mean(), "that sums over the D dimensions; take the mean over "
                                                             "them too")
    x1i, zi = inter(x), inter(z)
    xti = (1 - tt) * x0 + tt * x1i
    yield (sq(_velocity(xti, t, zi), x1i - x0).mean(),
           "repeat the batch as x.repeat(M, 1) (the whole batch M times, [x_1..x_N, x_1..x_N, ...]), "
           "not repeat_interleave (each token M times in a row): x0 and t are laid out that way")


def check_flow_head_loss(candidate):
    """A 0-d loss attached to the graph with the reference's value and gradients with respect to z
    and x: the notebook's sizes (D = 4, M = 4), one draw per token (M = 1), M = 2 and 3, a single
    token, D = 1, a float64 case, and one on another device; the inputs unchanged."""
    g = torch.Generator().manual_seed(9)
    cases = [("the notebook's sizes: z (32, 16), x (32, 4), 4 draws per token", 32, 16, 4, 4, torch.float32),
             ("one draw per token: z (10, 8), x (10, 3)", 10, 8, 3, 1, torch.float32),
             ("2 draws per token: z (6, 8), x (6, 2)", 6, 8, 2, 2, torch.float32),
             ("3 draws per token: z (5, 6), x (5, 3)", 5, 6, 3, 3, torch.float32),
             ("a single token, 4 draws: z (1, 4), x (1, 2)", 1, 4, 2, 4, torch.float32),
             ("D = 1: z (7, 3), x (7, 1), 2 draws", 7, 3, 1, 2, torch.float32),
             ("float64: z (6, 8), x (6, 4), 3 draws", 6, 8, 4, 3, torch.float64)]
    for desc, n, c, d, m, dtype in cases:
        z = torch.randn(n, c, generator=g, dtype=dtype).requires_grad_(True)
        x = torch.randn(n, d, generator=g, dtype=dtype).requires_grad_(True)
        x0 = torch.randn(m * n, d, generator=g, dtype=dtype)
        t = torch.rand(m * n, generator=g, dtype=dtype)
        want = flow_head_loss(_velocity, z, x, x0, t)
        got = call(candidate, _velocity, z, x, x0, t, case=desc)
        atol, rtol = (1e-10, 1e-9) if dtype == torch.float64 else (1e-5, 1e-4)
        try:
            expect_loss(got, want, f"on {desc}, the loss", {"z": z, "x": x}, atol=atol, rtol=rtol)
        except Mismatch as e:
            if isinstance(got, torch.Tensor) and got.dim() == 0 and m > 1:
                for alt, hint in _flow_alternatives(z.detach(), x.detach(), x0, t):
                    if math.isclose(float(got.detach()), float(alt), rel_tol=1e-6, abs_tol=1e-9):
                        raise Mismatch(f"{e} ({hint})") from None
            raise
    z = torch.randn(8, 8, generator=g).requires_grad_(True)
    x = torch.randn(8, 4, generator=g)
    x0, t = torch.randn(32, 4, generator=g), torch.rand(32, generator=g)
    expect_on_another_device(candidate, (_velocity, z, x, x0, t), flow_head_loss(_velocity, z, x, x0, t),
                             "z (8, 8), x (8, 4), 4 draws")


# ----------------------------------------------------------------------------- energy_score

def _energy_hint(value, x1, x2, y) -> str:
    n = lambda a, dim=-1: torch.linalg.vector_norm(a, dim=dim)           # noqa: E731
    d1, d2, s = n(x1 - y), n(x2 - y), n(x1 - x2)
    alternatives = [
        ((d1 + d2).mean(), "the third term is missing: subtract ||x1 - x2||, the repulsion between the two "
                           "samples; without it the best head outputs one point, as the MSE head does"),
        ((d1 + d2 + s).mean(), "the spread ||x1 - x2|| is SUBTRACTED (it rewards two different samples), not added"),
        ((d1 ** 2 + d2 ** 2 - s ** 2).mean(), "use the norms themselves (beta = 1), not their squares: with "
                                             "beta = 2 the score only sees the mean and is no longer strictly proper"),
        ((d1 + d2 - 0.5 * s).mean(), "the spread enters with weight 1 in the two-sample form: ||x1 - y|| + "
                                     "||x2 - y|| - ||x1 - x2||"),
        ((0.5 * (d1 + d2) - 0.5 * s).mean(), "that is half of SLED's loss; use ||x1 - y|| + ||x2 - y|| - ||x1 - x2||"),
        ((d1 + d2 - s).sum(), "that is a sum over the rows; take the mean"),
        ((n(x1 - y, 0).sum() + n(x2 - y, 0).sum() - n(x1 - x2, 0).sum()) / x1.shape[0],
         "take each norm over the last dimension (one distance per token), not over the batch"),
        ((2 * d1 - s).mean(), "use both samples: ||x1 - y|| + ||x2 - y||, not 2 ||x1 - y||"),
    ]
    for alt, text in alternatives:
        if math.isclose(value, float(alt), rel_tol=1e-6, abs_tol=1e-9):
            return text
    return ""


def check_energy_score(candidate):
    """A 0-d loss attached to the graph with the reference's value and gradients with respect to
    x1, x2 (both samples must be trained) and y: the notebook's tokens (D = 4), one row, D = 1,
    many rows, a float64 case, and one on another device; the inputs unchanged."""
    g = torch.Generator().manual_seed(4)
    cases = [("the notebook's tokens: (64, 4)", 64, 4, torch.float32), ("one row: (1, 3)", 1, 3, torch.float32),
             ("D = 1: (9, 1)", 9, 1, torch.float32), ("(200, 8)", 200, 8, torch.float32),
             ("float64: (7, 5)", 7, 5, torch.float64)]
    for desc, n, d, dtype in cases:
        x1 = torch.randn(n, d, generator=g, dtype=dtype).requires_grad_(True)
        x2 = torch.randn(n, d, generator=g, dtype=dtype).requires_grad_(True)
        y = torch.randn(n, d, generator=g, dtype=dtype).requires_grad_(True)
        want = energy_score(x1, x2, y)
        got = call(candidate, x1, x2, y, case=desc)
        atol, rtol = (1e-10, 1e-9) if dtype == torch.float64 else (1e-5, 1e-4)
        try:
            expect_loss(got, want, f"on {desc}, the loss", {"x1": x1, "x2": x2, "y": y}, atol=atol, rtol=rtol)
        except Mismatch as e:
            if isinstance(got, torch.Tensor) and got.dim() == 0:
                hint = _energy_hint(float(got.detach()), x1.detach(), x2.detach(), y.detach())
                if hint:
                    raise Mismatch(f"{e} ({hint})") from None
            raise
    x1, x2, y = (torch.randn(16, 4, generator=g) for _ in range(3))
    expect_on_another_device(candidate, (x1, x2, y), energy_score(x1, x2, y), "(16, 4)")


# the exercises of this topic, in notebook order
EXERCISES = [
    Exercise("heads.flow_head_loss", reference=flow_head_loss, checker=check_flow_head_loss,
             description=check_flow_head_loss.__doc__),
    Exercise("heads.energy_score", reference=energy_score, checker=check_energy_score,
             description=check_energy_score.__doc__),
]
