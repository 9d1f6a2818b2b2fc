"""The course's data: generated, or bundled with scikit-learn. Nothing is downloaded.

* 2-D toys: :func:`toy_2d` ("spirals", "moons", "checkerboard", "8gaussians"), optional labels;
* digits: :func:`digits`, scikit-learn's 8x8 handwritten digits (values 0..16), fixed 80/20 split;
* shapes: :func:`shapes`, procedural RGB images of a coloured shape with a caption and attributes;
* video: :func:`moving_shapes`, short clips of a shape moving in a straight line;
* audio: :func:`audio_clips` (notes with harmonics and envelopes, chords, chirps, melodies); photos:
  :func:`photo`, the two photos scikit-learn bundles;
* files: :func:`data_file`, a file the package ships in ``course_lib/assets/``, checked against its
  SHA-256 and found with :mod:`importlib.resources`, so it works from a clone and from a wheel.
Every generator takes a ``seed`` and returns tensors on :func:`course_lib.runtime.device`."""
from __future__ import annotations

import atexit
import contextlib
import hashlib
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath

import numpy as np
import torch
import torch.nn.functional as F

from course_lib import checks, runtime

# the files the package ships (declared as package data in pyproject.toml): a folder of the
# installed package, read through importlib.resources, never through the repository's layout
ASSETS = resources.files("course_lib") / "assets"
_EXTRACTED = contextlib.ExitStack()      # assets copied out of a zipped install, removed at exit
atexit.register(_EXTRACTED.close)


def _gen(seed: int) -> torch.Generator:
    if not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- 2-D toys

TOY_2D = ("spirals", "moons", "checkerboard", "8gaussians")


def _spirals(n, g):
    # Two interleaved arms, the classic 2-D flow-matching target (as in FFJORD's "2spirals").
    arm = torch.randint(0, 2, (n,), generator=g)
    r = torch.sqrt(torch.rand(n, generator=g)) * 3 * math.pi               # angle grows with radius
    x = torch.stack([-torch.cos(r) * r, torch.sin(r) * r], dim=1)          # (n, 2)
    x = torch.where(arm[:, None] == 1, -x, x) + 0.5 * torch.randn(n, 2, generator=g)
    return x / 3.0, arm


def _moons(n, g):
    label = torch.randint(0, 2, (n,), generator=g)
    a = torch.rand(n, generator=g) * math.pi
    upper = torch.stack([torch.cos(a), torch.sin(a)], 1)
    lower = torch.stack([1 - torch.cos(a), 0.5 - torch.sin(a)], 1)
    x = torch.where(label[:, None] == 0, upper, lower) + 0.08 * torch.randn(n, 2, generator=g)
    return (x - torch.tensor([0.5, 0.25])) * 2.0, label


def _checkerboard(n, g):
    # 4x4 board on [-2, 2]^2, points only on the dark squares; label = which of the 8 squares.
    x1 = torch.rand(n, generator=g) * 4 - 2
    col = torch.floor(x1 + 2).long()                                       # 0..3
    row = torch.randint(0, 2, (n,), generator=g) * 2 + (col % 2)           # dark rows for that column
    x2 = torch.rand(n, generator=g) + row - 2
    label = col * 2 + row // 2
    return torch.stack([x1, x2], 1), label


def _eight_gaussians(n, g):
    label = torch.randint(0, 8, (n,), generator=g)
    angle = label.float() * (2 * math.pi / 8)
    centres = 2.0 * torch.stack([torch.cos(angle), torch.sin(angle)], 1)
    return centres + 0.15 * torch.randn(n, 2, generator=g), label


def toy_2d(name: str, n: int, seed: int = 0, labels: bool = False):
    """``n`` points of a 2-D toy distribution, shape (n, 2), float32, roughly unit scale.

    With ``labels=True`` also returns a (n,) int64 tensor: the spiral arm (2 classes), the moon
    (2), the checkerboard square (8) or the gaussian (8), for conditional models.
    """
    makers = {"spirals": _spirals, "moons": _moons, "checkerboard": _checkerboard,
              "8gaussians": _eight_gaussians}
    if name not in makers:
        raise ValueError(f"unknown 2-D data set {name!r}: expected one of {', '.join(TOY_2D)}")
    n = checks.positive_int(n, "n")
    x, y = makers[name](n, _gen(seed))
    x, dev = x.float().to(runtime.device()), runtime.device()
    return (x, y.long().to(dev)) if labels else x


