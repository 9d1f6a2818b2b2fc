"""Notebook 06's exercises (next-scale prediction): each known mistake (Exercise.mistakes, in
course_lib/course/exercises/next_scale.py) is caught with its own message and each correct alternative
passes (tests/mistakes.py); the wrong answers below are not named mistakes but kinds the checks must
catch (a shape, a dtype, a device, an input changed in place); the correct ones, written otherwise than
the reference, pass. tests/test_homework.py runs WRONG and CORRECT_ANSWERS."""
import math

import torch
import torch.nn.functional as F

from course_lib.course.exercises import next_scale as topic
from tests.mistakes import known_mistake_tests

test_known_mistake_named, test_correct_alternative_passes = known_mistake_tests(topic)


# ----------------------------------------------------------------------------- residual_step

def _near(r, cb):
    v = r.permute(0, 2, 3, 1)
    return torch.cdist(v.reshape(-1, v.shape[-1]), cb).argmin(1).reshape(v.shape[:-1])


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


def rs_correct_loops(f_rest, codebook, side):
    B, D, H, W = f_rest.shape
    r = F.adaptive_avg_pool2d(f_rest, side)                        # area = adaptive average pooling
    flat = r.permute(0, 2, 3, 1).reshape(-1, D)
    d = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ codebook.t() + codebook.pow(2).sum(1)
    codes = d.argmin(1).reshape(B, side, side)
    e = codebook.index_select(0, codes.flatten()).reshape(B, side, side, D).permute(0, 3, 1, 2)
    return codes, F.interpolate(e, size=(H, W), mode="bicubic", align_corners=False)


# ----------------------------------------------------------------------------- bits_to_index

def bti_float(bits):
    return (bits.float() * 2.0 ** torch.arange(bits.shape[-1], device=bits.device)).sum(-1)


def bti_int32(bits):
    return (bits.int() * 2 ** torch.arange(bits.shape[-1], device=bits.device, dtype=torch.int32)).sum(-1)


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


def bsc_in_place_cum(f, cum, side, p, noise):
    b = (F.interpolate(f - cum, size=(side, side), mode="area") > 0).long()
    cum += _up(_codes(b ^ (noise < p).long(), f), f)
    return b, cum


def bsc_bool_labels(f, cum, side, p, noise):
    b = F.interpolate(f - cum, size=(side, side), mode="area") > 0
    return b, cum + _up(_codes(b ^ (noise < p), f), f)


def bsc_subtracts_codes(f, cum, side, p, noise):     # cum - codes: the same values as flipping where noise >= p
    b = (F.interpolate(f - cum, size=(side, side), mode="area") > 0).long()
    return b, cum - _up(_codes(b ^ (noise < p).long(), f), f)


def bsc_codes_in_float32(f, cum, side, p, noise):    # (2 b.float() - 1): float32 codes in a float64 sum
    b = (F.interpolate(f - cum, size=(side, side), mode="area") > 0).long()
    return b, cum + _up((2 * (b ^ (noise < p).long()).float() - 1) / math.sqrt(f.shape[1]), f).to(f.dtype)


def bsc_correct_where(f, cum, side, p, noise):
    r = F.adaptive_avg_pool2d(f - cum, side)
    labels = torch.where(r > 0, 1, 0).to(torch.int64)
    flip = noise < p
    used = torch.where(flip, 1 - labels, labels)
    codes = torch.where(used == 1, 1.0, -1.0).to(f.dtype) / f.shape[1] ** 0.5
    return labels, cum + F.interpolate(codes, size=tuple(f.shape[-2:]), mode="bilinear", align_corners=False)


WRONG = {
    "next_scale.residual_step": [
        (rs_flat_codes, "expected shape"), (rs_no_upsample, "expected shape"), (rs_subtracts_in_place, "in place"),
        (rs_float_codebook_fixed, "float64"),
    ],
    "next_scale.bits_to_index": [
        (bti_float, "int64"), (bti_int32, "int64"), (bti_cpu_weights, "device"),
    ],
    "next_scale.self_correct_step": [
        (bsc_in_place_cum, "in place"), (bsc_bool_labels, "int64"),
        (bsc_subtracts_codes, "from subtracting the codes"), (bsc_codes_in_float32, "float32 computation"),
    ],
}
WRONG_ANSWERS = {name: [fn for fn, _ in pairs] for name, pairs in WRONG.items()}
CORRECT_ANSWERS = {
    "next_scale.residual_step": [rs_correct_loops],
    "next_scale.bits_to_index": [bti_correct_shift],
    "next_scale.self_correct_step": [bsc_correct_where],
}
