"""Images generated pixel by pixel: masked convolutions, PixelCNN, Gated PixelCNN, bits/dim.

The model factorises an image over its pixels in raster order (van den Oord et al. 2016a,
"Pixel Recurrent Neural Networks", eq. 1)::

    p(x) = prod_i p(x_i | x_1, ..., x_{i-1})

and predicts each pixel with a softmax over its ``levels`` values (17 for the 8x8 digits, whose
values are 0..16; 256 for 8-bit images; §2.2). Causality comes from **masked convolutions**
(:func:`causal_mask`, §3.4): mask A in the first layer hides the centre pixel itself, mask B in
later layers keeps it (their centre feature already only summarises earlier pixels). The
:class:`PixelCNN` is the paper's §3.5 network, smaller.

Stacked masked convolutions have a **blind spot** (van den Oord et al. 2016b, "Conditional Image
Generation with PixelCNN Decoders", fig. 1): pixels above-right of the output are never seen.
:class:`GatedPixelCNN` removes it with a vertical stack (all rows above) and a horizontal stack
(the current row, to the left), with gated units y = tanh(W_f * x) * sigmoid(W_g * x) (eq. 2).

Simplifications against the papers (said again in notebook 01):

* one channel only (grey digits), so no R -> G -> B masking inside a pixel;
* the gated net shifts its inputs once (vertical stack input moved down a row, horizontal stack
  input moved right a pixel, as PixelCNN++ (Salimans et al. 2017) does in openai/pixel-cnn
  ``pixel_cnn_pp/nn.py`` ``down_shift`` / ``right_shift``) instead of masking the centre tap of its
  first layer, so every gated layer can keep its residual connection;
* class conditioning adds a learned per-class vector to every layer (the bias "V h" of 2016b, eq. 4).

Sampling (:func:`raster_sample`) draws each pixel with :func:`course_lib.nets.sampling.sample_logits`
(temperature, top-k), the same helper WaveNet and the token GPT use.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from course_lib import checks, runtime
from course_lib.nets.sampling import sample_logits
from course_lib.train import History, train

LN2 = math.log(2.0)


# ----------------------------------------------------------------------------- masks

def causal_mask(k: int, mask_type: str = "A") -> torch.Tensor:
    """The (k, k) float mask of a raster-order masked convolution (PixelRNN paper, §3.4, fig. 2 right).

    1 above the centre row, 1 left of the centre in the centre row, 0 below and to the right.
    Type "A" also zeroes the centre (an output must not see its own pixel), type "B" keeps it.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1 or k % 2 == 0:
        raise ValueError(f"kernel size must be a positive odd int, got {k!r}")
    checks.one_of(mask_type, "mask_type", ("A", "B"))
    mask = torch.ones(k, k)
    c = k // 2
    mask[c, c + (mask_type == "B"):] = 0.0     # centre row: the centre (type A) and everything right
    mask[c + 1:, :] = 0.0                       # every row below the centre
    return mask


