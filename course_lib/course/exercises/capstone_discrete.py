"""Notebook 11, open project B (discrete flow matching): the check of its first step.

* capstone.mask_path_sample: a draw of x_t from the masked mixture path of Gat et al. 2024 (§2;
  ``MixtureDiscreteProbPath.sample``): each token of x_1 kept with probability kappa(t) of its row, else
  the mask id, independently per token.

The reference is :func:`course_lib.orders.discrete_flow.mask_path_sample`. The output is random, so the
check does not ask for the reference's very draws (``torch.rand(...) < p`` and ``torch.bernoulli`` are
both right): it checks what every correct draw has, and names the mistake that breaks it: each position
holds x_1's token or the mask id (not 0, not the id next to it); rows at kappa = 0 are all masks and rows
at kappa = 1 all kept (time reversed, t not broadcast per row); on 20,000 tokens per row the share kept
is kappa(t) within six standard deviations (1 - kappa, t instead of kappa(t), one draw per row); rows
with the same t get different masks (one draw per position shared by the rows); the same generator seed
gives the same draw and another seed another one. Every call goes through
:func:`~course_lib.course.checking.call` (inputs unchanged, time limit); int64 stays int64; one case runs
on another device.
"""
from __future__ import annotations

import torch

from course_lib.course import checking
from course_lib.course.checking import (CannotTell, Exercise, Mismatch, Mistake, call_on, device_words,
                                        expect_a_tensor, generator, stand_in_device)
from course_lib.orders import discrete_flow as dfm


def _path(keep_p=lambda kappa, t: kappa(t)[:, None], fill=lambda mask_id: mask_id, draws=lambda x1: x1.shape):
    """mask_path_sample with one part swapped for a known mistake's: the keep probability (and how it
    broadcasts), the id written at masked positions, the shape of the uniforms drawn."""
    def sample(x1, t, mask_id, kappa, generator=None):
        u = torch.rand(draws(x1), generator=generator).to(x1.device)
        keep = u < keep_p(kappa, t)
        return torch.where(keep, x1, torch.full_like(x1, fill(mask_id)))
    return sample


def _exact_count(x1, t, mask_id, kappa, generator=None):
    """MaskGIT's masking: exactly round(kappa(t) N) tokens of each row kept, at random places."""
    u = torch.rand(x1.shape, generator=generator).to(x1.device)                             # (B, N)
    n_keep = (kappa(t) * x1.shape[1]).round().long().to(x1.device)                         # (B,)
    keep = u.argsort(1).argsort(1) < n_keep[:, None]                                        # (B, N) the n_keep lowest
    return torch.where(keep, x1, torch.full_like(x1, mask_id))


REVERSED = ("time runs the other way: at t = 0 (noise) every token is the mask and at t = 1 (data) every token is "
            "kept, so a token is KEPT with probability kappa(t), masked with probability 1 - kappa(t)")
BROADCAST = ("t has shape (B,), one time per row: give kappa(t) a trailing axis, kappa(t)[:, None], so that "
             "row b uses its own time (without it, the B times run along the tokens)")
PER_ROW = ("one draw per row decides all its tokens at once: draw one uniform PER TOKEN, "
           "torch.rand(x1.shape, generator=generator), so that each token is kept or masked on its own")
ZERO = ("the masked positions hold 0, a real token id: write mask_id there (the model's [MASK] id, one past "
        "the last code)")
OFF_BY_ONE = "the masked positions hold an id next to mask_id: write mask_id itself, not mask_id - 1 or + 1"
KAPPA = ("the keep probability is t itself: it is kappa(t), the scheduler applied to t (with kappa(t) = t^2 a "
         "token at t = 0.5 is kept a quarter of the time)")
EXACT = ("every row keeps exactly round(kappa(t) N) tokens, as MaskGIT's schedule does: on the mixture path each "
         "token is kept on its own with probability kappa(t), so the number kept varies from row to row (binomial): "
         "keep = torch.rand(x1.shape, generator=generator) < kappa(t)[:, None]")
SHARED = ("the 4 rows have the very same mask: the uniforms have shape (N,), one per position, reused by every row; draw "
          "one per token of the batch, shape x1.shape")

MISTAKES = (
    Mistake("reversed", _path(keep_p=lambda kappa, t: 1 - kappa(t)[:, None]), REVERSED),
    Mistake("unbroadcast_t", _path(keep_p=lambda kappa, t: kappa(t)), BROADCAST),
    Mistake("one_draw_per_row", _path(draws=lambda x1: (x1.shape[0], 1)), PER_ROW),
    Mistake("mask_zero", _path(fill=lambda mask_id: 0), ZERO),
    Mistake("mask_off_by_one", _path(fill=lambda mask_id: mask_id - 1), OFF_BY_ONE),
    Mistake("kappa_ignored", _path(keep_p=lambda kappa, t: t[:, None]), KAPPA),
    Mistake("shared_draws", _path(draws=lambda x1: x1.shape[1:]), SHARED),
    Mistake("exact_count", _exact_count, EXACT),
)