def toy_2d_classes(name: str) -> int:
    """How many labels :func:`toy_2d` gives for ``name``."""
    counts = {"spirals": 2, "moons": 2, "checkerboard": 8, "8gaussians": 8}
    return counts[checks.one_of(name, "name", TOY_2D)]


# ----------------------------------------------------------------------------- digits

@dataclass
class Digits:
    """images: (N, 1, 8, 8) int64 in 0..16; labels: (N,) int64 in 0..9."""
    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self):
        return self.images.shape[0]


def digits(split: str = "train") -> Digits:
    """scikit-learn's bundled 8x8 digits with a fixed 80/20 split (1438 train, 359 test)."""
    if split not in ("train", "test", "all"):
        raise ValueError(f"unknown split {split!r}: expected 'train', 'test' or 'all'")
    from sklearn.datasets import load_digits
    d = load_digits()
    order = np.random.RandomState(0).permutation(len(d.target))
    cut = int(round(0.8 * len(order)))
    idx = {"train": order[:cut], "test": order[cut:], "all": order}[split]
    dev = runtime.device()
    images = torch.from_numpy(d.images[idx].astype(np.int64)).reshape(-1, 1, 8, 8)
    return Digits(images.to(dev), torch.from_numpy(d.target[idx].astype(np.int64)).to(dev))


# ----------------------------------------------------------------------------- shapes

SHAPES = ("circle", "square", "triangle", "cross")
COLORS = {"red": (0.95, 0.15, 0.15), "green": (0.15, 0.85, 0.2), "blue": (0.2, 0.35, 1.0),
          "yellow": (0.95, 0.9, 0.15), "magenta": (0.9, 0.2, 0.9), "cyan": (0.15, 0.9, 0.9)}
POSITIONS = ("top left", "top", "top right", "left", "center", "right",
             "bottom left", "bottom", "bottom right")
SIZES = ("small", "large")
ATTRIBUTES = ("shape", "color", "position", "size")          # the four words of a prompt, in order
N_VALUES = (len(SHAPES), len(COLORS), len(POSITIONS), len(SIZES))   # (4, 6, 9, 2): 432 prompts


@dataclass
class Shapes:
    """images: (N, 3, S, S) float32 in [0, 1]; captions: N strings such as "small red circle top
    left"; shape/color/position/size: (N,) int64 indices into SHAPES, COLORS, POSITIONS, SIZES."""
    images: torch.Tensor
    captions: list
    shape: torch.Tensor
    color: torch.Tensor
    position: torch.Tensor
    size: torch.Tensor

    def __len__(self):
        return self.images.shape[0]

    @property
    def prompts(self) -> torch.Tensor:
        """(N, 4) int64: (shape, color, position, size) per image, the order of ATTRIBUTES; the
        prompt a conditional generator gets (notebooks 04-06)."""
        return torch.stack([self.shape, self.color, self.position, self.size], dim=1)   # (N, 4)


def prompt_caption(prompt) -> str:
    """The caption of one prompt (a length-4 sequence or (4,) tensor of attribute indices)."""
    values = [int(v) for v in prompt]
    if len(values) != 4 or any(not 0 <= v < n for v, n in zip(values, N_VALUES)):
        raise ValueError(f"prompt: expected 4 indices (shape < 4, color < 6, position < 9, size < 2), got {values}")
    return caption(*values)