class MaskedConv2d(nn.Conv2d):
    """A k x k convolution whose kernel is multiplied by :func:`causal_mask` on every call."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, mask_type: str = "B"):
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.mask_type = mask_type
        self.register_buffer("mask", causal_mask(kernel_size, mask_type)[None, None])  # (1, 1, k, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", mask_type={self.mask_type}"


def _check_images(x: torch.Tensor, name: str = "images") -> torch.Tensor:
    """(N, 1, H, W) pixel levels: int64, or float (so that gradients can reach the input)."""
    checks.tensor(x, name, ndim=4, shape="(N, 1, H, W)")
    if x.shape[1] != 1:
        raise ValueError(f"{name}: expected one channel, shape (N, 1, H, W), got {tuple(x.shape)}")
    if x.dtype != torch.long and not x.is_floating_point():
        raise TypeError(f"{name}: expected pixel levels as torch.int64 (or float, for gradients), "
                        f"got {x.dtype}")
    return x


def _check_levels(x: torch.Tensor, name: str, levels: int) -> torch.Tensor:
    """Every pixel of ``x`` a level in 0..levels-1 (int64: those integers; float: that interval)."""
    if not x.is_floating_point():
        return checks.index_range(x, name, levels)
    lo, hi = (float(x.detach().min()), float(x.detach().max())) if x.numel() else (0.0, 0.0)
    if lo < 0 or hi > levels - 1:
        raise ValueError(f"{name}: expected pixel levels in [0, {levels - 1}] (this model has "
                         f"levels={levels}), got values in [{lo:g}, {hi:g}]")
    return x


def _inputs(model: nn.Module, x: torch.Tensor, labels):
    """Checked images (N, 1, H, W) scaled from 0..levels-1 to [-1, 1] in the model's dtype, and the
    per-layer class terms."""
    _check_images(x, "x")
    checks.same_device(model, x, "x")
    _check_levels(x, "x", model.levels)
    dtype = checks.model_dtype(model) or torch.float32
    return x.to(dtype) / (model.levels - 1) * 2 - 1, model.cond(labels, x.shape[0])


def _output_head(channels: int, levels: int) -> nn.Sequential:
    """ReLU -> 1x1 conv to 4C -> ReLU -> 1x1 conv to ``levels`` logits per pixel (PixelRNN paper, table 1)."""
    return nn.Sequential(nn.ReLU(), nn.Conv2d(channels, 4 * channels, 1), nn.ReLU(),
                         nn.Conv2d(4 * channels, levels, 1))


class _Conditioner(nn.Module):
    """Optional class conditioning: one learned vector per class, added to a layer's features."""

    def __init__(self, n_classes: int | None, channels: int, n_layers: int):
        super().__init__()
        self.n_classes, self.n_layers = n_classes, n_layers
        self.embed = nn.Embedding(n_classes, channels * n_layers) if n_classes else None
        self.channels = channels

    def forward(self, labels, n: int) -> list:
        if self.embed is None:
            if labels is not None:
                raise ValueError("this model is unconditional: build it with n_classes=... to pass labels")
            return [0.0] * self.n_layers
        if labels is None:
            raise ValueError(f"this model is class-conditional ({self.n_classes} classes): pass labels")
        checks.tensor(labels, "labels", floating=False, shape=f"({n},)")
        if labels.shape != (n,):
            raise ValueError(f"labels: expected shape ({n},), one per image, got {tuple(labels.shape)}")
        checks.same_device(self, labels, "labels")
        checks.index_range(labels, "labels", self.n_classes)
        e = self.embed(labels)                                      # (N, C * layers)
        return list(e.view(n, -1, self.channels, 1, 1).unbind(1))  # layers x (N, C, 1, 1)


# ----------------------------------------------------------------------------- PixelCNN

class PixelCNN(nn.Module):
    """PixelCNN (van den Oord et al. 2016a): a k x k mask-A conv, then residual 3x3 mask-B convs,
    then two 1x1 convs to a ``levels``-way softmax per pixel. Optional class conditioning.

    forward(x (N, 1, H, W) int64 in 0..levels-1, labels (N,) or None) -> logits (N, levels, H, W).
    (A float x in the same range is accepted too, so that gradients can reach the input.) The input
    is scaled in the model's own dtype, so ``model.double()`` runs too. A level outside 0..levels-1,
    or x on another device than the model, is a ValueError naming ``x``.
    """

    def __init__(self, levels: int = 17, channels: int = 64, n_layers: int = 7, first_kernel: int = 7,
                 kernel: int = 3, n_classes: int | None = None, dropout: float = 0.0):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        self.levels = levels
        self.first = MaskedConv2d(1, channels, first_kernel, "A")
        self.layers = nn.ModuleList(MaskedConv2d(channels, channels, kernel, "B") for _ in range(n_layers - 1))
        self.cond = _Conditioner(n_classes, channels, n_layers)
        self.drop = nn.Dropout(dropout)
        self.head = _output_head(channels, levels)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h, cond = _inputs(self, x, labels)                          # (N, 1, H, W) in [-1, 1]
        h = self.first(h) + cond[0]                                 # (N, C, H, W)
        for i, layer in enumerate(self.layers):
            h = h + self.drop(layer(F.relu(h)) + cond[i + 1])       # residual, mask B
        return self.head(h)                                         # (N, levels, H, W)


