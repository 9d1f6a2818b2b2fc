"""Wrong and correct answers to notebook 06's exercises (next-scale prediction): each wrong one is
caught with a message that names its mistake; each correct one, written otherwise than the
reference, passes. tests/test_homework.py runs them."""
import math

import torch
import torch.nn.functional as F


# ----------------------------------------------------------------------------- residual_step

def _near(r, cb):
    v = r.permute(0, 2, 3, 1)
    return torch.cdist(v.reshape(-1, v.shape[-1]), cb).argmin(1).reshape(v.shape[:-1])


def rs_bilinear_down(f_rest, codebook, side):
    r = F.interpolate(f_rest, size=(side, side), mode="bilinear", align_corners=False)
    c = _near(r, codebook)
    return c, F.interpolate(codebook[c].permute(0, 3, 1, 2), size=f_rest.shape[-2:], mode="bicubic")


def rs_bilinear_up(f_rest, codebook, side):
    c = _near(F.interpolate(f_rest, size=(side, side), mode="area"), codebook)
    return c, F.interpolate(codebook[c].permute(0, 3, 1, 2), size=f_rest.shape[-2:], mode="bilinear")


def rs_dot_product(f_rest, codebook, side):
    r = F.interpolate(f_rest, size=(side, side), mode="area")
    c = (r.permute(0, 2, 3, 1) @ codebook.t()).argmax(-1)
    return c, F.interpolate(codebook[c].permute(0, 3, 1, 2), size=f_rest.shape[-2:], mode="bicubic")


def rs_flat_codes(f_rest, codebook, side):
    c = _near(F.interpolate(f_rest, size=(side, side), mode="area"), codebook)
    return c.flatten(1), F.interpolate(codebook[c].permute(0, 3, 1, 2), size=f_rest.shape[-2:], mode="bicubic")


def rs_no_upsample(f_rest, codebook, side):
    c = _near(F.interpolate(f_rest, size=(side, side), mode="area"), codebook)
    return c, codebook[c].permute(0, 3, 1, 2)


def rs_subtracts_in_place(f_rest, codebook, side):
    c = _near(F.interpolate(f_rest, size=(side, side), mode="area"), codebook)
    h = F.interpolate(codebook[c].permute(0, 3, 1, 2), size=f_rest.shape[-2:], mode="bicubic")
    f_rest -= h
    return c, h


def rs_float_codebook_fixed(f_rest, codebook, side):             # casts to float32: loses float64
    f32, cb = f_rest.float(), codebook.float()
    c = _near(F.interpolate(f32, size=(side, side), mode="area"), cb)
    return c, F.interpolate(cb[c].permute(0, 3, 1, 2), size=f_rest.shape[-2:], mode="bicubic")


def rs_nearest_down(f_rest, codebook, side):
    c = _near(F.interpolate(f_rest, size=(side, side), mode="nearest"), codebook)
    return c, F.interpolate(codebook[c].permute(0, 3, 1, 2), size=f_rest.shape[-2:], mode="bicubic")


def rs_correct_loops(f_rest, codebook, side):
    B, D, H, W = f_rest.shape
    r = F.adaptive_avg_pool2d(f_rest, side)                        # area = adaptive average pooling
    flat = r.permute(0, 2, 3, 1).reshape(-1, D)
    d = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ codebook.t() + codebook.pow(2).sum(1)
    codes = d.argmin(1).reshape(B, side, side)
    e = codebook.index_select(0, codes.flatten()).reshape(B, side, side, D).permute(0, 3, 1, 2)
    return codes, F.interpolate(e, size=(H, W), mode="bicubic", align_corners=False)


# ----------------------------------------------------------------------------- bits_to_index

def bti_msb_first(bits):
    d = bits.shape[-1]
    return (bits.long() * 2 ** torch.arange(d - 1, -1, -1, device=bits.device)).sum(-1)


def bti_float(bits):
    return (bits.float() * 2.0 ** torch.arange(bits.shape[-1], device=bits.device)).sum(-1)


def bti_int32(bits):
    return (bits.int() * 2 ** torch.arange(bits.shape[-1], device=bits.device, dtype=torch.int32)).sum(-1)


def bti_count(bits):
    return bits.long().sum(-1)


def bti_from_one(bits):
    return (bits.long() * 2 ** torch.arange(1, bits.shape[-1] + 1, device=bits.device)).sum(-1)


def bti_cpu_weights(bits):
    return (bits.long() * 2 ** torch.arange(bits.shape[-1])).sum(-1)


