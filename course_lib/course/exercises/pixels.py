"""Exercises of notebook 01 (pixels and samples); see course_lib.course.homework for the mechanism.

pixels.causal_mask     the type A / type B mask of a k x k masked convolution
pixels.mu_law_encode   waveform in [-1, 1] -> mu-law levels 0..mu
pixels.mu_law_decode   mu-law levels -> waveform
pixels.raster_sample   the pixel-by-pixel sampling loop, with temperature
pixels.bits_per_dim    bits per dimension from logits and targets (a summed NLL, normalised)

Every call of the learner's function goes through :func:`~course_lib.course.checking.call` (inputs
changed in place, time limit, the reference handed in); the cases vary the sizes (down to 1), include
the ends of every range and extreme values, a float64 input where the input is a float tensor, and
one case on another device (a GPU, or PyTorch's meta device as a stand-in).
"""
import math

import torch
import torch.nn.functional as F

from course_lib.course.checking import (CannotTell, Exercise, Mismatch, call, call_on, device_words,
                                        expect_like, expect_loss, expect_tensor, off_by, stand_in_device)
from course_lib.pixels.pixel_ar import bits_per_dim, causal_mask, raster_sample
from course_lib.pixels.wavenet import mu_law_decode, mu_law_encode


def _not_a_tensor(got, what: str) -> None:
    if not isinstance(got, torch.Tensor):
        extra = (" (a NumPy array: turn it into a tensor with torch.from_numpy(...))"
                 if type(got).__module__.startswith("numpy") else "")
        raise Mismatch(f"{what}: expected a torch.Tensor, got {type(got).__name__}{extra}")


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.equal(a.detach().cpu().double(), b.detach().cpu().double()))


# ----------------------------------------------------------------------------- masks

def _rows(m: torch.Tensor) -> str:
    """A small mask written row by row: '111/110/000'."""
    return "/".join("".join(str(int(v)) for v in row) for row in m.detach().cpu().double().round().tolist())


def _mask_hint(got: torch.Tensor, k: int, mask_type: str) -> str:
    """Which mistake a wrong (k, k) mask shows, when it is recognisable."""
    want, other = causal_mask(k, mask_type), causal_mask(k, "B" if mask_type == "A" else "A")
    if _same(got, other):
        return ("this is the type B mask: type A also hides the centre (an output must not see its own pixel)"
                if mask_type == "A" else "this is the type A mask: type B keeps the centre (set it to 1)")
    for t in "AB":
        if _same(got, causal_mask(k, t).T):
            return ("the mask is transposed (columns where rows are wanted): raster order is row by row, "
                    "so keep every row above the centre and, in the centre row, the pixels left of it")
        if _same(got, causal_mask(k, t).flip(0, 1)) or _same(got, 1 - causal_mask(k, t)):
            return ("the mask keeps the wrong side: 1 on the rows above the centre and left of the centre, "
                    "0 below and to the right")
    c = k // 2
    if _same(got[c + 1:], want[c + 1:]) and _same(got[:c], want[:c]) and not _same(got[c, c + 1:], want[c, c + 1:]):
        return "in the centre row, every pixel right of the centre must be 0 (it comes later in raster order)"
    layout = ("type A: 1 above the centre row and left of the centre, 0 at the centre and after it"
              if mask_type == "A" else "type B: like A, but the centre itself is 1")
    return layout


def check_causal_mask(candidate):
    """Masks of type A (kernels 3, 5, 1, 7, 9), then of type B (the same kernels): the shape (k, k),
    every value (a recognisable mix-up, transposed or flipped mask is named), k = 1 (the centre
    alone), and a dtype the notebook can multiply a float32 weight with (float32, or a bool / integer
    0-1 mask; float64 is refused: weight * mask would become float64 and the float32 convolution
    fails)."""
    for mask_type in "AB":
        for k in (3, 5, 1, 7, 9):
            case = f"mask type {mask_type} for a {k}x{k} kernel"
            got = call(candidate, k, mask_type, case=case)
            _not_a_tensor(got, f"on {case}")
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
            g = got.detach().cpu().to(torch.float32)
            if not _same(g, want):
                hint = _mask_hint(g, k, mask_type)
                small = k <= 5 and bool(g.isfinite().all())
                shown = f"; yours row by row {_rows(g)}, expected {_rows(want)}" if small else ""
                expect_tensor(g, want, f"on {case}", hint=f"({hint}{shown})")