# ----------------------------------------------------------------------------- Gated PixelCNN

def down_shift(x: torch.Tensor) -> torch.Tensor:
    """Move every row down by one (row 0 becomes zeros): position i then holds row i - 1."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1, :]


def right_shift(x: torch.Tensor) -> torch.Tensor:
    """Move every column right by one (column 0 becomes zeros)."""
    return F.pad(x, (1, 0, 0, 0))[:, :, :, :-1]


class GatedLayer(nn.Module):
    """One layer of the two-stack Gated PixelCNN (van den Oord et al. 2016b, fig. 2).

    vertical: a (k//2+1) x k conv over the current and k//2 rows above (inputs are already shifted
    down, so it only ever sees earlier rows); horizontal: a 1 x (k//2+1) conv over the current
    and k//2 columns to the left (inputs shifted right); the vertical pre-activation feeds the
    horizontal one through a 1x1 "link"; gates tanh * sigmoid; a residual only on the horizontal.
    """

    def __init__(self, channels: int, k: int = 3):
        super().__init__()
        self.k = k
        self.v_conv = nn.Conv2d(channels, 2 * channels, (k // 2 + 1, k))
        self.h_conv = nn.Conv2d(channels, 2 * channels, (1, k // 2 + 1))
        self.link = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.h_out = nn.Conv2d(channels, channels, 1)

    @staticmethod
    def _gate(a: torch.Tensor, cond) -> torch.Tensor:
        if isinstance(cond, torch.Tensor):
            a = a + cond                                            # (N, 2C, 1, 1): V_f h and V_g h
        f, g = a.chunk(2, dim=1)                                    # 2 x (N, C, H, W)
        return torch.tanh(f) * torch.sigmoid(g)

    def forward(self, v: torch.Tensor, h: torch.Tensor, cond=0.0):
        p = self.k // 2
        v_pre = self.v_conv(F.pad(v, (p, p, p, 0)))                 # pad left/right p, top p: (N, 2C, H, W)
        h_pre = self.h_conv(F.pad(h, (p, 0, 0, 0))) + self.link(v_pre)   # pad left p
        return self._gate(v_pre, cond), h + self.h_out(self._gate(h_pre, cond))


class GatedPixelCNN(nn.Module):
    """Gated PixelCNN without a blind spot; same interface as :class:`PixelCNN`.

    The vertical stack starts from the image shifted down one row, the horizontal one from the
    image shifted right one pixel; after that no layer needs a mask (see the module docstring).
    """

    def __init__(self, levels: int = 17, channels: int = 64, n_layers: int = 7, kernel: int = 3,
                 n_classes: int | None = None):
        super().__init__()
        self.levels = levels
        self.v_in = nn.Conv2d(1, channels, 1)
        self.h_in = nn.Conv2d(1, channels, 1)
        self.layers = nn.ModuleList(GatedLayer(channels, kernel) for _ in range(n_layers))
        self.cond = _Conditioner(n_classes, 2 * channels, n_layers)
        self.head = _output_head(channels, levels)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        z, cond = _inputs(self, x, labels)                          # (N, 1, H, W) in [-1, 1]
        v, h = self.v_in(down_shift(z)), self.h_in(right_shift(z))  # (N, C, H, W) each
        for i, layer in enumerate(self.layers):
            v, h = layer(v, h, cond[i])
        return self.head(h)                                         # (N, levels, H, W)


# ----------------------------------------------------------------------------- likelihoods

def bits_per_dim(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood in bits per dimension (per sub-pixel or sample).

    logits: (N, K, *dims) unnormalised scores over K values; targets: (N, *dims) int64 in 0..K-1.
    bits/dim = sum of -log p(target) in nats / (number of target values * ln 2). Returns a scalar.
    Float targets are a TypeError, targets outside 0..K-1 a ValueError, both naming ``targets``.
    """
    checks.tensor(logits, "logits", floating=True, shape="(N, K, *dims)")
    checks.tensor(targets, "targets", floating=False, shape="(N, *dims) int64")
    if logits.dim() < 2 or targets.shape != logits.shape[:1] + logits.shape[2:]:
        raise ValueError(f"logits (N, K, *dims) and targets (N, *dims) do not match: "
                         f"{tuple(logits.shape)} vs {tuple(targets.shape)}")
    checks.index_range(targets, "targets", logits.shape[1])
    nll = F.cross_entropy(logits.float(), targets.long(), reduction="sum")  # nats, summed
    return nll / (targets.numel() * LN2)


@torch.no_grad()
def evaluate_bpd(model: nn.Module, images: torch.Tensor, labels: torch.Tensor | None = None,
                 batch: int = 512) -> float:
    """Bits/dim of ``model`` on a whole split (images (N, 1, H, W) int64), evaluated in batches."""
    _check_images(images, "images")
    checks.tensor(images, "images", floating=False, shape="(N, 1, H, W) int64 levels")
    checks.rows(images, "images")
    checks.positive_int(batch, "batch")
    checks.same_device(model, images, "images")
    if labels is not None:
        checks.same_rows(labels, "labels", images.shape[0], "images")
        checks.same_device(model, labels, "labels")
    model.eval()
    total, count = 0.0, 0
    for i in range(0, images.shape[0], batch):
        x = images[i:i + batch]
        lab = labels[i:i + batch] if labels is not None else None
        total += bits_per_dim(model(x, lab) if lab is not None else model(x), x[:, 0]).item() * x.numel()
        count += x.numel()
    return total / count


def histogram_probs(train_images: torch.Tensor, levels: int = 17, alpha: float = 1.0) -> torch.Tensor:
    """The independent per-pixel baseline: p(x_ij = v) from counts with add-``alpha`` smoothing.

    train_images: (N, 1, H, W) int64. Returns (levels, H, W) probabilities (sum 1 over levels)."""
    _check_images(train_images, "train_images")
    checks.index_range(train_images, "train_images", levels)
    onehot = F.one_hot(train_images[:, 0], levels).float()          # (N, H, W, levels)
    counts = onehot.sum(0).permute(2, 0, 1) + alpha                 # (levels, H, W)
    return counts / counts.sum(0, keepdim=True)


def histogram_bpd(probs: torch.Tensor, images: torch.Tensor) -> float:
    """Bits/dim of the per-pixel histogram ``probs`` (levels, H, W) on images (N, 1, H, W)."""
    logits = probs.log()[None].expand(images.shape[0], *probs.shape)  # (N, levels, H, W)
    return bits_per_dim(logits, images[:, 0]).item()


def uniform_bpd(levels: int) -> float:
    """Bits/dim of the uniform distribution over ``levels`` values: log2(levels)."""
    return math.log2(levels)


# ----------------------------------------------------------------------------- sampling

@torch.no_grad()
def raster_sample(logits_fn: Callable[[torch.Tensor], torch.Tensor], n: int, height: int, width: int,
                  temperature: float = 1.0, generator: torch.Generator | None = None,
                  device=None, *, top_k: int | None = None) -> torch.Tensor:
    """Sample ``n`` images pixel by pixel in raster order (row by row, left to right).

    logits_fn(x) maps the canvas x (n, 1, H, W) int64 to logits (n, K, H, W). For every pixel
    (i, j): one call of logits_fn on the canvas so far, one draw from logits[:, :, i, j] with
    :func:`~course_lib.nets.sampling.sample_logits` (softmax of logits / temperature over the
    ``top_k`` most likely levels, ``torch.multinomial`` with ``generator`` on its device), and the
    value is written into the canvas. H * W calls in all. Returns (n, 1, H, W) int64.
    """
    n = checks.positive_int(n, "n")
    height, width = checks.positive_int(height, "height"), checks.positive_int(width, "width")
    if device is not None:
        device = runtime.validate_device(device)
    x = torch.zeros(n, 1, height, width, dtype=torch.long, device=device)
    for i in range(height):
        for j in range(width):
            logits = logits_fn(x)[:, :, i, j]                                    # (n, K)
            x[:, 0, i, j] = sample_logits(logits, temperature, top_k, generator).to(x.device)
    return x


def sample(model: nn.Module, n: int, height: int = 8, width: int = 8, temperature: float = 1.0,
           labels: torch.Tensor | None = None, generator: torch.Generator | None = None, *,
           top_k: int | None = None) -> torch.Tensor:
    """Draw ``n`` images from a (class-conditional) PixelCNN with :func:`raster_sample`."""
    if labels is not None:
        checks.same_device(model, labels, "labels")
    model.eval()
    fn = (lambda x: model(x, labels)) if labels is not None else model
    return raster_sample(fn, n, height, width, temperature, generator, device=checks.model_device(model),
                         top_k=top_k)


# ----------------------------------------------------------------------------- receptive field

def dependence(model_fn: Callable[[torch.Tensor], torch.Tensor], height: int, width: int, i: int, j: int,
               levels: int = 17, seed: int = 0) -> torch.Tensor:
    """Which input pixels the output at (i, j) depends on, found by gradients.

    Feeds a random float image (values in 0..levels-1; the course's PixelCNNs accept float
    images for exactly this) through ``model_fn``, backpropagates the sum of the logits at (i, j)
    and returns the (H, W) bool map of nonzero input gradients.
    """
    height, width = checks.positive_int(height, "height"), checks.positive_int(width, "width")
    if not (isinstance(i, int) and 0 <= i < height):
        raise ValueError(f"i: expected a row in [0, {height - 1}], got {i!r}")
    if not (isinstance(j, int) and 0 <= j < width):
        raise ValueError(f"j: expected a column in [0, {width - 1}], got {j!r}")
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 1, height, width, generator=g).mul(levels - 1).requires_grad_(True)
    out = model_fn(x)                                               # (1, K, H, W)
    out[0, :, i, j].sum().backward()
    return x.grad[0, 0].abs() > 0


