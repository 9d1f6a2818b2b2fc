"""The check of notebook 01's sampling exercise, pixels.raster_sample (registered in
:mod:`course_lib.course.exercises.pixels`).

The learner's sampler is run on toy models whose logits at a pixel depend on its neighbours. At a
temperature of 1e-4 the draws are the argmax, so the canvas handed to logits_fn can be compared call
by call with the reference's: a wrong order, a wrong place, a draw not written back shows at the
first call where it happens. At temperatures 0.6, 1 and 2.5 the frequencies of 4000 draws are
compared with softmax(logits / T); then the generator handed in and the device asked for.
"""
import torch
import torch.nn.functional as F

from course_lib.course.checking import (CannotTell, Mismatch, call, call_on, device_words, expect_a_tensor, expect_like,
                                        expect_tensor, generator, stand_in_device)
from course_lib.pixels.pixel_ar import raster_sample


def _table(levels: int, seed: int) -> torch.Tensor:
    g = generator(seed)
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
    want = raster_sample(recorder, n, h, w, temperature=1e-4, generator=generator(0))
    case = f"{n} image{'s' * (n > 1)}, {levels} levels, a {h}x{w} canvas, temperature 1e-4 (almost argmax)"
    model = _Model(table, n, h, w, device=extra.get("device"), expected=[c.cpu() for c in recorder.calls], case=case)
    try:
        got = call(candidate, model, n, h, w, case=case, temperature=1e-4,
                   generator=generator(0), **extra)
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
               generator=generator(3))
    expect_a_tensor(got, f"on {case}")
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
                       generator=generator(seed))
            expect_a_tensor(got, f"on {case}")
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
                      generator=generator(0))
    except Mismatch as e:
        if dev.type == "meta" and not model.calls and e.__cause__ is not None:
            return              # it refused the meta device before drawing anything: only a GPU can tell
        raise
    if isinstance(got, CannotTell):
        return
    want = raster_sample(_Model(table, 2, 2, 3, device=dev), 2, 2, 3, temperature=1e-4,
                         generator=generator(0), device=dev) if dev.type != "meta" else \
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
    _argmax_case(candidate, 17, 1, 8, 8, seed=9)                   # the notebook's digits: 17 levels, 8x8
    _argmax_case(candidate, 17, 2, 9, 10, seed=10)                 # and beyond
    for temperature in (2.5, 0.6, 1.0):
        _statistics_case(candidate, temperature)
    _generator_case(candidate)
    _device_case(candidate)