# ----------------------------------------------------------------------------- mu-law

def _compand(x: torch.Tensor, mu: int) -> torch.Tensor:
    return torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)


def _encode_hint(got: torch.Tensor, x: torch.Tensor, mu: int) -> str:
    """Which mistake wrong levels show, when it is recognisable."""
    g, x = got.detach().cpu().long(), x.detach().cpu().double()
    want = mu_law_encode(x, mu)
    xc = x.clamp(-1, 1)
    if mu != 255 and _same(g, mu_law_encode(x, 255)):
        return f"these are the levels for mu = 255: use the mu argument ({mu} here)"
    if _same(g, torch.round((_compand(xc, mu) + 1) / 2 * mu)):
        return ("torch.round sends a value exactly halfway (here x = 0) to the even neighbour; the levels are "
                "floor((f + 1) / 2 * mu + 0.5)")
    silent = (x == 0) & ((g < 0) | (g > mu))
    if silent.any():
        return (f"x = 0 (silence) got level {int(g[silent][0])}, expected the middle level {int(want[silent][0])}: "
                f"is f NaN there? (x / |x| is 0 / 0 at x = 0; torch.sign(0) is 0)")
    if (g < 0).any() or (g > mu).any():
        v = int(g[(g < 0) | (g > mu)][0])
        clip = " x outside [-1, 1] must be clipped to it first (x.clamp(-1, 1));" if x.abs().max() > 1 else ""
        return f"level {v} is outside 0..{mu}:{clip} the levels are floor((f + 1) / 2 * mu + 0.5) with f in [-1, 1]"
    if _same(g, torch.floor((xc + 1) / 2 * mu + 0.5)):
        return "these are linear levels: compand first, f = sign(x) ln(1 + mu |x|) / ln(1 + mu)"
    if _same(g, torch.floor((_compand(xc.abs(), mu) + 1) / 2 * mu + 0.5)):
        return "negative x got the levels of |x|: keep the sign, f = sign(x) ln(1 + mu |x|) / ln(1 + mu)"
    if _same(g, mu - want):
        return "the levels are mirrored: -1 must give level 0 and +1 level mu"
    if _same(g, torch.floor((_compand(xc, mu) + 1) / 2 * mu)):
        return "the levels are rounded down: round to the nearest one, floor((f + 1) / 2 * mu + 0.5)"
    return "level = floor((f + 1) / 2 * mu + 0.5) with f = sign(x) ln(1 + mu |x|) / ln(1 + mu), x clipped to [-1, 1]"


def _expect_levels(got, x, mu, case):
    want = mu_law_encode(x.detach().cpu(), mu)
    what = f"on {case}"
    _not_a_tensor(got, what)
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
        expect_tensor(got.cpu(), want, what, hint=f"({_encode_hint(got, x, mu)})")


def _waves():
    g = torch.Generator().manual_seed(1)
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
             ("a single sample (1,)", torch.tensor([0.37]), 255)]
    for case, wave, mu in cases:
        got = call(candidate, wave, case=case, mu=mu) if mu != 255 else call(candidate, wave, case=case)
        _expect_levels(got, wave, mu, case)
    dev = stand_in_device()
    case = f"a random wave (2, 9) on {device_words(dev)}"
    wave = torch.rand(2, 9, generator=g) * 2 - 1
    got = call_on(dev, candidate, wave, case=case)
    if not isinstance(got, CannotTell):
        expect_like(got, mu_law_encode(wave), dev, f"on {case}")


