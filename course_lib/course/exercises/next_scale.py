"""Exercises of notebook 06 (next-scale prediction); see course_lib.course.homework for the mechanism.

* next_scale.residual_step: one scale of VAR's multi-scale residual quantization: area-downsample
  the residual, find the nearest codes, upsample their vectors bicubically (before phi);
* next_scale.bits_to_index: d bits -> one index of Infinity's 2^d vocabulary;
* next_scale.self_correct_step: one scale of bitwise self-correction: the labels from the residual
  left by the (corrupted) running sum, the flipped bits into the running sum.

Every check calls the learner's function through :func:`~course_lib.course.checking.call` (inputs
changed in place, time limit, the reference handed in), on sizes that change from call to call (down
to one) and beyond the notebook's, at the ends (p = 0 and 1, a residual of exactly 0, 64-bit indices),
in float64, and once on another device (the GPU, or without one PyTorch's meta device). Each exercise
lists its known mistakes once (:class:`~course_lib.course.checking.Mistake`); a check names one only
when it reproduces the learner's values on the failing case.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from course_lib.course.checking import (Exercise, Mismatch, Mistake, call, expect_on_another_device, expect_output,
                                        expect_tensor, generator, naming)


# ----------------------------------------------------------------------------- references

def _nearest(r: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """(B, D, s, s) vectors, (K, D) codebook -> (B, s, s) index of the nearest code (squared L2)."""
    v = r.permute(0, 2, 3, 1)                                                       # (B, s, s, D)
    d = (v[..., None, :] - codebook).pow(2).sum(-1)                                 # (B, s, s, K)
    return d.argmin(-1)


def residual_step(f_rest: torch.Tensor, codebook: torch.Tensor, side: int):
    """One scale of VAR's residual quantization (Tian et al. 2024, Algorithm 1; VAR models/quant.py):
    f_rest (B, D, H, W), codebook (K, D), side -> (codes (B, side, side) int64: the nearest code of
    each vector of area-downsample(f_rest, side); h (B, D, H, W): their code vectors, bicubically
    upsampled back to H x W). The caller applies phi and subtracts."""
    r = F.interpolate(f_rest, size=(side, side), mode="area")                       # (B, D, s, s)
    codes = _nearest(r, codebook)                                                   # (B, s, s)
    e = codebook[codes].permute(0, 3, 1, 2)                                         # (B, D, s, s)
    return codes, F.interpolate(e, size=tuple(f_rest.shape[-2:]), mode="bicubic")   # (B, D, H, W)


def bits_to_index(bits: torch.Tensor) -> torch.Tensor:
    """(..., d) bits in {0, 1} -> (...) int64 index sum_i 2^i b_i (bit 0 least significant); for d = 64
    int64's two's complement (2^63 wraps to -2^63)."""
    weights = 2 ** torch.arange(bits.shape[-1], device=bits.device, dtype=torch.int64)
    return (bits.long() * weights).sum(-1)


def self_correct_step(f: torch.Tensor, cum: torch.Tensor, side: int, p: float, noise: torch.Tensor):
    """One scale of Infinity's bitwise self-correction (Han et al. 2024, §3.3; Infinity
    bitwise_self_correction.py). f, cum (B, d, H, W): the latent and the running sum of the earlier
    scales (with their flips); noise (B, d, side, side) uniform in [0, 1).
    Returns (labels (B, d, side, side) int64 = [area-downsample(f - cum, side) > 0],
    new cum = cum + bilinear-upsample((2 b - 1) / sqrt(d), H x W) with b = labels flipped where noise < p)."""
    r = F.interpolate(f - cum, size=(side, side), mode="area")                      # (B, d, s, s)
    labels = (r > 0).long()
    used = labels ^ (noise < p).long()
    codes = (2 * used.to(f.dtype) - 1) / math.sqrt(f.shape[1])
    return labels, cum + F.interpolate(codes, size=tuple(f.shape[-2:]), mode="bilinear")


# ----------------------------------------------------------------------------- residual_step

def _rs(down="area", up="bicubic", align=None, nearest=_nearest, dtype=None):
    """residual_step with one part swapped for a known mistake's: the downsampling, the upsampling
    (and align_corners), the nearest-code rule, the dtype it computes in."""
    def step(f_rest, codebook, side):
        f, cb = (f_rest, codebook) if dtype is None else (f_rest.to(dtype), codebook.to(dtype))
        kw = {} if down in ("area", "nearest") else {"align_corners": False}
        codes = nearest(F.interpolate(f, size=(side, side), mode=down, **kw), cb)           # (B, s, s)
        kw = {} if up == "nearest" else {"align_corners": bool(align)}
        h = F.interpolate(cb[codes].permute(0, 3, 1, 2), size=tuple(f.shape[-2:]), mode=up, **kw)
        return codes, h.to(f_rest.dtype)
    return step


def _largest_dot(r, codebook):
    return (r.permute(0, 2, 3, 1) @ codebook.t()).argmax(-1)


RESIDUAL_MISTAKES = (
    Mistake("bilinear_down", _rs(down="bilinear"),
            "downsample by AREA averaging (mode='area'), as VAR does, not bilinearly"),
    Mistake("nearest_down", _rs(down="nearest"),
            "downsample by AREA averaging (mode='area'): nearest picks one vector per cell instead of their mean"),
    Mistake("bilinear_up", _rs(up="bilinear"), "VAR upsamples the code vectors BICUBICALLY (mode='bicubic'), not bilinearly"),
    Mistake("nearest_up", _rs(up="nearest"), "VAR upsamples the code vectors BICUBICALLY (mode='bicubic'), not by nearest"),
    Mistake("align_corners", _rs(align=True), "leave align_corners at its default (False), as VAR does"),
    Mistake("largest_dot", _rs(nearest=_largest_dot),
            "the nearest code minimises |r - e|^2 = |r|^2 - 2 r.e + |e|^2; the largest dot product r.e forgets |e|^2"),
    Mistake("float32_inside", _rs(dtype=torch.float32),
            "your values agree with a float32 computation, not float64's: the float64 case must stay in float64 "
            "(no .float(), no float32 tensors made along the way)"),
)


def check_residual_step(candidate):
    """(codes (B, side, side) int64, h (B, D, H, W) in f_rest's dtype) equal to the reference's on
    batches of 1 to 80 (the notebook: 64), D = 1 to 8, H x W = 4x4, 6x6 and 8x8, side = 1, 2, 3 and H
    (the last scale: no resampling), K = 1 to 64 codes, one float64 case; f_rest and the codebook
    unchanged; one case on another device."""
    g = generator(6)
    cases = [("f_rest (4, 8, 4, 4), 64 codes, side 2", 4, 8, 4, 64, 2, torch.float32),
             ("f_rest (1, 8, 4, 4), side 1 (the first scale: one token)", 1, 8, 4, 16, 1, torch.float32),
             ("f_rest (3, 4, 4, 4), side 3 (4 -> 3 is not a whole factor)", 3, 4, 4, 16, 3, torch.float32),
             ("f_rest (2, 4, 4, 4), side 4 (the last scale: no down- or up-sampling)", 2, 4, 4, 8, 4, torch.float32),
             ("f_rest (2, 1, 6, 6), D = 1, side 2", 2, 1, 6, 5, 2, torch.float32),
             ("f_rest (6, 3, 8, 8), side 3, one code only", 6, 3, 8, 1, 3, torch.float32),
             ("float64 f_rest (2, 5, 6, 6) and codebook, side 4", 2, 5, 6, 32, 4, torch.float64),
             ("beyond the notebook's sizes: f_rest (80, 8, 4, 4), 64 codes, side 3", 80, 8, 4, 64, 3, torch.float32)]
    for desc, b, d, h, k, side, dtype in cases:
        f = torch.randn(b, d, h, h, generator=g, dtype=dtype)
        cb = torch.randn(k, d, generator=g, dtype=dtype)
        got = call(candidate, f, cb, side, case=desc)
        atol, rtol = (1e-10, 1e-9) if dtype == torch.float64 else (1e-5, 1e-4)
        with naming(RESIDUAL_MISTAKES, got, f, cb, side):
            expect_output(got, residual_step(f, cb, side), f"on {desc}", atol, rtol)
    f, cb = torch.randn(2, 4, 4, 4, generator=g), torch.randn(8, 4, generator=g)
    expect_on_another_device(candidate, (f, cb, 2), residual_step(f, cb, 2), "f_rest (2, 4, 4, 4), side 2")


# ----------------------------------------------------------------------------- bits_to_index

def _weighted(first=0, reverse=False, dtype=torch.int64):
    """sum_i w_i b_i with the weights 2^(first + i) (reversed: most significant first) in ``dtype``."""
    def index(bits):
        w = 2 ** torch.arange(first, first + bits.shape[-1], device=bits.device, dtype=dtype)
        return (bits.to(dtype) * (w.flip(0) if reverse else w)).sum(-1).long()
    return index


BITS_MISTAKES = (
    Mistake("msb_first", _weighted(reverse=True),
            "bit i weighs 2^i, bit 0 the LEAST significant (the course's order): you read the bits most "
            "significant first"),
    Mistake("count", lambda bits: bits.long().sum(-1), "that counts the ones; each bit i must be weighted by 2^i"),
    Mistake("from_one", _weighted(first=1), "bit i weighs 2^i starting from 2^0 = 1, not 2^1"),
    Mistake("float64_sum", _weighted(dtype=torch.float64),
            "a sum in float64 is exact only up to 2^53 (53 bits of mantissa): beyond it the low bits are "
            "rounded away; weight and sum in int64 (or shift: bits.long() << i)"),
)


def _twos_complement(bits):                 # an alternative: Horner's rule, most significant bit first
    out = torch.zeros(bits.shape[:-1], dtype=torch.int64, device=bits.device)
    for i in reversed(range(bits.shape[-1])):
        out = out * 2 + bits[..., i].long()
    return out


def check_bits_to_index(candidate):
    """(...) int64 indices sum_i 2^i b_i (bit 0 the least significant) for d = 1, 2, 8, 16, 32, 40, 53,
    54 and 64 bits (beyond float32's, int32's and float64's exact range: notebook 06's vocabularies
    reach 2^64), leading shapes (), (1,), (5,), (2, 3, 4), bits as int64 and as bool, all-zero and
    all-one rows; bits unchanged; one case on another device. With d = 64 the index is int64's (bit 63
    is its sign bit: 2^63 wraps to -2^63, as torch's int64 arithmetic and bit shifts give)."""
    g = generator(7)
    for lead, d, as_bool in [((5,), 8, False), ((1,), 1, False), ((), 2, False), ((2, 3, 4), 16, False),
                             ((6,), 32, False), ((4,), 40, False), ((3, 2), 8, True), ((5,), 53, False),
                             ((5,), 54, False), ((6,), 64, False), ((2, 2), 64, True)]:
        bits = torch.randint(0, 2, (*lead, d), generator=g)
        if bits.dim() >= 2 and bits.shape[0] >= 2:
            flat = bits.reshape(-1, d)
            flat[0], flat[1] = 0, 1                                                 # the ends: 0 and 2^d - 1
            bits = flat.reshape(*lead, d)
        bits = bits.bool() if as_bool else bits
        desc = f"{'bool' if as_bool else 'int64'} bits of shape {tuple(bits.shape)} (d = {d})"
        want = bits_to_index(bits)
        got = call(candidate, bits, case=desc)
        if isinstance(got, torch.Tensor) and got.shape == want.shape and got.dtype != torch.int64:
            raise Mismatch(f"on {desc}: returned dtype {got.dtype}; expected torch.int64 (float32 holds integers "
                           f"exactly only up to 2^24, and int32 only up to 2^31 - 1: a vocabulary of 2^d needs int64)")
        with naming(BITS_MISTAKES, got, bits):
            expect_tensor(got, want, f"on {desc}")
    bits = torch.randint(0, 2, (3, 8), generator=g)
    expect_on_another_device(candidate, (bits,), bits_to_index(bits), "bits (3, 8)")


# ----------------------------------------------------------------------------- self_correct_step

def _bsc(flip_labels=False, flip_cum=True, source="residual", flip=lambda noise, p: noise < p, zero_is_one=False,
         scale=True, mode="bilinear", dtype=None):
    """self_correct_step with one part swapped for a known mistake's (see BSC_MISTAKES)."""
    def step(f, cum, side, p, noise):
        if dtype is not None:                      # the whole step in another dtype, cast back
            labels, new = _bsc(flip_labels, flip_cum, source, flip, zero_is_one, scale, mode)(
                f.to(dtype), cum.to(dtype), side, p, noise.to(dtype))
            return labels, new.to(f.dtype)
        r = F.interpolate(f - cum if source == "residual" else f, size=(side, side), mode="area")
        clean = (r >= 0 if zero_is_one else r > 0).long()
        flipped = clean ^ flip(noise, p).long()
        c = 2 * (flipped if flip_cum else clean).to(f.dtype) - 1
        c = c / math.sqrt(f.shape[1]) if scale else c
        kw = {} if mode == "nearest" else {"align_corners": False}
        return flipped if flip_labels else clean, cum + F.interpolate(c, size=tuple(f.shape[-2:]), mode=mode, **kw)
    return step


BSC_MISTAKES = (
    Mistake("float32_inside", _bsc(dtype=torch.float32),      # first: at float32 tolerance it also matches
            # the mistakes that differ only at a residual of exactly 0
            "your values agree with a float32 computation, not float64's: the float64 case must stay in float64 "
            "(no .float(), no float32 tensors made along the way, e.g. (2 * b.float() - 1))"),
    Mistake("flipped_labels", _bsc(flip_labels=True),
            "the LABELS stay clean: flip only the bits that go into the running sum (flipping the labels teaches "
            "the model to make mistakes)"),
    Mistake("clean_cum", _bsc(flip_cum=False),
            "the running sum must take the FLIPPED bits; with the clean ones self-correction does nothing"),
    Mistake("from_f", _bsc(source="f"),
            "quantize the RESIDUAL f - cum, not f itself: later scales must see (and correct) the earlier errors"),
    Mistake("flip_above", _bsc(flip=lambda noise, p: noise >= p),
            "flip a bit where noise < p (a share p of the bits), not where noise >= p (the same values come "
            "from subtracting the codes, cum - upsample(...): add them)"),
    Mistake("zero_is_one", _bsc(zero_is_one=True),
            "a bit is 1 where the residual is > 0; exactly 0 gives bit 0 (sign(0) = -1, as BSQ)"),
    Mistake("no_sqrt_d", _bsc(scale=False),
            "BSQ codes are (2b - 1) / sqrt(d), on the unit sphere: divide by sqrt(d)"),
    Mistake("nearest_up", _bsc(mode="nearest"), "Infinity upsamples (tri/bi)linearly: mode='bilinear'"),
    Mistake("bicubic_up", _bsc(mode="bicubic"), "Infinity upsamples (tri/bi)linearly, not bicubically as VAR"),
)


def _pool_each(f, cum, side, p, noise):     # an alternative: area-downsample f and cum apart (linear)
    r = F.adaptive_avg_pool2d(f, side) - F.adaptive_avg_pool2d(cum, side)
    labels = (r > 0).long()
    codes = (2 * torch.where(noise < p, 1 - labels, labels).to(f.dtype) - 1) * f.shape[1] ** -0.5
    return labels, cum + F.interpolate(codes, size=tuple(f.shape[-2:]), mode="bilinear")


def check_self_correct_step(candidate):
    """(labels (B, d, side, side) int64, new cum (B, d, H, W) in f's dtype) equal to the reference's:
    B = 1 to 300 (the notebook: 256), d = 1 to 16, H = 4 or 6, side 1 to H, p = 0 (no flip), 0.3, 0.5
    and 1 (every bit flipped), a residual of exactly 0 at some positions, a float64 case; f, cum and
    noise unchanged; one case on another device."""
    g = generator(8)
    cases = [("f (8, 8, 4, 4), side 2, p = 0.3", 8, 8, 4, 2, 0.3, torch.float32),
             ("f (1, 8, 4, 4), side 1, p = 0.3", 1, 8, 4, 1, 0.3, torch.float32),
             ("f (3, 4, 4, 4), side 3, p = 0 (no flips)", 3, 4, 4, 3, 0.0, torch.float32),
             ("f (2, 6, 4, 4), side 4, p = 1 (every bit flipped)", 2, 6, 4, 4, 1.0, torch.float32),
             ("f (4, 1, 6, 6), d = 1, side 2, p = 0.5", 4, 1, 6, 2, 0.5, torch.float32),
             ("f (5, 16, 4, 4) equal to cum in row 0 (a residual of exactly 0), side 2, p = 0.2",
              5, 16, 4, 2, 0.2, torch.float32),
             ("float64 f (2, 8, 6, 6), side 3, p = 0.3", 2, 8, 6, 3, 0.3, torch.float64),
             ("beyond the notebook's sizes: f (300, 8, 4, 4), side 3, p = 0.3", 300, 8, 4, 3, 0.3, torch.float32)]
    for desc, b, d, h, side, p, dtype in cases:
        f = torch.randn(b, d, h, h, generator=g, dtype=dtype)
        cum = 0.5 * torch.randn(b, d, h, h, generator=g, dtype=dtype)
        if "exactly 0" in desc:
            cum[0] = f[0]
        noise = torch.rand(b, d, side, side, generator=g, dtype=dtype)
        got = call(candidate, f, cum, side, p, noise, case=desc)
        atol, rtol = (1e-10, 1e-9) if dtype == torch.float64 else (1e-5, 1e-4)
        with naming(BSC_MISTAKES, got, f, cum, side, p, noise):
            expect_output(got, self_correct_step(f, cum, side, p, noise), f"on {desc}", atol, rtol)
    f, cum = torch.randn(2, 8, 4, 4, generator=g), torch.randn(2, 8, 4, 4, generator=g)
    noise = torch.rand(2, 8, 2, 2, generator=g)
    expect_on_another_device(candidate, (f, cum, 2, 0.3, noise), self_correct_step(f, cum, 2, 0.3, noise),
                             "f (2, 8, 4, 4), side 2")


# the exercises of this topic, in notebook order
EXERCISES = [
    Exercise("next_scale.residual_step", reference=residual_step, checker=check_residual_step,
             description=check_residual_step.__doc__, mistakes=RESIDUAL_MISTAKES),
    Exercise("next_scale.bits_to_index", reference=bits_to_index, checker=check_bits_to_index,
             description=check_bits_to_index.__doc__, mistakes=BITS_MISTAKES, alternatives=(_twos_complement,)),
    Exercise("next_scale.self_correct_step", reference=self_correct_step, checker=check_self_correct_step,
             description=check_self_correct_step.__doc__, mistakes=BSC_MISTAKES, alternatives=(_pool_each,)),
]
