"""Exercises of notebook 01 (pixels and samples); see course_lib.course.homework for the mechanism.

pixels.causal_mask     the type A / type B mask of a k x k masked convolution
pixels.mu_law_encode   waveform in [-1, 1] -> mu-law levels 0..mu
pixels.mu_law_decode   mu-law levels -> waveform
pixels.raster_sample   the pixel-by-pixel sampling loop, with temperature
pixels.bits_per_dim    bits per dimension from logits and targets (a summed NLL, normalised)
"""
import math

import torch

from course_lib.course.checking import Case, Mismatch, compare, Exercise, expect_tensor, fingerprint
from course_lib.pixels.pixel_ar import bits_per_dim, causal_mask, raster_sample
from course_lib.pixels.wavenet import mu_law_decode, mu_law_encode


def _as_tensor(got, what):
    if isinstance(got, (float, int)) and not isinstance(got, bool):
        return torch.tensor(float(got))
    if not isinstance(got, torch.Tensor):
        raise Mismatch(f"{what}: expected a torch.Tensor, got {type(got).__name__}")
    return got


# ----------------------------------------------------------------------------- masks

def check_causal_mask(candidate):
    """Masks of type A and B for kernels 1, 3, 5 and 7."""
    for k in (3, 5, 7, 1):
        for t in ("A", "B"):
            got = _as_tensor(candidate(k, t), f"mask type {t} for a {k}x{k} kernel")
            want = causal_mask(k, t)
            hint = {"A": "(type A: 1 above the centre row and left of the centre, 0 at the centre "
                         "and after it)",
                    "B": "(type B: like A, but the centre itself is 1)"}[t]
            if tuple(got.shape) == (k, k) and got.dtype in (torch.bool, torch.int64, torch.int32, torch.float64):
                got = got.float()
            expect_tensor(got, want, f"mask type {t} for a {k}x{k} kernel", hint=hint)


# ----------------------------------------------------------------------------- mu-law

def _waves():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 50, generator=g) * 2 - 1
    small = (torch.rand(2, 20, generator=g) - 0.5) * 0.02
    edges = torch.tensor([-1.0, -0.5, -0.01, 0.0, 0.001, 0.25, 0.999, 1.0])
    loud = torch.tensor([-1.7, -1.0001, 1.0001, 3.0])
    return x, small, edges, loud


def check_mu_law_encode(candidate):
    """Encode random waves, quiet waves, the ends of [-1, 1], values outside it, and mu = 15."""
    x, small, edges, loud = _waves()
    probe = candidate(edges.clone())
    if isinstance(probe, torch.Tensor) and probe.is_floating_point():
        raise Mismatch(f"the levels should be integers (torch.int64, e.g. .long()), got {probe.dtype}")
    cases = [Case("the values -1, -0.5, -0.01, 0, 0.001, 0.25, 0.999, 1", (edges,)),
             Case("a random wave (3, 50) in [-1, 1]", (x,)),
             Case("a quiet wave (2, 20) within +-0.01 (mu-law gives it many levels)", (small,)),
             Case("values outside [-1, 1]: -1.7, -1.0001, 1.0001, 3 (clip them first)", (loud,)),
             Case("a random wave with mu=15 (16 levels)", (x,), {"mu": 15})]
    compare(candidate, mu_law_encode, cases)


def check_mu_law_decode(candidate):
    """Decode every level for mu = 255 and mu = 15, and a random batch of levels."""
    g = torch.Generator().manual_seed(2)
    cases = [Case("the levels 0, 1, 127, 128, 254, 255", (torch.tensor([0, 1, 127, 128, 254, 255]),)),
             Case("all 256 levels 0..255", (torch.arange(256),)),
             Case("a random batch of levels (4, 30)", (torch.randint(0, 256, (4, 30), generator=g),)),
             Case("all 16 levels with mu=15", (torch.arange(16),), {"mu": 15})]
    compare(candidate, mu_law_decode, cases, atol=1e-5, rtol=1e-4)


# ----------------------------------------------------------------------------- raster sampling

def _toy_model(levels: int, seed: int):
    """A fixed 'network' whose logits at (i, j) depend on the pixel above-right and the one to the
    left, so sampling in the wrong order, at the wrong place, or without writing back shows."""
    g = torch.Generator().manual_seed(seed)
    table = torch.randn(levels, levels, levels, generator=g) * 2.0        # (above-right, left, value)

    def logits_fn(x):
        up = torch.nn.functional.pad(x[:, 0], (0, 1, 1, 0))[:, :-1, 1:]    # (n, H, W): x[i-1, j+1]
        left = torch.nn.functional.pad(x[:, 0], (1, 0, 0, 0))[:, :, :-1]
        return table[up, left].permute(0, 3, 1, 2).contiguous()             # (n, levels, H, W)
    return logits_fn


