"""Exercises of notebook 01 (pixels and samples); see course_lib.course.homework for the mechanism.

pixels.causal_mask     the type A / type B mask of a k x k masked convolution
pixels.mu_law_encode   waveform in [-1, 1] -> mu-law levels 0..mu
pixels.mu_law_decode   mu-law levels -> waveform
pixels.raster_sample   the pixel-by-pixel sampling loop, with temperature
pixels.bits_per_dim    bits per dimension from logits and targets (a summed NLL, normalised)

Every call of the learner's function goes through :func:`~course_lib.course.checking.call` (inputs
changed in place, time limit, the reference handed in); the cases vary the sizes (down to 1), include
the ends of every range and extreme values, the notebook's sizes and beyond, a float64 input where
the input is a float tensor, and one case on another device (a GPU, or PyTorch's meta device as a
stand-in). The known mistakes are listed once (:mod:`course_lib.course.exercises.pixels_mistakes`):
the check names the one that reproduces the learner's values, the tests submit each one.
"""
import math

import torch
import torch.nn.functional as F

from course_lib.course.checking import (CannotTell, Exercise, Mismatch, call, call_on, device_words,
                                        expect_a_tensor, expect_like, expect_loss, expect_tensor, explain,
                                        generator, gradients, name_mistake, name_mistake_in, naming, stand_in_device)
from course_lib.course.exercises import pixels_mistakes as known
from course_lib.course.exercises.pixels_raster import check_raster_sample
from course_lib.pixels.pixel_ar import bits_per_dim, causal_mask, raster_sample
from course_lib.pixels.wavenet import mu_law_decode, mu_law_encode


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.equal(a.detach().cpu().double(), b.detach().cpu().double()))


# ----------------------------------------------------------------------------- masks

def _rows(m: torch.Tensor) -> str:
    """A small mask written row by row: '111/110/000'."""
    return "/".join("".join(str(int(v)) for v in row) for row in m.detach().cpu().double().round().tolist())


def check_causal_mask(candidate):
    """Masks of type A (kernels 3, 5, 1, 7, 9), then of type B (the same kernels): the shape (k, k),
    every value (a recognisable mix-up, transposed or flipped mask is named), k = 1 (the centre
    alone), and a dtype the notebook can multiply a float32 weight with (float32, or a bool / integer
    0-1 mask; float64 is refused: weight * mask would become float64 and the float32 convolution
    fails)."""
    for mask_type in "AB":
        for k in (3, 5, 1, 7, 9, 11):
            case = f"mask type {mask_type} for a {k}x{k} kernel"
            got = call(candidate, k, mask_type, case=case)
            expect_a_tensor(got, f"on {case}")
            if tuple(got.shape) != (k, k):
                raise Mismatch(f"on {case}: expected shape ({k}, {k}), got {tuple(got.shape)}")
            if got.is_floating_point() and got.dtype != torch.float32:
                raise Mismatch(f"on {case}: returned dtype {got.dtype}; expected torch.float32: the notebook "
                               f"multiplies a float32 weight by the mask, and a {got.dtype} mask turns the "
                               f"product into {got.dtype}, which F.conv2d refuses for float32 images (a mask "
                               f"built with NumPy is float64: use torch.ones(k, k), or .float())")
            if got.is_complex():
                raise Mismatch(f"on {case}: returned dtype {got.dtype}; expected torch.float32")
            want = causal_mask(k, mask_type)
            g = got.detach().cpu().to(torch.float32)                  # a bool or 0-1 integer mask is fine
            if not _same(g, want):
                layout = ("type A: 1 above the centre row and left of the centre, 0 at the centre and after it"
                          if mask_type == "A" else "type B: like A, but the centre itself is 1")
                small = k <= 5 and bool(g.isfinite().all())
                shown = f"; yours row by row {_rows(g)}, expected {_rows(want)}" if small else ""
                try:
                    expect_tensor(g, want, f"on {case}", hint=f"({layout}{shown})")
                except Mismatch as e:         # named on this kernel and two others (k = 1 alone hides a lot)
                    as_float = lambda *a: candidate(*a).detach().cpu().to(torch.float32)   # noqa: E731
                    sizes = [(k, mask_type)] + [(j, mask_type) for j in (3, 5) if j != k]
                    raise explain(e, name_mistake_in(as_float, known.CAUSAL_MASK_MISTAKES, sizes)) from None


# ----------------------------------------------------------------------------- mu-law

def _levels_hint(got: torch.Tensor, x: torch.Tensor, mu: int) -> str:
    """The rule, and where a level falls outside 0..mu, that it does."""
    g = got.detach().cpu()
    rule = "level = floor((f + 1) / 2 * mu + 0.5) with f = sign(x) ln(1 + mu |x|) / ln(1 + mu), x clipped to [-1, 1]"
    if (g < 0).any() or (g > mu).any():
        return f"level {int(g[(g < 0) | (g > mu)][0])} is outside 0..{mu}; {rule}"
    return rule