def _decode_hint(got: torch.Tensor, q: torch.Tensor, mu: int) -> str:
    g, q = got.detach().cpu().double(), q.detach().cpu()
    f = 2 * q.double() / mu - 1
    close = lambda a: a.shape == g.shape and bool(torch.allclose(g, a.double(), atol=1e-5, rtol=1e-4))  # noqa: E731
    if mu != 255 and close(mu_law_decode(q, 255)):
        return f"these are the values for mu = 255: use the mu argument ({mu} here)"
    if close(f):
        return "you undid the binning but not the companding: x = sign(f) ((1 + mu)^|f| - 1) / mu"
    if close(torch.sign(q.double() / mu) * ((1 + mu) ** (q.double() / mu).abs() - 1) / mu):
        return "the level is not the companded value: undo the binning first, f = 2 q / mu - 1"
    if close(((1 + mu) ** f.abs() - 1) / mu):
        return "the lower half came out positive: keep the sign, x = sign(f) ((1 + mu)^|f| - 1) / mu"
    if close(torch.sign(f) * (1 + mu) ** f.abs() / mu):
        return "x = sign(f) ((1 + mu)^|f| - 1) / mu: the - 1 is missing"
    if g.abs().max() > 1 + 1e-5:
        return ("a value outside [-1, 1]: level 0 must give -1 and level mu give +1 (f = 2 q / mu - 1, "
                "then x = sign(f) ((1 + mu)^|f| - 1) / mu)")
    hint = off_by(g, mu_law_decode(q, mu))
    return hint or "f = 2 q / mu - 1, then x = sign(f) ((1 + mu)^|f| - 1) / mu"


def check_mu_law_decode(candidate):
    """Decode the end levels 0 and mu and the middle ones, all 256 levels, a random batch, all levels
    for mu = 15, 16 (an even mu: a level decodes to exactly 0) and 1, a single level and a 3-D
    batch: float32 values (a missing step, a lost sign or a fixed mu are named), the input
    unchanged, and the output on the input's device (a GPU, or the meta device as a stand-in)."""
    g = torch.Generator().manual_seed(2)
    cases = [("the levels 0, 1, 127, 128, 254, 255", torch.tensor([0, 1, 127, 128, 254, 255]), 255),
             ("all 256 levels 0..255", torch.arange(256), 255),
             ("a random batch of levels (4, 30)", torch.randint(0, 256, (4, 30), generator=g), 255),
             ("all 16 levels with mu=15", torch.arange(16), 15),
             ("all 17 levels with mu=16 (level 8 is exactly 0)", torch.arange(17), 16),
             ("the levels 0, 1 with mu=1", torch.tensor([1, 0]), 1),
             ("a single level (1,)", torch.tensor([200]), 255),
             ("a batch of levels (2, 3, 5)", torch.randint(0, 256, (2, 3, 5), generator=g), 255)]
    for case, q, mu in cases:
        got = call(candidate, q, case=case, mu=mu) if mu != 255 else call(candidate, q, case=case)
        want = mu_law_decode(q, mu)
        _not_a_tensor(got, f"on {case}")
        if got.dtype != want.dtype and tuple(got.shape) == tuple(want.shape):
            raise Mismatch(f"on {case}: returned dtype {got.dtype}; expected {want.dtype} (a waveform in float32, "
                           f"e.g. f = 2 * q.float() / mu - 1)")
        close = (isinstance(got, torch.Tensor) and got.shape == want.shape
                 and bool(torch.allclose(got.detach().cpu().double(), want.double(), atol=1e-5, rtol=1e-4)))
        expect_tensor(got, want, f"on {case}", hint="" if close else f"({_decode_hint(got, q, mu)})")
    dev = stand_in_device()
    case = f"a batch of levels (3, 4) on {device_words(dev)}"
    q = torch.randint(0, 256, (3, 4), generator=g)
    got = call_on(dev, candidate, q, case=case)
    if not isinstance(got, CannotTell):
        expect_like(got, mu_law_decode(q), dev, f"on {case}")


# ----------------------------------------------------------------------------- raster sampling

