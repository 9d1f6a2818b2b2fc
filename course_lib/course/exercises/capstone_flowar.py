"""Project D of notebook 11 (next-scale prediction with a flow, FlowAR): the checked first step.

* capstone.flowar_scale_pair: the flow-matching training pair of one scale, with FlowAR's pyramid
  (area-downsampled maps, no residual) and its condition input (the previous scale, bicubic up to
  the full size, area down to this scale), in the course's time convention.

The reference lives in :mod:`course_lib.orders.flowar`. Every call of the learner's function goes
through :func:`~course_lib.course.checking.call` (inputs changed in place, time limit, the reference
handed in); images of 1..3 channels and sides 8, 12 and 16, FlowAR's doubling scales and others,
the first scale, a middle one and the last, one image to 1024, float32 and float64, and two cases
(the first scale and a middle one) on another device (a GPU, or PyTorch's meta device standing in for one).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from course_lib.course.checking import (BROADCAST, Exercise, Mismatch, Mistake, call_hinted, expect_close, expect_on_another_device,
                                        generator, naming)
from course_lib.orders import flowar
from course_lib.orders.var import area_down


def _resize(x, side, mode):
    if x.shape[-1] == side:
        return x
    if mode in ("bilinear", "bicubic"):
        return F.interpolate(x, size=(side, side), mode=mode, align_corners=False)
    return F.interpolate(x, size=(side, side), mode=mode)


def _pair(down="area", cond_from=-1, cond_rule="full", wrap=False, time="course", v_sign=1.0, residual=False,
          per_sample=True):
    """flowar_scale_pair with one part swapped for a known mistake's: how the pyramid goes down, which
    scale the condition comes from and how it is resized, the time convention, the sign of v, a VAR
    residual, and how t broadcasts."""
    def pair(x, scales, k, t, noise):
        s, H = scales[k], x.shape[-1]
        x_k = _resize(x, s, down)
        j = k + cond_from
        if j < 0 and not wrap:
            cond = torch.zeros_like(x_k)
        else:
            prev = _resize(x, scales[j], down)
            if cond_rule == "full":
                cond = area_down(_resize(prev, H, "bicubic"), s)
            elif cond_rule == "full_bilinear":
                cond = area_down(_resize(prev, H, "bilinear"), s)
            else:
                cond = _resize(prev, s, cond_rule)                     # straight to this scale
        target = x_k - cond if residual else x_k
        tt = t.view(-1, 1, 1, 1) if per_sample else t
        if time == "course":
            x_t = (1 - tt) * noise + tt * target
        else:                                                          # FlowAR's own: t = 1 is noise
            x_t = (1 - tt) * target + tt * noise
        v = target - noise if (time != "flowar") else noise - target
        return x_t, v_sign * v, cond
    return pair


_BROADCAST = ("t has shape (N,): give it three trailing axes, t[:, None, None, None] (or t.view(-1, 1, 1, 1)), "
              "so that each image is mixed with its own time (as it is, t runs along the width)")

MISTAKES = (
    Mistake("bilinear_pyramid", _pair(down="bilinear"),
            "the scale maps are AREA averages of the image (FlowAR: F.interpolate(x, (s, s), mode='area')), "
            "not bilinear samples"),
    Mistake("nearest_pyramid", _pair(down="nearest"),
            "the scale maps are AREA averages of the image (mode='area'), not nearest-neighbour picks"),
    # wraparound before same_scale: at k = 0 both give the 1x1 mean, and there the wraparound is the cause
    Mistake("wraparound_at_k0", _pair(wrap=True),
            "at k = 0 there is no previous scale, and scales[k - 1] is scales[-1] in Python: the full image, "
            "which gives the answer away; the condition of the first scale is zeros"),
    Mistake("same_scale_condition", _pair(cond_from=0),
            "the condition comes from the PREVIOUS scale, scales[k - 1]: built from scale k itself it hands "
            "the network the answer"),
    Mistake("direct_bicubic", _pair(cond_rule="bicubic"),
            "FlowAR brings the previous map to this scale in two steps: bicubic up to the FULL size (H, H), "
            "then area down to (s, s); a direct bicubic resize to (s, s) gives other values"),
    Mistake("nearest_upsample", _pair(cond_rule="nearest"),
            "the previous map is upsampled BICUBICALLY to the full size (H, H), then area-downsampled to "
            "(s, s); not repeated pixel by pixel (nearest)"),
    Mistake("bilinear_upsample", _pair(cond_rule="full_bilinear"),
            "the previous map goes up to the full size BICUBICALLY (mode='bicubic'), not bilinearly, then "
            "area down to (s, s)"),
    Mistake("var_residual", _pair(residual=True),
            "FlowAR has no residual: the flow's target is the whole scale-k map x_k (VAR's tokens code a "
            "residual; FlowAR's maps do not)"),
    Mistake("flowar_convention", _pair(time="flowar"),
            "that is FlowAR's own convention (noise at t = 1: x_t = (1 - t) x_k + t noise, v = noise - x_k); "
            "in the course's, t = 0 is noise: x_t = (1 - t) noise + t x_k, v = x_k - noise"),
    Mistake("reversed_time", _pair(time="reversed"),
            "time runs the other way: at t = 0 x_t is the noise and at t = 1 the map, x_t = (1 - t) noise + t x_k"),
    Mistake("v_sign", _pair(v_sign=-1.0),
            "the velocity points from the noise to the map: v = x_k - noise, not noise - x_k"),
    Mistake("t_not_per_sample", _pair(per_sample=False), _BROADCAST),
)


def _call(candidate, x, scales, k, t, noise, case):
    out = call_hinted(candidate, x, scales, k, t, noise, case=case, hints={BROADCAST: _BROADCAST},
                      returns=("x_t", "v", "cond"))
    for name, o in zip(("x_t", "v", "cond"), out):
        if isinstance(o, torch.Tensor) and o.shape != noise.shape:
            extra = f" ({_BROADCAST})" if o.dim() == 4 and o.shape[:3] == noise.shape[:3] else ""
            raise Mismatch(f"on {case}: {name} should have shape {tuple(noise.shape)}, scale {k}'s map, got "
                           f"{tuple(o.shape)}{extra}")
    return out


def _inputs(n, c, H, s, seed, dtype):
    g = generator(seed)
    x = torch.rand(n, c, H, H, generator=g, dtype=dtype) * 2 - 1
    t = torch.rand(n, generator=g, dtype=dtype)
    noise = torch.randn(n, c, s, s, generator=g, dtype=dtype)
    return x, t, noise


def check_flowar_scale_pair(candidate):
    """(x_t, v, cond) of scale k: x_k = the image area-downsampled to scales[k] (the image itself at
    the full size), x_t = (1 - t) noise + t x_k, v = x_k - noise with t per image, and cond = the map of
    scale k - 1 bicubic-upsampled to the full size then area-downsampled to scales[k] (zeros at k = 0),
    each (N, C, s, s). A bilinear or nearest pyramid, a condition from the same scale or from
    scales[-1] at k = 0, a direct bicubic, nearest or bilinear resize of the condition, a VAR-style
    residual target, FlowAR's own time convention, reversed time, the sign of v and a time that is not
    per image are each named. Scales (1, 2, 4, 8, 16) on 16x16 images (the notebook's), (1, 2, 4, 8) on
    8x8, (2, 4, 8, 16) and (1, 3, 6, 12); k the first, a middle and the last scale; N = 1..6 and
    1024; 1 to 3 channels; float32 and float64; inputs unchanged; k = 2 and k = 0 on another device."""
    S16 = (1, 2, 4, 8, 16)
    cases = [(5, 3, 16, S16, 2, torch.float32), (4, 3, 16, S16, 0, torch.float64),
             (3, 1, 8, (1, 2, 4, 8), 3, torch.float32), (6, 2, 16, (2, 4, 8, 16), 1, torch.float64),
             (4, 3, 16, S16, 2, torch.float32), (2, 3, 12, (1, 3, 6, 12), 2, torch.float64),
             (1, 3, 16, S16, 3, torch.float32), (1024, 3, 16, S16, 4, torch.float32)]
    for i, (n, c, H, scales, k, dtype) in enumerate(cases):
        x, t, noise = _inputs(n, c, H, scales[k], 30 + i, dtype)
        case = (f"{n} image{'s' * (n > 1)} of {c}x{H}x{H}, scales {scales}, k = {k} ({dtype})")
        want = flowar.flowar_scale_pair(x, scales, k, t, noise)
        got = _call(candidate, x, scales, k, t, noise, case)
        with naming(MISTAKES, got, x, scales, k, t, noise):
            for name, g, w in zip(("x_t", "v", "cond"), got, want):
                expect_close(g, w, f"on {case}, {name}")
    for k in (2, 0):                                   # the condition is made at k = 0, not computed
        x, t, noise = _inputs(3, 3, 16, S16[k], 50 + k, torch.float32)
        expect_on_another_device(candidate, (x, S16, k, t, noise), flowar.flowar_scale_pair(x, S16, k, t, noise),
                                 f"3 images of 3x16x16, k = {k}")


PROJECT = (
    Exercise("capstone.flowar_scale_pair", reference=flowar.flowar_scale_pair, checker=check_flowar_scale_pair,
             description=check_flowar_scale_pair.__doc__, mistakes=MISTAKES),
)