def _expect_levels(got, x, mu, case):
    want = mu_law_encode(x.detach().cpu(), mu)
    what = f"on {case}"
    expect_a_tensor(got, what)
    if tuple(got.shape) != tuple(x.shape):
        raise Mismatch(f"{what}: expected shape {tuple(x.shape)} (one level per sample, the input's shape), "
                       f"got {tuple(got.shape)}")
    if got.is_floating_point():
        raise Mismatch(f"{what}: the levels should be integers (torch.int64, e.g. .long()), got {got.dtype}")
    if got.dtype != torch.int64:
        raise Mismatch(f"{what}: returned dtype {got.dtype}; expected torch.int64 (.long()): the levels are "
                       f"the targets of cross_entropy and the inputs of nn.Embedding, which need int64")
    if got.device.type != x.device.type:
        raise Mismatch(f"{what}: returned a tensor on {got.device}; expected one on {x.device} like the input "
                       f"(create new tensors with device=x.device)")
    if not _same(got, want):
        with naming(known.MU_LAW_ENCODE_MISTAKES, got.cpu(), x.detach().cpu(), mu):
            expect_tensor(got.cpu(), want, what, hint=f"({_levels_hint(got, x, mu)})")


def _waves():
    g = generator(1)
    x = torch.rand(3, 50, generator=g) * 2 - 1
    small = (torch.rand(2, 20, generator=g) - 0.5) * 0.02
    edges = torch.tensor([-1.0, -0.5, -0.01, 0.0, 0.001, 0.25, 0.999, 1.0])
    loud = torch.tensor([-1.7, -1.0001, 1.0001, 3.0, 250.0])
    return g, x, small, edges, loud


def check_mu_law_encode(candidate):
    """Encode the ends of [-1, 1] and 0, random and quiet waves, values outside [-1, 1] (clipped
    first), mu = 15, 16 and 1 (two levels, where 0 sits exactly halfway), a float64 wave, a single
    sample and a 3-D batch: the levels (int64, the input's shape, each in 0..mu; rounding down,
    linear levels, a lost sign or a fixed mu are named), the input unchanged, and the output on the
    input's device (a GPU, or the meta device as a stand-in)."""
    g, x, small, edges, loud = _waves()
    cases = [("the values -1, -0.5, -0.01, 0, 0.001, 0.25, 0.999, 1", edges, 255),
             ("a random wave (3, 50) in [-1, 1]", x, 255),
             ("a quiet wave (2, 20) within +-0.01 (mu-law gives it many levels)", small, 255),
             ("values outside [-1, 1]: -1.7, -1.0001, 1.0001, 3, 250 (clip them first)", loud, 255),
             ("a random wave (4, 33) with mu=15 (16 levels)", torch.rand(4, 33, generator=g) * 2 - 1, 15),
             ("the values -1, -0.3, 0, 0.3, 1 with mu=16 (17 levels)", torch.tensor([-1.0, -0.3, 0.0, 0.3, 1.0]), 16),
             ("the values -1, -0.2, 0, 0.2, 1 with mu=1 (2 levels; 0 is exactly halfway: it rounds up)",
              torch.tensor([-1.0, -0.2, 0.0, 0.2, 1.0]), 1),
             ("a float64 wave (2, 1, 17)", (torch.rand(2, 1, 17, generator=g, dtype=torch.float64) * 2 - 1), 255),
             ("a single sample (1,)", torch.tensor([0.37]), 255),
             ("the notebook's clips (8, 8000)", torch.rand(8, 8000, generator=g) * 2 - 1, 255),
             ("a wave beyond the notebook's, (2, 20001)", torch.rand(2, 20001, generator=g) * 2 - 1, 255)]
    for case, wave, mu in cases:
        got = call(candidate, wave, case=case, mu=mu) if mu != 255 else call(candidate, wave, case=case)
        _expect_levels(got, wave, mu, case)
    dev = stand_in_device()
    case = f"a random wave (2, 9) on {device_words(dev)}"
    wave = torch.rand(2, 9, generator=g) * 2 - 1
    got = call_on(dev, candidate, wave, case=case)
    if not isinstance(got, CannotTell):
        expect_like(got, mu_law_encode(wave), dev, f"on {case}")