def bti_correct_shift(bits):
    out = torch.zeros(bits.shape[:-1], dtype=torch.int64, device=bits.device)
    for i in range(bits.shape[-1]):
        out = out | (bits[..., i].long() << i)
    return out


# ----------------------------------------------------------------------------- self_correct_step

def _up(c, f, mode="bilinear"):
    return F.interpolate(c, size=f.shape[-2:], mode=mode)


def _codes(b, f, scale=True):
    c = 2 * b.to(f.dtype) - 1
    return c / math.sqrt(f.shape[1]) if scale else c


def bsc_flipped_labels(f, cum, side, p, noise):
    b = (F.interpolate(f - cum, size=(side, side), mode="area") > 0).long() ^ (noise < p).long()
    return b, cum + _up(_codes(b, f), f)


def bsc_clean_cum(f, cum, side, p, noise):
    b = (F.interpolate(f - cum, size=(side, side), mode="area") > 0).long()
    return b, cum + _up(_codes(b, f), f)


def bsc_from_f(f, cum, side, p, noise):
    b = (F.interpolate(f, size=(side, side), mode="area") > 0).long()
    return b, cum + _up(_codes(b ^ (noise < p).long(), f), f)


def bsc_flip_where_above(f, cum, side, p, noise):
    b = (F.interpolate(f - cum, size=(side, side), mode="area") > 0).long()
    return b, cum + _up(_codes(b ^ (noise >= p).long(), f), f)


def bsc_ge_zero(f, cum, side, p, noise):
    b = (F.interpolate(f - cum, size=(side, side), mode="area") >= 0).long()
    return b, cum + _up(_codes(b ^ (noise < p).long(), f), f)


def bsc_no_sqrt_d(f, cum, side, p, noise):
    b = (F.interpolate(f - cum, size=(side, side), mode="area") > 0).long()
    return b, cum + _up(_codes(b ^ (noise < p).long(), f, scale=False), f)


def bsc_nearest_up(f, cum, side, p, noise):
    b = (F.interpolate(f - cum, size=(side, side), mode="area") > 0).long()
    return b, cum + _up(_codes(b ^ (noise < p).long(), f), f, "nearest")


def bsc_in_place_cum(f, cum, side, p, noise):
    b = (F.interpolate(f - cum, size=(side, side), mode="area") > 0).long()
    cum += _up(_codes(b ^ (noise < p).long(), f), f)
    return b, cum


def bsc_bool_labels(f, cum, side, p, noise):
    b = F.interpolate(f - cum, size=(side, side), mode="area") > 0
    return b, cum + _up(_codes(b ^ (noise < p), f), f)


def bsc_correct_where(f, cum, side, p, noise):
    r = F.adaptive_avg_pool2d(f - cum, side)
    labels = torch.where(r > 0, 1, 0).to(torch.int64)
    flip = noise < p
    used = torch.where(flip, 1 - labels, labels)
    codes = torch.where(used == 1, 1.0, -1.0).to(f.dtype) / f.shape[1] ** 0.5
    return labels, cum + F.interpolate(codes, size=tuple(f.shape[-2:]), mode="bilinear", align_corners=False)


WRONG = {
    "next_scale.residual_step": [
        (rs_bilinear_down, "AREA"), (rs_nearest_down, "AREA"), (rs_bilinear_up, "BICUBICALLY"),
        (rs_dot_product, "dot product"), (rs_flat_codes, "expected shape"), (rs_no_upsample, "expected shape"),
        (rs_subtracts_in_place, "in place"), (rs_float_codebook_fixed, "float64"),
    ],
    "next_scale.bits_to_index": [
        (bti_msb_first, "LEAST significant"), (bti_float, "int64"), (bti_int32, "int64"),
        (bti_count, "counts the ones"), (bti_from_one, "2^0 = 1"), (bti_cpu_weights, "device"),
    ],
    "next_scale.self_correct_step": [
        (bsc_flipped_labels, "LABELS stay clean"), (bsc_clean_cum, "FLIPPED bits"), (bsc_from_f, "RESIDUAL"),
        (bsc_flip_where_above, "noise < p"), (bsc_ge_zero, "exactly 0"), (bsc_no_sqrt_d, "sqrt(d)"),
        (bsc_nearest_up, "bilinear"), (bsc_in_place_cum, "in place"), (bsc_bool_labels, "int64"),
    ],
}
WRONG_ANSWERS = {name: [fn for fn, _ in pairs] for name, pairs in WRONG.items()}
CORRECT_ANSWERS = {
    "next_scale.residual_step": [rs_correct_loops],
    "next_scale.bits_to_index": [bti_correct_shift],
    "next_scale.self_correct_step": [bsc_correct_where],
}
