"""Exercises of notebook 06 (next-scale prediction); see course_lib.course.homework for the mechanism.

* next_scale.residual_step: one scale of VAR's multi-scale residual quantization: area-downsample
  the residual, find the nearest codes, upsample their vectors bicubically (before phi);
* next_scale.bits_to_index: d bits -> one index of Infinity's 2^d vocabulary;
* next_scale.self_correct_step: one scale of bitwise self-correction: the labels from the residual
  left by the (corrupted) running sum, the flipped bits into the running sum.

Every check calls the learner's function through :func:`~course_lib.course.checking.call` (inputs
changed in place, time limit, the reference handed in), on sizes that change from call to call (down
to one), at the ends (p = 0 and 1, a residual of exactly 0, 40-bit indices), in float64, and once on
another device (the GPU, or without one PyTorch's meta device).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from course_lib.course.checking import (Exercise, Mismatch, call, expect_on_another_device, expect_output,
                                        expect_tensor)


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
    """(..., d) bits in {0, 1} -> (...) int64 index sum_i 2^i b_i (bit 0 least significant)."""
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


# ----------------------------------------------------------------------------- helpers

def _gen(seed):
    return torch.Generator().manual_seed(seed)



def _same(a, b) -> bool:
    if isinstance(a, tuple):
        return isinstance(b, tuple) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return (isinstance(b, torch.Tensor) and a.shape == b.shape and a.dtype == b.dtype
            and torch.allclose(a.double(), b.double(), atol=1e-6, rtol=1e-5))


def _hint(got, alternatives) -> str:
    """The text of the first alternative (value, text) whose value equals ``got``."""
    got = tuple(got) if isinstance(got, list) else got
    for alt, text in alternatives:
        try:
            if _same(alt, got):
                return text
        except (RuntimeError, TypeError):
            continue
    return ""


def _with_hint(err: Mismatch, hint: str) -> Mismatch:
    return Mismatch(f"{err} ({hint})") if hint else err


# ----------------------------------------------------------------------------- residual_step

def _residual_alternatives(f, cb, side):
    H = tuple(f.shape[-2:])

    def variant(down="area", up="bicubic", source=None, score="l2", align=None):
        if down == "area":
            r = F.interpolate(f, size=(side, side), mode="area")
        else:
            kw = {} if down == "nearest" else {"align_corners": False}
            r = F.interpolate(f, size=(side, side), mode=down, **kw)
        if score == "l2":
            codes = _nearest(r, cb)
        else:
            codes = (r.permute(0, 2, 3, 1) @ cb.t()).argmax(-1)
        e = cb[codes].permute(0, 3, 1, 2)
        kw = {} if up == "nearest" else {"align_corners": bool(align)}
        return codes, F.interpolate(e, size=H, mode=up, **kw)
    return [
        (variant(down="bilinear"), "downsample by AREA averaging (mode='area'), as VAR does, not bilinearly"),
        (variant(down="nearest"), "downsample by AREA averaging (mode='area'): nearest picks one vector per "
                                  "cell instead of their mean"),
        (variant(up="bilinear"), "VAR upsamples the code vectors BICUBICALLY (mode='bicubic'), not bilinearly"),
        (variant(up="nearest"), "VAR upsamples the code vectors BICUBICALLY (mode='bicubic'), not by nearest"),
        (variant(align=True), "leave align_corners at its default (False), as VAR does"),
        (variant(score="dot"), "the nearest code minimises |r - e|^2 = |r|^2 - 2 r.e + |e|^2; the largest dot "
                               "product r.e forgets |e|^2"),
    ]


def check_residual_step(candidate):
    """(codes (B, side, side) int64, h (B, D, H, W) in f_rest's dtype) equal to the reference's on
    batches of 1 to 6, D = 1 to 8, H x W = 4x4, 6x6 and 8x8, side = 1, 2, 3 and H (the last scale:
    no resampling), K = 1 to 32 codes, one float64 case; f_rest and the codebook unchanged; one case
    on another device."""
    g = _gen(6)
    cases = [("the notebook's sizes: f_rest (4, 8, 4, 4), 64 codes, side 2", 4, 8, 4, 64, 2, torch.float32),
             ("f_rest (1, 8, 4, 4), side 1 (the first scale: one token)", 1, 8, 4, 16, 1, torch.float32),
             ("f_rest (3, 4, 4, 4), side 3 (4 -> 3 is not a whole factor)", 3, 4, 4, 16, 3, torch.float32),
             ("f_rest (2, 4, 4, 4), side 4 (the last scale: no down- or up-sampling)", 2, 4, 4, 8, 4, torch.float32),
             ("f_rest (2, 1, 6, 6), D = 1, side 2", 2, 1, 6, 5, 2, torch.float32),
             ("f_rest (6, 3, 8, 8), side 3, one code only", 6, 3, 8, 1, 3, torch.float32),
             ("float64 f_rest (2, 5, 6, 6) and codebook, side 4", 2, 5, 6, 32, 4, torch.float64)]
    for desc, b, d, h, k, side, dtype in cases:
        f = torch.randn(b, d, h, h, generator=g, dtype=dtype)
        cb = torch.randn(k, d, generator=g, dtype=dtype)
        want = residual_step(f, cb, side)
        got = call(candidate, f, cb, side, case=desc)
        atol, rtol = (1e-10, 1e-9) if dtype == torch.float64 else (1e-5, 1e-4)
        try:
            expect_output(got, want, f"on {desc}", atol, rtol)
        except Mismatch as e:
            raise _with_hint(e, _hint(got, _residual_alternatives(f, cb, side))) from None
    f, cb = torch.randn(2, 4, 4, 4, generator=g), torch.randn(8, 4, generator=g)
    expect_on_another_device(candidate, (f, cb, 2), residual_step(f, cb, 2), "f_rest (2, 4, 4, 4), side 2")


# ----------------------------------------------------------------------------- bits_to_index

def check_bits_to_index(candidate):
    """(...) int64 indices sum_i 2^i b_i (bit 0 the least significant) for d = 1, 2, 8, 16, 32 and 40
    bits (beyond float32's and int32's exact range), leading shapes (), (1,), (5,), (2, 3, 4), bits
    as int64 and as bool, all-zero and all-one rows; bits unchanged; one case on another device."""
    g = _gen(7)
    for lead, d, as_bool in [((5,), 8, False), ((1,), 1, False), ((), 2, False), ((2, 3, 4), 16, False),
                             ((6,), 32, False), ((4,), 40, False), ((3, 2), 8, True)]:
        bits = torch.randint(0, 2, (*lead, d), generator=g)
        if bits.dim() >= 2 and bits.shape[0] >= 2:
            flat = bits.reshape(-1, d)
            flat[0], flat[1] = 0, 1                                                 # the ends: 0 and 2^d - 1
            bits = flat.reshape(*lead, d)
        if as_bool:
            bits = bits.bool()
        desc = f"{'bool' if as_bool else 'int64'} bits of shape {tuple(bits.shape)} (d = {d})"
        want = bits_to_index(bits)
        got = call(candidate, bits, case=desc)
        if isinstance(got, torch.Tensor) and got.shape == want.shape and got.dtype != torch.int64:
            extra = (" (float32 holds integers exactly only up to 2^24, and int32 only up to 2^31 - 1: "
                     "a vocabulary of 2^d needs int64)")
            raise Mismatch(f"on {desc}: returned dtype {got.dtype}; expected torch.int64{extra}")
        b = bits.long()
        rev = (b * 2 ** torch.arange(d - 1, -1, -1, dtype=torch.int64)).sum(-1)
        alternatives = [(rev, "bit i weighs 2^i, bit 0 the LEAST significant (the course's order): you "
                              "read the bits most significant first"),
                        (b.sum(-1), "that counts the ones; each bit i must be weighted by 2^i"),
                        ((b * 2 ** torch.arange(1, d + 1, dtype=torch.int64)).sum(-1),
                         "bit i weighs 2^i starting from 2^0 = 1, not 2^1")]
        try:
            expect_tensor(got, want, f"on {desc}")
        except Mismatch as e:
            raise _with_hint(e, _hint(got, alternatives)) from None
    bits = torch.randint(0, 2, (3, 8), generator=g)
    expect_on_another_device(candidate, (bits,), bits_to_index(bits), "bits (3, 8)")


# ----------------------------------------------------------------------------- self_correct_step

def _bsc_alternatives(f, cum, side, p, noise):
    d, H = f.shape[1], tuple(f.shape[-2:])
    r = F.interpolate(f - cum, size=(side, side), mode="area")
    clean = (r > 0).long()
    flipped = clean ^ (noise < p).long()

    def new_cum(bits, mode="bilinear", scale=True):
        c = 2 * bits.to(f.dtype) - 1
        c = c / math.sqrt(d) if scale else c
        return cum + F.interpolate(c, size=H, mode=mode, **({} if mode == "nearest" else {"align_corners": False}))
    from_f = (F.interpolate(f, size=(side, side), mode="area") > 0).long()
    return [
        ((flipped, new_cum(flipped)), "the LABELS stay clean: flip only the bits that go into the running sum "
                                      "(flipping the labels teaches the model to make mistakes)"),
        ((clean, new_cum(clean)), "the running sum must take the FLIPPED bits; with the clean ones "
                                  "self-correction does nothing"),
        ((from_f, new_cum(from_f ^ (noise < p).long())), "quantize the RESIDUAL f - cum, not f itself: later "
                                                         "scales must see (and correct) the earlier errors"),
        ((clean, new_cum(clean ^ (noise >= p).long())), "flip a bit where noise < p (a share p of the bits), "
                                                        "not where noise >= p"),
        (((r >= 0).long(), new_cum((r >= 0).long() ^ (noise < p).long())),
         "a bit is 1 where the residual is > 0; exactly 0 gives bit 0 (sign(0) = -1, as BSQ)"),
        ((clean, new_cum(flipped, scale=False)), "BSQ codes are (2b - 1) / sqrt(d), on the unit sphere: "
                                                 "divide by sqrt(d)"),
        ((clean, new_cum(flipped, mode="nearest")), "Infinity upsamples (tri/bi)linearly: mode='bilinear'"),
        ((clean, new_cum(flipped, mode="bicubic")), "Infinity upsamples (tri/bi)linearly, not bicubically as VAR"),
    ]


def check_self_correct_step(candidate):
    """(labels (B, d, side, side) int64, new cum (B, d, H, W) in f's dtype) equal to the reference's:
    B = 1 to 5, d = 1 to 16, H = 4 or 6, side 1 to H, p = 0 (no flip), 0.3, 0.5 and 1 (every bit
    flipped), a residual of exactly 0 at some positions, a float64 case; f, cum and noise unchanged;
    one case on another device."""
    g = _gen(8)
    cases = [("the notebook's sizes: f (8, 8, 4, 4), side 2, p = 0.3", 8, 8, 4, 2, 0.3, torch.float32),
             ("f (1, 8, 4, 4), side 1, p = 0.3", 1, 8, 4, 1, 0.3, torch.float32),
             ("f (3, 4, 4, 4), side 3, p = 0 (no flips)", 3, 4, 4, 3, 0.0, torch.float32),
             ("f (2, 6, 4, 4), side 4, p = 1 (every bit flipped)", 2, 6, 4, 4, 1.0, torch.float32),
             ("f (4, 1, 6, 6), d = 1, side 2, p = 0.5", 4, 1, 6, 2, 0.5, torch.float32),
             ("f (5, 16, 4, 4) equal to cum in row 0 (a residual of exactly 0), side 2, p = 0.2",
              5, 16, 4, 2, 0.2, torch.float32),
             ("float64 f (2, 8, 6, 6), side 3, p = 0.3", 2, 8, 6, 3, 0.3, torch.float64)]
    for desc, b, d, h, side, p, dtype in cases:
        f = torch.randn(b, d, h, h, generator=g, dtype=dtype)
        cum = 0.5 * torch.randn(b, d, h, h, generator=g, dtype=dtype)
        if "exactly 0" in desc:
            cum[0] = f[0]
        noise = torch.rand(b, d, side, side, generator=g, dtype=dtype)
        want = self_correct_step(f, cum, side, p, noise)
        got = call(candidate, f, cum, side, p, noise, case=desc)
        atol, rtol = (1e-10, 1e-9) if dtype == torch.float64 else (1e-5, 1e-4)
        try:
            expect_output(got, want, f"on {desc}", atol, rtol)
        except Mismatch as e:
            raise _with_hint(e, _hint(got, _bsc_alternatives(f, cum, side, p, noise))) from None
    f, cum = torch.randn(2, 8, 4, 4, generator=g), torch.randn(2, 8, 4, 4, generator=g)
    noise = torch.rand(2, 8, 2, 2, generator=g)
    expect_on_another_device(candidate, (f, cum, 2, 0.3, noise), self_correct_step(f, cum, 2, 0.3, noise),
                       "f (2, 8, 4, 4), side 2")


# the exercises of this topic, in notebook order
EXERCISES = [
    Exercise("next_scale.residual_step", reference=residual_step, checker=check_residual_step,
             description=check_residual_step.__doc__),
    Exercise("next_scale.bits_to_index", reference=bits_to_index, checker=check_bits_to_index,
             description=check_bits_to_index.__doc__),
    Exercise("next_scale.self_correct_step", reference=self_correct_step, checker=check_self_correct_step,
             description=check_self_correct_step.__doc__),
]