def check_mu_law_decode(candidate):
    """Decode the end levels 0 and mu and the middle ones, all 256 levels, a random batch, all levels
    for mu = 15, 16 (an even mu: a level decodes to exactly 0) and 1, a single level and a 3-D
    batch: float32 values (a missing step, a lost sign or a fixed mu are named), the input
    unchanged, and the output on the input's device (a GPU, or the meta device as a stand-in)."""
    g = generator(2)
    cases = [("the levels 0, 1, 127, 128, 254, 255", torch.tensor([0, 1, 127, 128, 254, 255]), 255),
             ("all 256 levels 0..255", torch.arange(256), 255),
             ("a random batch of levels (4, 30)", torch.randint(0, 256, (4, 30), generator=g), 255),
             ("all 16 levels with mu=15", torch.arange(16), 15),
             ("all 17 levels with mu=16 (level 8 is exactly 0)", torch.arange(17), 16),
             ("the levels 0, 1 with mu=1", torch.tensor([1, 0]), 1),
             ("a single level (1,)", torch.tensor([200]), 255),
             ("a batch of levels (2, 3, 5)", torch.randint(0, 256, (2, 3, 5), generator=g), 255),
             ("the notebook's clips of levels (8, 8000)", torch.randint(0, 256, (8, 8000), generator=g), 255),
             ("levels beyond the notebook's, (2, 20001)", torch.randint(0, 256, (2, 20001), generator=g), 255)]
    for case, q, mu in cases:
        got = call(candidate, q, case=case, mu=mu) if mu != 255 else call(candidate, q, case=case)
        want = mu_law_decode(q, mu)
        expect_a_tensor(got, f"on {case}")
        if got.dtype != want.dtype and tuple(got.shape) == tuple(want.shape):
            raise Mismatch(f"on {case}: returned dtype {got.dtype}; expected {want.dtype} (a waveform in float32, "
                           f"e.g. f = 2 * q.float() / mu - 1)")
        outside = got.shape == want.shape and bool((got.detach().abs() > 1 + 1e-5).any())
        rule = "f = 2 q / mu - 1, then x = sign(f) ((1 + mu)^|f| - 1) / mu"
        if outside:
            rule = f"a value outside [-1, 1]: level 0 must give -1 and level mu give +1, {rule}"
        with naming(known.MU_LAW_DECODE_MISTAKES, got, q, mu):
            expect_tensor(got, want, f"on {case}", hint=f"({rule})")
    dev = stand_in_device()
    case = f"a batch of levels (3, 4) on {device_words(dev)}"
    q = torch.randint(0, 256, (3, 4), generator=g)
    got = call_on(dev, candidate, q, case=case)
    if not isinstance(got, CannotTell):
        expect_like(got, mu_law_decode(q), dev, f"on {case}")


# ----------------------------------------------------------------------------- bits per dim

LN2 = math.log(2.0)


def _bpd_case(candidate, case, logits, targets, known_value=""):
    """Run the learner's bits_per_dim on a graph-attached copy of ``logits`` (as a model's output
    would be) and check it as a loss: value, 0-d, attached, gradient, logits unchanged. ``known_value``
    says what the value should be, for the message."""
    leaf = logits.detach().clone().requires_grad_(True)
    x_got, x_ref = leaf * 1.0, leaf * 1.0            # like a model's output: attached, not a leaf
    want = bits_per_dim(x_ref, targets.clone())
    got = call(candidate, x_got, targets, case=case)
    if isinstance(got, torch.Tensor) and got.dtype != want.dtype and got.dtype == logits.dtype:
        want = want.to(got.dtype)                     # following the logits' dtype is right too
    w = float(want.detach())
    if isinstance(got, torch.Tensor) and got.numel() == 1 and not torch.isfinite(got.detach()).all():
        raise Mismatch(f"on {case}: your value is {float(got.detach().reshape(-1)[0])}, expected {w:.6g}: with "
                       f"large logits exp(...) overflows and log(softmax) reaches log 0; use torch.log_softmax "
                       f"or F.cross_entropy, which subtract the maximum")
    try:
        expect_loss(got, want, f"on {case}", wrt={"logits": leaf}, atol=1e-4, rtol=1e-4)
    except Mismatch as e:
        mistake = name_mistake((got, gradients(got, [x_got])), known.BITS_PER_DIM_MISTAKES, logits.detach(),
                               targets, wrt=(0,), atol=1e-4, rtol=1e-4)
        counts = f"{targets.shape[0]} images or clips, {targets.numel()} targets"
        if mistake and known_value and "0-d" not in str(e) and "dtype" not in str(e):
            v = float(got.detach().reshape(-1)[0])
            raise explain(Mismatch(f"on {case}: {known_value}, got {v:.4f} ({counts})"), mistake) from None
        if mistake or "gradient" in str(e) or not isinstance(got, torch.Tensor) or got.numel() != 1:
            raise explain(e, mistake) from None
        ratio = float(got.detach().double().reshape(())) / float(want.detach().double())
        raise Mismatch(f"{e} (yours is {ratio:.4g} times the expected value, which is the summed -log p(target) in "
                       f"nats divided by the {targets.numel()} targets and by ln 2)") from None


