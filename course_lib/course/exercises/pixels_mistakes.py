"""The known mistakes of notebook 01's exercises (course_lib.course.exercises.pixels), each written once
as a wrong implementation with the message that names it, and correct answers written otherwise.

The checks name the first mistake whose values (and gradient, for bits per dimension) the learner's
answer reproduces; tests/test_exercises_pixels.py submits every one and asserts it is caught with its
own message, and every alternative and asserts it passes. (raster_sample's mistakes show in the
canvases it hands to logits_fn and in the frequencies of its draws: its check names them there.)
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from course_lib.course.checking import Mistake

LN2 = math.log(2.0)


# ----------------------------------------------------------------------------- causal_mask

def _mask(k: int, keep: int, row: int | None = None) -> torch.Tensor:
    """(k, k) float32: 1 on the rows above ``row`` (default the centre) and on the first ``keep``
    pixels of that row, 0 elsewhere."""
    c = k // 2 if row is None else row
    m = torch.ones(k, k)
    m[c, keep:] = 0
    m[c + 1:] = 0
    return m


def _keep(k, mask_type):
    """How many pixels of the centre row a right mask keeps: those left of the centre (+ the centre for B)."""
    return k // 2 + (mask_type == "B")


def _centre(k):
    """(k, k) float32: 1 at the centre only."""
    m = torch.zeros(k, k)
    m[k // 2, k // 2] = 1
    return m


CAUSAL_MASK_MISTAKES = (
    Mistake("type_b_for_a", lambda k, mask_type="A": _mask(k, k // 2 + 1),
            "this is the type B mask: type A also hides the centre (an output must not see its own pixel)"),
    Mistake("type_a_for_b", lambda k, mask_type="A": _mask(k, k // 2),
            "this is the type A mask: type B keeps the centre (set it to 1)"),
    Mistake("transposed", lambda k, mask_type="A": _mask(k, _keep(k, mask_type)).T.contiguous(),
            "the mask is transposed (columns where rows are wanted): raster order is row by row, so keep every "
            "row above the centre and, in the centre row, the pixels left of it"),
    Mistake("keeps_the_wrong_side", lambda k, mask_type="A": 1 - _mask(k, _keep(k, mask_type)),
            "the mask keeps the wrong side (1 - mask): 1 on the rows above the centre and left of the centre, "
            "0 below and to the right"),
    Mistake("flipped", lambda k, mask_type="A": _mask(k, _keep(k, mask_type)).flip(0, 1),
            "the mask is flipped (rows below and right of the centre kept): 1 on the rows above the centre and "
            "left of the centre, 0 below and to the right"),
    Mistake("whole_centre_row", lambda k, mask_type="A": _mask(k, k) * (1 - _centre(k) * (mask_type == "A")),
            "in the centre row, every pixel right of the centre must be 0 (it comes later in raster order)"),
    Mistake("centre_written_in", lambda k, mask_type="A": _mask(k, 1 + (mask_type == "B"), row=1) if k > 2
            else _mask(k, _keep(k, mask_type)),
            "your centre is (1, 1), the centre of a 3x3 kernel, whatever k: it is (k // 2, k // 2)"),
    Mistake("negative_slice_at_k_1", lambda k, mask_type="A": torch.zeros(k, k) if k == 1
            else _mask(k, _keep(k, mask_type)),
            "for k = 1 the slice m[c, -c:] with c = 0 is the whole row (-0 is 0): index from the centre, "
            "m[c, c + 1:]"),
)


def _mask_flat_raster(k, mask_type="A"):            # raster index < centre's (+1 for B)
    m = torch.zeros(k * k)
    m[:k * k // 2 + (mask_type == "B")] = 1
    return m.view(k, k)


def _mask_bool(k, mask_type="A"):                   # a bool mask: weight * mask stays float32
    i, j = torch.meshgrid(torch.arange(k), torch.arange(k), indexing="ij")
    c = k // 2
    return (i < c) | ((i == c) & ((j < c) | ((j == c) & (mask_type == "B"))))


def _mask_loops(k, mask_type="A"):                  # an int64 0-1 mask
    m = torch.zeros(k, k, dtype=torch.int64)
    for i in range(k):
        for j in range(k):
            before = i < k // 2 or (i == k // 2 and j < k // 2)
            m[i, j] = 1 if before or (mask_type == "B" and i == j == k // 2) else 0
    return m


CAUSAL_MASK_ALTERNATIVES = (_mask_flat_raster, _mask_bool, _mask_loops)


# ----------------------------------------------------------------------------- mu-law

def _f(x, mu):
    return torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)


def _bins(f, mu, scale=None, half=0.5):
    return torch.floor((f + 1) / 2 * (mu if scale is None else scale) + half).long()


def _enc_sign_by_division(x, mu=255):               # x / |x| is NaN at x = 0
    x = x.clamp(-1, 1)
    return _bins(x / x.abs() * torch.log1p(mu * x.abs()) / math.log1p(mu), mu)


MU_LAW_ENCODE_MISTAKES = (
    Mistake("mu_written_in", lambda x, mu=255: _bins(_f(x.clamp(-1, 1), 255), 255),
            "these are the levels for mu = 255: use the mu argument"),
    Mistake("not_clipped", lambda x, mu=255: _bins(_f(x, mu), mu),
            "values outside [-1, 1] must be clipped to it first (x.clamp(-1, 1)): the levels are "
            "floor((f + 1) / 2 * mu + 0.5) with f in [-1, 1]"),
    Mistake("sign_by_division", _enc_sign_by_division,
            "x = 0 (silence) got a level outside 0..mu: f is NaN there (x / |x| is 0 / 0 at x = 0); use "
            "torch.sign(x), which is 0 at 0"),
    Mistake("torch_round", lambda x, mu=255: torch.round((_f(x.clamp(-1, 1), mu) + 1) / 2 * mu).long(),
            "torch.round sends a value exactly halfway (here x = 0) to the even neighbour; the levels are "
            "floor((f + 1) / 2 * mu + 0.5)"),
    Mistake("scaled_by_mu_plus_1", lambda x, mu=255: _bins(_f(x.clamp(-1, 1), mu), mu, scale=mu + 1),
            "you scaled by mu + 1: the mu + 1 levels are 0..mu, level = floor((f + 1) / 2 * mu + 0.5)"),
    Mistake("linear_levels", lambda x, mu=255: _bins(x.clamp(-1, 1), mu),
            "these are linear levels: compand first, f = sign(x) ln(1 + mu |x|) / ln(1 + mu)"),
    Mistake("sign_lost", lambda x, mu=255: _bins(_f(x.clamp(-1, 1).abs(), mu), mu),
            "negative x got the levels of |x|: keep the sign, f = sign(x) ln(1 + mu |x|) / ln(1 + mu)"),
    Mistake("mirrored", lambda x, mu=255: mu - _bins(_f(x.clamp(-1, 1), mu), mu),
            "the levels are mirrored: -1 must give level 0 and +1 level mu"),
    Mistake("rounded_down", lambda x, mu=255: _bins(_f(x.clamp(-1, 1), mu), mu, half=0.0),
            "the levels are rounded down: round to the nearest one, floor((f + 1) / 2 * mu + 0.5)"),
)


def _enc_bucketize(x, mu=255):                      # the bin edges, on x's device
    f = _f(x.clamp(-1, 1), mu)
    edges = (2 * torch.arange(1, mu + 1, device=x.device, dtype=f.dtype) - 1) / mu - 1
    return torch.bucketize(f, edges, right=True)


def _enc_where(x, mu=255):
    x = torch.where(x > 1, torch.ones_like(x), torch.where(x < -1, -torch.ones_like(x), x))
    f = torch.where(x >= 0, 1.0, -1.0).to(x) * torch.log(1 + mu * x.abs()) / math.log(1 + mu)
    return ((f + 1) * mu / 2 + 0.5).floor().to(torch.int64)


MU_LAW_ENCODE_ALTERNATIVES = (_enc_bucketize, _enc_where)


def _x(f, mu):
    return torch.sign(f) * (torch.pow(1.0 + mu, f.abs()) - 1) / mu


MU_LAW_DECODE_MISTAKES = (
    Mistake("mu_written_in", lambda q, mu=255: _x(2 * q.float() / 255 - 1, 255),
            "these are the values for mu = 255: use the mu argument"),
    Mistake("companding_not_undone", lambda q, mu=255: 2 * q.float() / mu - 1,
            "you undid the binning but not the companding: x = sign(f) ((1 + mu)^|f| - 1) / mu"),
    Mistake("binning_not_undone", lambda q, mu=255: _x(q.float() / mu, mu),
            "the level is not the companded value: undo the binning first, f = 2 q / mu - 1"),
    Mistake("sign_lost", lambda q, mu=255: _x(2 * q.float() / mu - 1, mu).abs(),
            "the lower half came out positive: keep the sign, x = sign(f) ((1 + mu)^|f| - 1) / mu"),
    Mistake("minus_one_missing", lambda q, mu=255: torch.sign(2 * q.float() / mu - 1) * torch.pow(
        1.0 + mu, (2 * q.float() / mu - 1).abs()) / mu,
            "x = sign(f) ((1 + mu)^|f| - 1) / mu: the - 1 is missing"),
)


def _dec_expm1(q, mu=255):
    f = q.to(torch.float32) * (2.0 / mu) - 1
    return torch.sign(f) * torch.expm1(f.abs() * math.log1p(mu)) / mu


def _dec_table(q, mu=255):                          # a lookup table on q's device
    f = torch.linspace(-1, 1, mu + 1, device=q.device)
    return (torch.sign(f) * ((1 + mu) ** f.abs() - 1) / mu)[q]


MU_LAW_DECODE_ALTERNATIVES = (_dec_expm1, _dec_table)


# ----------------------------------------------------------------------------- bits per dim

def _nll(logits, targets):
    return F.cross_entropy(logits, targets, reduction="sum")


BITS_PER_DIM_MISTAKES = (
    Mistake("nats", lambda lg, t: _nll(lg, t) / t.numel(),
            "a factor ln 2: the NLL is in nats; divide by ln 2 for bits"),
    Mistake("ln_2_twice", lambda lg, t: _nll(lg, t) / (t.numel() * LN2 * LN2),
            "a factor 1/ln 2: divided by ln 2 twice (log2 and / ln 2 both)?"),
    Mistake("sign_flipped", lambda lg, t: -_nll(lg, t) / (t.numel() * LN2),
            "the sign is flipped: bits/dim is the negative log-likelihood"),
    Mistake("divided_by_n", lambda lg, t: _nll(lg, t) / (t.shape[0] * LN2),
            "divide the summed NLL by the number of targets, N x (values per image) = targets.numel(), not by "
            "the batch size N"),
    Mistake("divided_by_values_per_image", lambda lg, t: _nll(lg, t) / (t[0].numel() * LN2),
            "divide the summed NLL by all targets, targets.numel(), not by the values per image"),
    Mistake("sum", lambda lg, t: _nll(lg, t) / LN2, "a sum: divide by the number of targets, targets.numel()"),
    Mistake("over_logits", lambda lg, t: _nll(lg, t) / (lg.numel() * LN2),
            "divided by logits.numel(), which counts all K scores of every value: divide by targets.numel()"),
    Mistake("nats_divided_by_n", lambda lg, t: _nll(lg, t) / t.shape[0],
            "nats, and divided by N only: divide by targets.numel() and ln 2"),
    Mistake("values_per_image_written_in", lambda lg, t: _nll(lg, t) / (t.shape[0] * 64 * LN2),
            "64 values per image written in (the 8x8 digits): divide by targets.numel(), which holds for audio "
            "(N, T) and any image size too"),
)


def _bpd_nll_mean(logits, targets):
    return F.nll_loss(F.log_softmax(logits, dim=1), targets) / math.log(2)


def _bpd_gather(logits, targets):
    logp = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    return -logp.gather(1, targets.unsqueeze(1)).mean() / LN2


def _bpd_log2(logits, targets):                     # follows the logits' dtype
    picked = torch.take_along_dim(torch.log_softmax(logits, 1) / LN2, targets.unsqueeze(1), dim=1)
    return -picked.sum() / targets.numel()


BITS_PER_DIM_ALTERNATIVES = (_bpd_nll_mean, _bpd_gather, _bpd_log2)