class _Counter:
    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, x):
        self.calls += 1
        return self.fn(x)


def check_raster_sample(candidate):
    """Sample from toy models whose pixels depend on their neighbours: first at a temperature so low
    that sampling is argmax (no randomness involved), then draw by draw with a seeded generator."""
    for levels, (h, w) in [(5, (3, 4)), (7, (4, 2))]:
        model = _toy_model(levels, seed=levels)
        counted = _Counter(model)
        got = candidate(counted, 2, h, w, temperature=1e-4, generator=torch.Generator().manual_seed(0))
        want = raster_sample(model, 2, h, w, temperature=1e-4, generator=torch.Generator().manual_seed(0))
        expect_tensor(got, want, f"{levels} levels, a {h}x{w} canvas, temperature 1e-4 (almost argmax)",
                      hint="(fill row 0 left to right, then row 1, ...; read the logits at the pixel "
                           "you fill; divide them by the temperature)")
        if counted.calls != h * w:
            raise Mismatch(f"a {h}x{w} canvas needs {h * w} calls of the model, one per pixel, got "
                           f"{counted.calls}")
    for levels, (h, w), temp in [(5, (3, 4), 1.0), (6, (2, 5), 2.5), (7, (4, 3), 0.6)]:
        model = _toy_model(levels, seed=10 + levels)
        got = candidate(model, 3, h, w, temperature=temp, generator=torch.Generator().manual_seed(5))
        want = raster_sample(model, 3, h, w, temperature=temp, generator=torch.Generator().manual_seed(5))
        expect_tensor(got, want, f"{levels} levels, a {h}x{w} canvas, temperature {temp}, seeded generator",
                      hint="(draw each pixel with torch.multinomial(probs, 1, generator=generator), "
                           "probs = softmax(logits / temperature))")


# ----------------------------------------------------------------------------- bits per dim

def check_bits_per_dim(candidate):
    """Bits/dim of known distributions (uniform, one sure value) and of random logits."""
    k = 17
    flat = torch.zeros(4, k, 8, 8)
    got = _as_tensor(candidate(flat, torch.zeros(4, 8, 8, dtype=torch.long)), "uniform logits")
    if got.numel() != 1:
        raise Mismatch(f"expected one number (a scalar tensor), got shape {tuple(got.shape)}")
    if abs(got.item() - math.log2(k)) > 1e-4:
        raise Mismatch(f"uniform logits over {k} values should cost log2({k}) = {math.log2(k):.4f} "
                       f"bits per pixel, got {got.item():.4f}")
    g = torch.Generator().manual_seed(3)
    cases = [Case("random logits (5, 17, 8, 8) and targets (5, 8, 8)",
                  (torch.randn(5, 17, 8, 8, generator=g) * 3, torch.randint(0, 17, (5, 8, 8), generator=g))),
             Case("random logits (2, 256, 100) for audio targets (2, 100)",
                  (torch.randn(2, 256, 100, generator=g), torch.randint(0, 256, (2, 100), generator=g))),
             Case("one image (1, 4, 2, 3)",
                  (torch.randn(1, 4, 2, 3, generator=g), torch.randint(0, 4, (1, 2, 3), generator=g)))]
    for case in cases:
        want = bits_per_dim(*case.args)
        got = _as_tensor(candidate(*(a.clone() for a in case.args)), f"on {case.description}")
        expect_tensor(got.reshape(()).float(), want, f"on {case.description}", atol=1e-4,
                      hint=f"(yours: {fingerprint(got)})")


# the exercises of this topic, in notebook order
EXERCISES = [
    Exercise("pixels.causal_mask", reference=causal_mask, checker=check_causal_mask, description=check_causal_mask.__doc__),
    Exercise("pixels.mu_law_encode", reference=mu_law_encode, checker=check_mu_law_encode, description=check_mu_law_encode.__doc__),
    Exercise("pixels.mu_law_decode", reference=mu_law_decode, checker=check_mu_law_decode, description=check_mu_law_decode.__doc__),
    Exercise("pixels.raster_sample", reference=raster_sample, checker=check_raster_sample, description=check_raster_sample.__doc__),
    Exercise("pixels.bits_per_dim", reference=bits_per_dim, checker=check_bits_per_dim, description=check_bits_per_dim.__doc__),
]