def _inside(kind: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    """Which points (dx, dy), in units of the shape's radius, lie inside shape ``kind``."""
    circle = dx ** 2 + dy ** 2 <= 1.0
    square = torch.maximum(dx.abs(), dy.abs()) <= 0.8
    triangle = (dy <= 0.8) & (dx.abs() <= 0.9 * (dy + 0.95) / 1.75)        # apex up (y grows down)
    cross = ((dx.abs() <= 0.32) & (dy.abs() <= 0.95)) | ((dy.abs() <= 0.32) & (dx.abs() <= 0.95))
    k = kind.view(-1, 1, 1)
    return torch.where(k == 0, circle, torch.where(k == 1, square, torch.where(k == 2, triangle, cross)))


def render_shapes(shape, color, cx, cy, radius, size: int, supersample: int = 4) -> torch.Tensor:
    """Draw one shape per image, anti-aliased by supersampling. Centres and radius in pixels.

    shape, color: (N,) int64; cx, cy, radius: (N,) float. Returns (N, 3, size, size) in [0, 1].
    """
    s = size * supersample
    coords = (torch.arange(s, dtype=torch.float32) + 0.5) / supersample      # pixel units
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")                   # (s, s)
    dx = (xx[None] - cx.view(-1, 1, 1)) / radius.view(-1, 1, 1)              # (N, s, s)
    dy = (yy[None] - cy.view(-1, 1, 1)) / radius.view(-1, 1, 1)
    mask = _inside(shape, dx, dy).float()[:, None]                           # (N, 1, s, s)
    mask = F.avg_pool2d(mask, supersample)                                   # (N, 1, size, size)
    rgb = torch.tensor(list(COLORS.values()))[color]                         # (N, 3)
    return mask * rgb[:, :, None, None]


def _shape_params(n, size, g):
    shape = torch.randint(0, len(SHAPES), (n,), generator=g)
    color = torch.randint(0, len(COLORS), (n,), generator=g)
    position = torch.randint(0, len(POSITIONS), (n,), generator=g)
    big = torch.randint(0, len(SIZES), (n,), generator=g)
    radius = torch.where(big == 1, 0.22, 0.14) * size
    jitter = (torch.rand(n, 2, generator=g) - 0.5) * (size / 16)
    cx = (0.25 + 0.25 * (position % 3)).float() * size + jitter[:, 0]
    cy = (0.25 + 0.25 * (position // 3)).float() * size + jitter[:, 1]
    return shape, color, position, big, cx, cy, radius


def render_prompts(prompts: torch.Tensor, size: int = 16, seed: int = 0) -> torch.Tensor:
    """Real images for given prompts: (N, 4) (shape, color, position, size) -> (N, 3, size, size),
    each shape placed with a fresh random jitter drawn from ``seed`` (as :func:`shapes` places it).
    Two calls with different seeds are two real draws of the same prompts."""
    checks.tensor(prompts, "prompts", ndim=2, floating=False, shape="(N, 4) int64")
    if prompts.shape[1] != 4:
        raise ValueError(f"prompts: expected shape (N, 4), got {tuple(prompts.shape)}")
    for a, (k, name) in enumerate(zip(N_VALUES, ATTRIBUTES)):    # a null id (left open) has no picture
        checks.index_range(prompts[:, a], f"prompts[:, {a}] ({name})", k)
    if size not in (16, 32):
        raise ValueError(f"size must be 16 or 32, got {size!r}")
    p = prompts.cpu().long()
    n = p.shape[0]
    shape, color, position, big = p.unbind(1)
    radius = torch.where(big == 1, 0.22, 0.14) * size
    jitter = (torch.rand(n, 2, generator=_gen(seed)) - 0.5) * (size / 16)
    cx = (0.25 + 0.25 * (position % 3)).float() * size + jitter[:, 0]
    cy = (0.25 + 0.25 * (position // 3)).float() * size + jitter[:, 1]
    images = torch.cat([render_shapes(shape[i:i + 512], color[i:i + 512], cx[i:i + 512], cy[i:i + 512],
                                      radius[i:i + 512], size) for i in range(0, n, 512)])
    return images.to(runtime.device())


def caption(shape: int, color: int, position: int, size: int) -> str:
    return f"{SIZES[size]} {list(COLORS)[color]} {SHAPES[shape]} {POSITIONS[position]}"


def shapes(n: int, size: int = 16, seed: int = 0) -> Shapes:
    """``n`` images of one coloured shape on black, with captions and attribute labels."""
    n = checks.positive_int(n, "n")
    if size not in (16, 32):
        raise ValueError(f"shapes size must be 16 or 32, got {size!r}")
    shape, color, position, big, cx, cy, radius = _shape_params(n, size, _gen(seed))
    images = torch.cat([render_shapes(shape[i:i + 512], color[i:i + 512], cx[i:i + 512],
                                      cy[i:i + 512], radius[i:i + 512], size)
                        for i in range(0, n, 512)])
    caps = [caption(*a) for a in zip(shape.tolist(), color.tolist(), position.tolist(), big.tolist())]
    dev = runtime.device()
    return Shapes(images.to(dev), caps, shape.to(dev), color.to(dev), position.to(dev), big.to(dev))


def moving_shapes(n: int, frames: int = 2, size: int = 16, seed: int = 0) -> torch.Tensor:
    """Short video clips: one shape moving in a straight line. Returns (n, frames, 3, size, size)."""
    n, frames = checks.positive_int(n, "n"), checks.positive_int(frames, "frames")
    if size not in (16, 32):
        raise ValueError(f"moving_shapes size must be 16 or 32, got {size!r}")
    g = _gen(seed)
    shape, color, _, _, cx, cy, radius = _shape_params(n, size, g)
    velocity = (torch.rand(n, 2, generator=g) - 0.5) * (size / 8)           # pixels per frame
    clips = [render_shapes(shape, color, cx + t * velocity[:, 0], cy + t * velocity[:, 1], radius, size)
             for t in range(frames)]
    return torch.stack(clips, 1).to(runtime.device())                        # (n, T, 3, S, S)


# ----------------------------------------------------------------------------- audio

AUDIO_KINDS = ("note", "chord", "chirp", "melody")


def midi_to_hz(m):
    return 440.0 * 2.0 ** ((np.asarray(m, dtype=np.float64) - 69) / 12)


def _envelope(length: int, sr: int, attack=0.01, release=0.08) -> np.ndarray:
    t = np.arange(length) / sr
    env = np.minimum(1.0, t / attack) * np.exp(-3.0 * t / max(length / sr, 1e-3))
    tail = np.clip((length / sr - t) / release, 0, 1)
    return env * tail


def _tone(freq: float, length: int, sr: int, harmonics: int = 4) -> np.ndarray:
    t = np.arange(length) / sr
    wave = sum((0.6 ** (k - 1)) * np.sin(2 * np.pi * k * freq * t) for k in range(1, harmonics + 1)
               if k * freq < sr / 2)
    return wave * _envelope(length, sr)


def _chirp(f0: float, f1: float, length: int, sr: int) -> np.ndarray:
    t = np.arange(length) / sr
    dur = length / sr
    phase = 2 * np.pi * f0 * dur / np.log(f1 / f0) * (np.exp(t / dur * np.log(f1 / f0)) - 1)
    return np.sin(phase) * _envelope(length, sr, attack=0.02, release=0.05)


@dataclass
class Audio:
    """waves: (N, L) float32 in [-1, 1]; sample_rate in Hz; kinds: N strings; notes: N lists of
    MIDI note numbers (empty for a chirp)."""
    waves: torch.Tensor
    sample_rate: int
    kinds: list
    notes: list

    def __len__(self):
        return self.waves.shape[0]


def audio_clips(n: int, kind: str = "mixed", sample_rate: int = 8000, seconds: float = 1.0,
                seed: int = 0) -> Audio:
    """Synthetic audio: notes (with harmonics and an envelope), triad chords, exponential chirps
    and four-note melodies, from C3 to C6; ``kind='mixed'`` draws each clip's kind at random."""
    n = checks.positive_int(n, "n")
    if kind not in AUDIO_KINDS + ("mixed",):
        raise ValueError(f"unknown audio kind {kind!r}: expected 'mixed' or one of {', '.join(AUDIO_KINDS)}")
    if sample_rate not in (8000, 16000):
        raise ValueError(f"sample_rate must be 8000 or 16000, got {sample_rate!r}")
    if not 0 < seconds <= 10:
        raise ValueError(f"seconds must be in (0, 10], got {seconds!r}")
    rng = np.random.RandomState(seed)
    length = int(round(seconds * sample_rate))
    waves, kinds, notes = np.zeros((n, length)), [], []
    for i in range(n):
        k = AUDIO_KINDS[rng.randint(4)] if kind == "mixed" else kind
        if k == "note":
            m = [int(rng.randint(48, 85))]
            w = _tone(midi_to_hz(m[0]), length, sample_rate)
        elif k == "chord":
            root = int(rng.randint(48, 73))
            m = [root, root + (4 if rng.rand() < 0.5 else 3), root + 7]   # major or minor triad
            w = sum(_tone(midi_to_hz(x), length, sample_rate, 3) for x in m) / 2
        elif k == "chirp":
            m, f0 = [], float(rng.uniform(150, 600))
            f1 = f0 * float(rng.uniform(2, 5)) * (1 if rng.rand() < 0.5 else 1 / 8)
            w = _chirp(f0, min(f1, sample_rate / 2.5), length, sample_rate)
        else:
            m = [int(x) for x in rng.randint(55, 80, size=4)]
            seg = length // 4
            w = np.concatenate([_tone(midi_to_hz(x), seg, sample_rate) for x in m])
            w = np.pad(w, (0, length - len(w)))
        waves[i] = 0.8 * w / max(np.abs(w).max(), 1e-6)
        kinds.append(k)
        notes.append(m)
    return Audio(torch.from_numpy(waves).float().to(runtime.device()), sample_rate, kinds, notes)


# ----------------------------------------------------------------------------- photos and files

PHOTOS = ("china", "flower")


def photo(name: str = "china", size: int | None = None) -> torch.Tensor:
    """One of scikit-learn's two bundled photos as (3, H, W) float32 in [0, 1] (427 x 640).

    ``size`` resizes (antialiased) so that the short side is ``size`` pixels.
    """
    if name not in PHOTOS:
        raise ValueError(f"unknown photo {name!r}: expected one of {', '.join(PHOTOS)}")
    from sklearn.datasets import load_sample_image
    try:
        img = load_sample_image(f"{name}.jpg")                              # (H, W, 3) uint8
    except Exception as e:  # pragma: no cover - only if scikit-learn's data files are damaged
        raise FileNotFoundError(f"scikit-learn's bundled photo {name}.jpg could not be read ({e}); "
                                "reinstall scikit-learn (pip install --force-reinstall scikit-learn)") from e
    x = torch.from_numpy(np.array(img, copy=True)).permute(2, 0, 1).float() / 255.0
    if size is not None:
        h, w = x.shape[1:]
        scale = size / min(h, w)
        x = F.interpolate(x[None], size=(round(h * scale), round(w * scale)), mode="bilinear",
                          antialias=True, align_corners=False)[0].clamp(0, 1)
    return x.to(runtime.device())


def sha256(path: Path) -> str:
    """The SHA-256 of a file, as hex (read in blocks: weights files are megabytes)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def data_file(name: str, expected_sha256: str, restore: str = "") -> Path:
    """The path of the shipped file ``course_lib/assets/<name>``, after checking that it exists and
    matches its SHA-256.

    The file is found with :mod:`importlib.resources` (a wheel install works as a clone does; from a
    zipped install it is copied to a temporary file for the life of the process). ``restore`` says
    how to get it back; by default: git in a clone, or reinstalling the package.
    """
    parts = PurePosixPath(name).parts
    if not parts or PurePosixPath(name).is_absolute() or ".." in parts:
        raise ValueError(f"data file name must be a relative path inside course_lib/assets/, got {name!r}")
    entry = ASSETS.joinpath(*parts)
    how = restore or (f"git checkout -- course_lib/assets/{name} (in a clone of the course), "
                      "or reinstall the package: pip install --force-reinstall --no-deps two-world-lines")
    if not entry.is_file():
        raise FileNotFoundError(f"data file {name} is missing from {ASSETS}; restore it with: {how}")
    path = entry if isinstance(entry, Path) else _EXTRACTED.enter_context(resources.as_file(entry))
    got = sha256(path)
    if got != expected_sha256:
        raise ValueError(f"data file {path} is corrupt (sha256 {got[:12]}..., expected "
                         f"{expected_sha256[:12]}...); restore it with: {how}")
    return path