def check_bits_per_dim(candidate):
    """Bits/dim as the training loss: a 0-d tensor attached to the graph (not a float from .item(),
    not shape (1,), not computed under no_grad), its value and its gradient with respect to the
    logits equal to the reference's, and the logits unchanged. Known values: uniform logits over 17
    values cost log2(17); one sure value costs 0 and a confident wrong one 200 / ln 2 (large logits:
    a naive exp or log(softmax) overflows). Sizes: images (5, 17, 8, 8), audio (2, 256, 100), one
    image (1, 4, 2, 3), one pixel (1, 2, 1, 1), a float64 batch (the loss in float64 or float32), the
    notebook's batch of digits (128, 17, 8, 8) and an audio window beyond its own (1, 256, 4097). One
    case on another device (a GPU, or the meta device as a stand-in): the loss stays on its device."""
    g = generator(3)
    sure_t = torch.randint(0, 6, (2, 3, 3), generator=g)
    sure = F.one_hot(sure_t, 6).permute(0, 3, 1, 2).float() * 200.0            # (2, 6, 3, 3)
    wrong_t = (sure_t + 1) % 6
    cases = [("uniform logits (4, 17, 8, 8)", torch.zeros(4, 17, 8, 8), torch.zeros(4, 8, 8, dtype=torch.long),
              f"uniform logits over 17 values should cost log2(17) = {math.log2(17):.4f} bits per dimension"),
             ("random logits (5, 17, 8, 8) and targets (5, 8, 8)",
              torch.randn(5, 17, 8, 8, generator=g) * 3, torch.randint(0, 17, (5, 8, 8), generator=g), ""),
             ("random logits (2, 256, 100) for audio targets (2, 100)",
              torch.randn(2, 256, 100, generator=g), torch.randint(0, 256, (2, 100), generator=g), ""),
             ("one image (1, 4, 2, 3)",
              torch.randn(1, 4, 2, 3, generator=g), torch.randint(0, 4, (1, 2, 3), generator=g), ""),
             ("one sure value: logit 200 on each target (2, 6, 3, 3), 0 elsewhere", sure, sure_t,
              "a sure value costs 0 bits"),
             ("a confident mistake: logit 200 on a wrong value (2, 6, 3, 3)", sure, wrong_t,
              f"a confident mistake costs 200 / ln 2 = {200 / LN2:.4f} bits"),
             ("one pixel with two values (1, 2, 1, 1)", torch.tensor([[[[0.3]], [[-1.2]]]]), torch.tensor([[[1]]]), ""),
             ("float64 logits (3, 5, 4, 4)", torch.randn(3, 5, 4, 4, generator=g, dtype=torch.float64) * 2,
              torch.randint(0, 5, (3, 4, 4), generator=g), ""),
             ("the notebook's batch of digits, logits (128, 17, 8, 8)", torch.randn(128, 17, 8, 8, generator=g) * 3,
              torch.randint(0, 17, (128, 8, 8), generator=g), ""),
             ("an audio window beyond the notebook's, logits (1, 256, 4097)", torch.randn(1, 256, 4097, generator=g),
              torch.randint(0, 256, (1, 4097), generator=g), "")]
    for case, logits, targets, value in cases:
        _bpd_case(candidate, case, logits, targets, value)

    dev = stand_in_device()
    case = f"random logits (2, 5, 3, 3) on {device_words(dev)}"
    logits, targets = torch.randn(2, 5, 3, 3, generator=g), torch.randint(0, 5, (2, 3, 3), generator=g)
    got = call_on(dev, candidate, logits.requires_grad_(True), targets, case=case)
    if not isinstance(got, CannotTell):
        expect_like(got, bits_per_dim(logits, targets), dev, f"on {case}", atol=1e-4)


# the exercises of this topic, in notebook order
EXERCISES = [Exercise(f"pixels.{name}", reference=ref, checker=chk, description=chk.__doc__,
                      mistakes=getattr(known, f"{name.upper()}_MISTAKES", ()),
                      alternatives=getattr(known, f"{name.upper()}_ALTERNATIVES", ()))
             for name, ref, chk in [("causal_mask", causal_mask, check_causal_mask),
                                    ("mu_law_encode", mu_law_encode, check_mu_law_encode),
                                    ("mu_law_decode", mu_law_decode, check_mu_law_decode),
                                    ("raster_sample", raster_sample, check_raster_sample),
                                    ("bits_per_dim", bits_per_dim, check_bits_per_dim)]]