def _tokens(n, length, K, seed):
    return torch.randint(0, K, (n, length), generator=generator(seed))                     # (n, length) int64


def _draw(candidate, x1, t, mask_id, kappa, seed, case):
    """The learner's x_t on this case, checked for what every draw has: a (B, N) int64 tensor whose
    positions hold x1's token or the mask id."""
    out = checking.call_hinted(candidate, x1, t, mask_id, kappa, generator(seed), case=case,
                               hints={checking.BROADCAST: BROADCAST})
    what = f"on {case}"
    expect_a_tensor(out, what)
    if tuple(out.shape) != tuple(x1.shape):
        raise Mismatch(f"{what}: expected shape {tuple(x1.shape)} like x1, got {tuple(out.shape)}")
    if out.dtype != torch.long:
        raise Mismatch(f"{what}: returned dtype {out.dtype}; x_t holds token ids, int64 like x1 (build it with "
                       f"torch.where(keep, x1, torch.full_like(x1, mask_id)), not arithmetic on floats or bools)")
    if out.device.type != x1.device.type:
        raise Mismatch(f"{what}: returned a tensor on {out.device}; expected one on {x1.device} like x1")
    other = (out != x1) & (out != mask_id)                                                 # (B, N)
    if bool(other.any()):
        vals = out[other]
        i = tuple(int(j) for j in other.nonzero()[0])
        why = ZERO if bool((vals == 0).all()) else OFF_BY_ONE if bool(((vals - mask_id).abs() == 1).all()) else (
            "every position holds x1's token (kept) or mask_id (masked), nothing else")
        raise Mismatch(f"{what}: position {i} holds {int(out[i])}, neither x1's token {int(x1[i])} nor the mask id "
                       f"{mask_id} ({int(other.sum())} such positions): {why}")
    return out


def _shares(out, mask_id):
    return (out != mask_id).double().mean(1)                                               # (B,) share kept per row