def _table(levels: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(levels, levels, levels, generator=g) * 2.0         # (above-right, left, value)


def _toy_logits(table: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Logits at (i, j) from the pixel above-right x[i-1, j+1] and the one to the left x[i, j-1]
    (0 outside the canvas), so sampling in the wrong order, at the wrong place or without writing
    back shows."""
    up = F.pad(x[:, 0], (0, 1, 1, 0))[:, :-1, 1:]                    # (n, H, W): x[i-1, j+1]
    left = F.pad(x[:, 0], (1, 0, 0, 0))[:, :, :-1]                   # (n, H, W): x[i, j-1]
    return table.to(x.device)[up, left].permute(0, 3, 1, 2).contiguous()   # (n, levels, H, W)


class _Model:
    """The logits_fn handed to the learner's sampler: it checks the canvas it is called with (a tensor
    (n, 1, H, W) of int64 levels on the device asked for) and records it; with ``expected`` (the
    reference's canvases, call by call) it says at which call and which pixel the learner's canvas
    first differs."""

    def __init__(self, table, n, h, w, device=None, expected=None, case=""):
        self.table, self.n, self.h, self.w, self.case = table, n, h, w, case
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.expected, self.calls = expected, []

    def __call__(self, x):
        try:
            return self._logits(x)
        except Mismatch as e:
            raise Mismatch(f"on {self.case}: {e}" if self.case else str(e)) from None

    def _logits(self, x):
        n, h, w = self.n, self.h, self.w
        if not isinstance(x, torch.Tensor):
            raise Mismatch(f"logits_fn was called with a {type(x).__name__}; expected the canvas, a tensor "
                           f"of shape (n, 1, H, W) = ({n}, 1, {h}, {w})")
        if tuple(x.shape) != (n, 1, h, w):
            raise Mismatch(f"logits_fn was called with a canvas of shape {tuple(x.shape)}; expected (n, 1, H, W) "
                           f"= ({n}, 1, {h}, {w}): the whole canvas, every time")
        if x.dtype != torch.long:
            raise Mismatch(f"logits_fn was called with a canvas of dtype {x.dtype}; expected torch.int64 pixel "
                           f"levels (torch.zeros(n, 1, H, W, dtype=torch.long)): the network reads levels "
                           f"0..K-1")
        if x.device.type != self.device.type:
            raise Mismatch(f"logits_fn was called with a canvas on {x.device}; expected it on "
                           f"{device_words(self.device)}, the device argument (torch.zeros(..., device=device))")
        levels = self.table.shape[-1]
        if x.device.type != "meta" and x.numel() and (int(x.min()) < 0 or int(x.max()) >= levels):
            bad = int(x.min()) if int(x.min()) < 0 else int(x.max())
            raise Mismatch(f"logits_fn was called with a canvas holding the value {bad}; a pixel is a level "
                           f"0..{levels - 1} (the index of the value drawn from the {levels} logits)")
        if self.expected is not None and len(self.calls) < len(self.expected):
            self._compare(x, len(self.calls))
        self.calls.append(x.detach().clone())
        return _toy_logits(self.table, x)

    def _compare(self, x, c):
        want, got = self.expected[c], x.detach().cpu()
        if torch.equal(got, want):
            return
        i, j = divmod(c, self.w)
        when = f"on call {c + 1} of logits_fn (for pixel ({i}, {j}) in raster order)"
        later = [(a, b) for a in range(self.h) for b in range(self.w) if a * self.w + b >= c
                 and (got[:, 0, a, b] != 0).any()]
        skipped = [(a, b) for a in range(self.h) for b in range(self.w) if a * self.w + b < c
                   and (got[:, 0, a, b] == 0).all() and (want[:, 0, a, b] != 0).any()]
        if later and skipped:
            (a, b), (s, t) = later[0], skipped[0]
            raise Mismatch(f"{when} pixel ({s}, {t}) was still 0 while ({a}, {b}), which comes later in raster "
                           f"order, was already filled: fill every pixel, row 0 left to right, then row 1, ... "
                           f"(for i in range(height): for j in range(width))")
        if later:
            a, b = later[0]
            raise Mismatch(f"{when} the canvas already held a value at ({a}, {b}), which comes later: fill row 0 "
                           f"left to right, then row 1, ... (for i in range(height): for j in range(width))")
        if c > 0 and torch.equal(got, self.calls[0].cpu()) and not torch.equal(want, self.expected[0]):
            raise Mismatch(f"{when} the canvas was still as at the start: write each drawn value into the "
                           f"canvas (x[:, 0, i, j] = ...) before the next call")
        diff = (got != want)[:, 0].any(0).nonzero()[0].tolist()
        a, b = diff
        raise Mismatch(f"{when} pixel ({a}, {b}) of the canvas held {got[:, 0, a, b].tolist()}, expected "
                       f"{want[:, 0, a, b].tolist()} (at this temperature the draw is the most likely level): "
                       f"read the logits of the pixel you fill, logits_fn(x)[:, :, i, j], divide them by the "
                       f"temperature, and write the value drawn at (i, j)")


def _sampler_failed(e: Mismatch) -> Mismatch:
    """A hint for the errors a sampler raises at extreme temperatures."""
    text = str(e)
    if "probability tensor contains" in text or "invalid multinomial distribution" in text:
        return Mismatch(f"{text} (at temperature 1e-4, logits / T is huge: take torch.softmax(logits / T), which "
                        f"subtracts the maximum, rather than exp(...) / sum, and divide the logits rather than "
                        f"raise the probabilities to 1 / T)")
    return e


def _argmax_case(candidate, levels, n, h, w, seed, **extra):
    table = _table(levels, seed)
    recorder = _Model(table, n, h, w)
    want = raster_sample(recorder, n, h, w, temperature=1e-4, generator=torch.Generator().manual_seed(0))
    case = f"{n} image{'s' * (n > 1)}, {levels} levels, a {h}x{w} canvas, temperature 1e-4 (almost argmax)"
    model = _Model(table, n, h, w, device=extra.get("device"), expected=[c.cpu() for c in recorder.calls], case=case)
    try:
        got = call(candidate, model, n, h, w, case=case, temperature=1e-4,
                   generator=torch.Generator().manual_seed(0), **extra)
    except Mismatch as e:
        raise _sampler_failed(e) from e.__cause__
    if len(model.calls) != h * w:
        raise Mismatch(f"on {case}: a {h}x{w} canvas needs {h * w} calls of logits_fn, one per pixel, got "
                       f"{len(model.calls)} (call it on the canvas so far before each pixel: the next pixel's "
                       f"logits depend on the values just drawn)")
    expect_tensor(got, want, f"on {case}",
                  hint="(fill row 0 left to right, then row 1, ...; read the logits at the pixel you fill; "
                       "divide them by the temperature)")


def _frequencies_hint(values: torch.Tensor, logits: torch.Tensor, temperature: float, given: str = "") -> str:
    k = logits.numel()
    freq = torch.bincount(values, minlength=k).double() / values.numel()
    near = lambda p: float((freq - p).abs().max()) < 0.04        # noqa: E731
    if freq.max() == 1 and given:
        return ("here pixel (0, 1) is fully determined by pixel (0, 0): every draw must be a new draw from the "
                "generator handed in (not from a generator made or re-seeded inside the loop, nor an argmax)")
    if freq.max() == 1:
        return ("every image got the same value: draw each image's value from its probabilities "
                "(torch.multinomial(probs, 1, generator=generator) on the (n, K) probabilities), not the argmax "
                "or one draw for all")
    if temperature != 1 and near(torch.softmax(logits.double(), -1)):
        return "these are the frequencies at temperature 1: divide the logits by the temperature"
    if near(torch.softmax(logits.double() * temperature, -1)):
        return "these are the frequencies of logits * T: divide the logits by the temperature"
    return "probs = softmax(logits / temperature), one torch.multinomial draw per image"


def _statistics_case(candidate, temperature, n=4000):
    """Draw n images of a 1 x 2 canvas; pixel (0, 0) has the same logits in every image, pixel (0, 1)
    depends only on pixel (0, 0): compare their frequencies with softmax(logits / T)."""
    table = _table(5, 20)
    case = f"{n} images of a 1x2 canvas, 5 levels, temperature {temperature:g}, seeded generator"
    model = _Model(table, n, 1, 2, case=case)
    got = call(candidate, model, n, 1, 2, case=case, temperature=temperature,
               generator=torch.Generator().manual_seed(3))
    _not_a_tensor(got, f"on {case}")
    if tuple(got.shape) != (n, 1, 1, 2) or got.dtype != torch.long:
        expect_tensor(got, torch.zeros(n, 1, 1, 2, dtype=torch.long), f"on {case}")
    first, second = got[:, 0, 0, 0].cpu(), got[:, 0, 0, 1].cpu()
    if first.min() < 0 or first.max() >= 5 or second.min() < 0 or second.max() >= 5:
        raise Mismatch(f"on {case}: values outside the levels 0..4")
    pixels = [("pixel (0, 0)", first, table[0, 0], "")]
    for v in range(5):
        pick = first == v
        if pick.sum() >= 300:
            pixels.append((f"pixel (0, 1) in the images whose pixel (0, 0) is {v}", second[pick], table[0, v],
                           "given"))
    for name, values, logits, given in pixels:
        p = torch.softmax(logits.double() / temperature, -1)
        m = values.numel()
        count = torch.bincount(values, minlength=5).double()
        z = (count - m * p).abs() / torch.sqrt(m * p * (1 - p) + 1.0)
        if float(z.max()) > 6:
            v = int(z.argmax())
            raise Mismatch(f"on {case}: {name} came out {v} in {100 * count[v] / m:.1f}% of {m} images; "
                           f"softmax(logits / T) gives it {100 * p[v]:.1f}% "
                           f"({_frequencies_hint(values, logits, temperature, given)})")


def _generator_case(candidate):
    """The draws come from the generator handed in: the same seed gives the same images whatever
    torch's global seed, another seed other images."""
    table = _table(5, 30)
    case = "16 images of a 2x3 canvas at temperature 1, generators seeded 11, 11 and 12"
    outs = []
    with torch.random.fork_rng(devices=[]):
        for global_seed, seed in [(1, 11), (2, 11), (1, 12)]:
            torch.manual_seed(global_seed)
            got = call(candidate, _Model(table, 16, 2, 3, case=case), 16, 2, 3, case=case, temperature=1.0,
                       generator=torch.Generator().manual_seed(seed))
            _not_a_tensor(got, f"on {case}")
            outs.append(got.detach().cpu())
    if not torch.equal(outs[0], outs[1]):
        raise Mismatch(f"on {case}: two generators seeded the same gave other images (only torch's global seed "
                       f"differed): draw with the generator handed in, torch.multinomial(probs, 1, "
                       f"generator=generator)")
    if torch.equal(outs[0], outs[2]):
        raise Mismatch(f"on {case}: generators seeded 11 and 12 gave the same images: draw from the generator "
                       f"handed in (not a fresh or fixed-seed one)")


def _device_case(candidate):
    dev = stand_in_device()
    table = _table(5, 5)
    case = f"2 images of a 2x3 canvas with device={str(dev)!r} ({device_words(dev)})"
    model = _Model(table, 2, 2, 3, device=dev, case=case)

    def on_device(*args, **kwargs):                   # call_on's own `device` is where the tensors go
        return candidate(*args, device=dev, **kwargs)
    try:
        got = call_on(dev, on_device, model, 2, 2, 3, case=case, temperature=1e-4,
                      generator=torch.Generator().manual_seed(0))
    except Mismatch as e:
        if dev.type == "meta" and not model.calls and e.__cause__ is not None:
            return              # it refused the meta device before drawing anything: only a GPU can tell
        raise
    if isinstance(got, CannotTell):
        return
    want = raster_sample(_Model(table, 2, 2, 3, device=dev), 2, 2, 3, temperature=1e-4,
                         generator=torch.Generator().manual_seed(0), device=dev) if dev.type != "meta" else \
        torch.zeros(2, 1, 2, 3, dtype=torch.long, device=dev)
    expect_like(got, want, dev, f"on {case}")


def check_raster_sample(candidate):
    """Sample from toy models whose logits at a pixel depend on its neighbours: at temperature 1e-4
    (argmax; naive exp(logits / T) overflows there) on canvases 3x4, 4x2, 1x1, 1x5 and 5x1 for 1 to 3
    images: the canvas handed to logits_fn call by call (int64, (n, 1, H, W), raster order, each draw
    written back), H * W calls, the result; then the frequencies of 4000 draws at temperatures 0.6,
    1 and 2.5 against softmax(logits / T); that the draws come from the generator handed in; and the
    canvas on the device asked for (a GPU, or the meta device as a stand-in)."""
    _argmax_case(candidate, 5, 2, 3, 4, seed=5)
    _argmax_case(candidate, 7, 1, 4, 2, seed=7)
    _argmax_case(candidate, 6, 3, 1, 1, seed=6)
    _argmax_case(candidate, 4, 2, 1, 5, seed=4, device="cpu")
    _argmax_case(candidate, 5, 1, 5, 1, seed=8)
    for temperature in (2.5, 0.6, 1.0):
        _statistics_case(candidate, temperature)
    _generator_case(candidate)
    _device_case(candidate)


# ----------------------------------------------------------------------------- bits per dim

LN2 = math.log(2.0)


def _bpd_hint(got, want: torch.Tensor, targets: torch.Tensor, k: int) -> str:
    """What a bits/dim value off by a recognisable factor did."""
    if not isinstance(got, torch.Tensor) or got.numel() != 1:
        return ""
    v, w = float(got.detach().double().cpu().reshape(())), float(want.detach().double().cpu())
    if not (math.isfinite(v) and w) or math.isclose(v, w, rel_tol=1e-4, abs_tol=1e-5):
        return ""
    n, per = targets.shape[0], max(1, targets[0].numel())
    r = v / w
    named = [(LN2, "a factor ln 2: the NLL is in nats; divide by ln 2 for bits"),
             (1 / LN2, "a factor 1/ln 2: divided by ln 2 twice (log2 and / ln 2 both)?"),
             (-1.0, "the sign is flipped: bits/dim is the negative log-likelihood"),
             (float(per), f"divide the summed NLL by the number of targets, N x (values per image) = "
                          f"{targets.numel()}, not by N = {n}"),
             (float(n), f"divide the summed NLL by all {targets.numel()} targets, not by the {per} per image"),
             (float(targets.numel()), f"a sum: divide by the number of targets ({targets.numel()})"),
             (1.0 / k, f"divided by logits.numel() (which counts all K = {k} scores of every value): divide by "
                       f"targets.numel()"),
             (float(per) / LN2, "nats, and divided by N only: divide by targets.numel() and ln 2")]
    for factor, text in named:
        if factor != 1 and math.isclose(r, factor, rel_tol=1e-3):
            return f"yours is {r:.6g} times the expected value: {text}"
    return (f"yours is {r:.4g} times the expected value, which is the summed -log p(target) in nats divided by "
            f"the {targets.numel()} targets and by ln 2")


def _bpd_case(candidate, case, logits, targets, known=""):
    """Run the learner's bits_per_dim on a graph-attached copy of ``logits`` (as a model's output
    would be) and check it as a loss: value, 0-d, attached, gradient, logits unchanged. ``known``
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
        hint = _bpd_hint(got, want, targets, logits.shape[1])
        if not hint or "gradient" in str(e):
            raise
        if known and "0-d" not in str(e) and "dtype" not in str(e):
            v = float(got.detach().reshape(-1)[0])
            raise Mismatch(f"on {case}: {known}, got {v:.4f} ({hint})") from None
        raise Mismatch(f"{e} ({hint})") from None


def check_bits_per_dim(candidate):
    """Bits/dim as the training loss: a 0-d tensor attached to the graph (not a float from .item(),
    not shape (1,), not computed under no_grad), its value and its gradient with respect to the
    logits equal to the reference's, and the logits unchanged. Known values: uniform logits over 17
    values cost log2(17); one sure value costs 0 and a confident wrong one 200 / ln 2 (large logits:
    a naive exp or log(softmax) overflows). Sizes: images (5, 17, 8, 8), audio (2, 256, 100), one
    image (1, 4, 2, 3), one pixel (1, 2, 1, 1), a float64 batch (the loss in float64 or float32); a
    factor of ln 2, of the values per image, of K or a flipped sign is named. One case on another
    device (a GPU, or the meta device as a stand-in) where the loss stays on the logits' device."""
    g = torch.Generator().manual_seed(3)
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
              torch.randint(0, 5, (3, 4, 4), generator=g), "")]
    for case, logits, targets, known in cases:
        _bpd_case(candidate, case, logits, targets, known)

    dev = stand_in_device()
    case = f"random logits (2, 5, 3, 3) on {device_words(dev)}"
    logits, targets = torch.randn(2, 5, 3, 3, generator=g), torch.randint(0, 5, (2, 3, 3), generator=g)
    got = call_on(dev, candidate, logits.requires_grad_(True), targets, case=case)
    if not isinstance(got, CannotTell):
        expect_like(got, bits_per_dim(logits, targets), dev, f"on {case}", atol=1e-4)


# the exercises of this topic, in notebook order
EXERCISES = [Exercise(f"pixels.{name}", reference=ref, checker=chk, description=chk.__doc__)
             for name, ref, chk in [("causal_mask", causal_mask, check_causal_mask),
                                    ("mu_law_encode", mu_law_encode, check_mu_law_encode),
                                    ("mu_law_decode", mu_law_decode, check_mu_law_decode),
                                    ("raster_sample", raster_sample, check_raster_sample),
                                    ("bits_per_dim", bits_per_dim, check_bits_per_dim)]]