# ----------------------------------------------------------------------------- training

def fit(model: nn.Module, images: torch.Tensor, steps: int, batch: int = 64, lr: float = 3e-3,
        labels: torch.Tensor | None = None, seed: int = 0, progress: bool = True,
        bpd: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = bits_per_dim, **train_kwargs) -> History:
    """Train a (conditional) PixelCNN on random minibatches with the bits/dim loss; returns History.

    Each step draws ``batch`` images (and their labels) with a generator seeded by ``seed`` and
    minimises ``bpd(model(x), x[:, 0])``: all H * W pixels predicted at once from the true earlier
    ones (teacher forcing). ``bpd`` is :func:`bits_per_dim` unless given (notebook 01 passes the
    learner's own). ``train_kwargs`` go to :func:`course_lib.train.train` (e.g. ``schedule``).
    """
    _check_images(images, "images")
    checks.same_device(model, images, "images")
    if labels is not None and labels.shape != images.shape[:1]:
        raise ValueError(f"labels: expected shape ({images.shape[0]},), one per image, "
                         f"got {tuple(labels.shape)}")
    g = torch.Generator().manual_seed(seed)

    def loss_fn(step):
        idx = torch.randint(0, images.shape[0], (batch,), generator=g).to(images.device)
        x = images[idx]                                             # (B, 1, H, W)
        logits = model(x, labels[idx]) if labels is not None else model(x)   # (B, levels, H, W)
        return bpd(logits, x[:, 0])
    return train(model, loss_fn, steps, lr=lr, progress=progress, desc="PixelCNN", **train_kwargs)