def check_mask_path_sample(candidate):
    """x_t with each token of x1 kept with probability kappa(t) of its row and the mask id elsewhere,
    independently per token: a (B, N) int64 tensor holding x1's tokens or mask_id (0 or the id next to
    mask_id at a masked position are named); rows at t = 0 all masked and at t = 1 all kept with kappa(t)
    = t (time reversed and t not broadcast per row are named); on 5 rows of 20,000 tokens with kappa(t) =
    t^2, each row's kept share within 6 standard deviations of kappa(t) (1 - kappa, t in place of kappa(t)
    and one draw per row are named); 4 rows with the same t get different masks (one draw per position
    shared by the rows is named); over 400 rows of 50 tokens at t = 0.5 the count kept varies from row to row
    as a binomial's (exactly round(kappa(t) N) kept per row, MaskGIT's masking, is named); the same seed of ``generator`` gives the same draw, another seed
    another; float32 and float64 times, mask ids 7, 256 and 1000, x1 unchanged; one case on another device."""
    linear, square = dfm.Polynomial(1.0), dfm.Polynomial(2.0)
    # the ends of the path: t = 0 is all masks, t = 1 all tokens (B != N, then B = N)
    for n, length, K in ((6, 50, 256), (6, 6, 7)):
        x1 = _tokens(n, length, K, seed=n + length)
        t = torch.tensor([0.0, 1.0, 0.0, 1.0, 1.0, 0.0])
        case = f"{n} rows of {length} tokens (mask id {K}), t = {t.tolist()}, kappa(t) = t"
        out = _draw(candidate, x1, t, K, linear, 1, case)
        kept = out != K                                                                    # (B, N)
        want = t.bool()[:, None].expand_as(kept)
        if not torch.equal(kept, want):
            if torch.equal(kept, ~want):
                why = REVERSED
            elif n == length and torch.equal(kept, t.bool()[None, :].expand_as(kept)):
                why = BROADCAST
            else:
                why = "a row at kappa(t) = 0 must be all masks, a row at kappa(t) = 1 keep all of x1"
            b = int((kept != want).any(1).nonzero()[0])
            raise Mismatch(f"on {case}: row {b} (t = {t[b].item():g}) keeps {int(kept[b].sum())} of {length} tokens, "
                           f"expected {length if t[b] else 0}: {why}")
    # the share kept is kappa(t), per row, per token
    t = torch.tensor([0.1, 0.3, 0.5, 0.7, 0.9], dtype=torch.float64)
    n_tok = 20_000
    x1 = _tokens(5, n_tok, 1000, seed=3)
    case = f"5 rows of {n_tok} tokens (mask id 1000), t = {t.tolist()} (float64), kappa(t) = t^2"
    share = _shares(_draw(candidate, x1, t, 1000, square, 2, case), 1000)
    k = square(t)
    tol = 6 * (k * (1 - k) / n_tok).sqrt() + 1e-3
    if ((share - k).abs() > tol).any():
        def near(p):
            return bool(((share - p).abs() <= 6 * (p * (1 - p) / n_tok).sqrt() + 1e-3).all())
        why = (REVERSED if near(1 - k) else KAPPA if near(t) else
               PER_ROW if bool(((share == 0) | (share == 1)).all()) else "a token is kept with probability kappa(t)")
        b = int(((share - k).abs() > tol).nonzero()[0])
        raise Mismatch(f"on {case}: row {b} keeps a share {share[b].item():.4f} of its tokens, expected kappa(t) = "
                       f"{k[b].item():.4f} (+- {tol[b].item():.4f}): {why}")
    # rows with the same time draw their own masks
    x1 = _tokens(4, 2000, 256, seed=5)
    t = torch.full((4,), 0.5)
    case = "4 rows of 2000 tokens at the same t = 0.5, kappa(t) = t"
    kept = _draw(candidate, x1, t, 256, linear, 4, case) != 256                            # (4, 2000)
    if bool((kept == kept[0]).all()):
        raise Mismatch(f"on {case}: {SHARED}")
    # each token on its own: the count kept per row is binomial, var N k (1 - k) = 12.5 here (a fixed count: 0);
    # over 400 rows the sample variance has a standard deviation of about 0.9
    x1 = _tokens(400, 50, 256, seed=11)
    t = torch.full((400,), 0.5)
    case = "400 rows of 50 tokens at the same t = 0.5, kappa(t) = t"
    counts = (_draw(candidate, x1, t, 256, linear, 12, case) != 256).double().sum(1)       # (400,)
    if counts.var().item() < 0.5 * 50 * 0.25:
        raise Mismatch(f"on {case}: the number of tokens kept per row varies with variance {counts.var().item():.2f}, "
                       f"expected about 50 * 0.5 * 0.5 = 12.5: {EXACT}")
    # the generator makes the draw
    x1 = _tokens(3, 400, 256, seed=6)
    t = torch.tensor([0.2, 0.5, 0.8])
    case = "3 rows of 400 tokens, t = [0.2, 0.5, 0.8], kappa(t) = t"
    a = _draw(candidate, x1, t, 256, linear, 7, case + ", generator seed 7")
    b = _draw(candidate, x1, t, 256, linear, 7, case + ", generator seed 7 again")
    if not torch.equal(a, b):
        raise Mismatch(f"on {case}: two calls with generators of the same seed gave different draws: draw the "
                       f"uniforms from the generator passed in, torch.rand(x1.shape, generator=generator)")
    c = _draw(candidate, x1, t, 256, linear, 8, case + ", generator seed 8")
    if torch.equal(a, c):
        raise Mismatch(f"on {case}: generators of seeds 7 and 8 gave the same draw: use the generator passed in, "
                       f"not one of your own")
    # another device: the draw is the learner's own, so only its kind is compared (and, on a GPU, its values'
    # set); the generator stays a CPU one, as in the notebook
    x1, t = _tokens(2, 16, 256, seed=9), torch.tensor([0.3, 0.6])
    dev = stand_in_device()
    case = f"2 rows of 16 tokens on {device_words(dev)}"
    got = call_on(dev, candidate, x1, t, 256, linear, generator(10), case=case)
    if not isinstance(got, CannotTell):
        expect_a_tensor(got, f"on {case}")
        if tuple(got.shape) != (2, 16) or got.dtype != torch.long:
            raise Mismatch(f"on {case}: expected a (2, 16) int64 tensor, got {got.dtype} {tuple(got.shape)}")
        if got.device.type != dev.type:
            raise Mismatch(f"on {case}: returned a tensor on {got.device}; expected one on {device_words(dev)} like "
                           f"x1 (create new tensors on x1's device, torch.full_like(x1, ...), .to(x1.device))")
        if dev.type != "meta" and bool(((got.cpu() != x1) & (got.cpu() != 256)).any()):
            raise Mismatch(f"on {case}: a position holds neither x1's token nor the mask id")


PROJECT = (
    Exercise("capstone.mask_path_sample", reference=dfm.mask_path_sample, checker=check_mask_path_sample,
             description=check_mask_path_sample.__doc__, mistakes=MISTAKES),
)
