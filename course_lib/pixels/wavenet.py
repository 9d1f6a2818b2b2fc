"""Audio generated sample by sample: mu-law companding and a small WaveNet.

WaveNet (van den Oord et al. 2016, "WaveNet: A Generative Model for Raw Audio", §2) factorises a
waveform over its samples, p(x) = prod_t p(x_t | x_1..x_{t-1}) (eq. 1), and predicts each sample
as a 256-way softmax over mu-law levels (§2.2, eq. 2; the mu-law of ITU-T G.711):

    f(x) = sign(x) * ln(1 + mu |x|) / ln(1 + mu),   mu = 255,   x in [-1, 1]

then 256 uniform bins over f in [-1, 1] (index = floor((f + 1) / 2 * mu + 0.5), with |x| clipped
to 1 first, as ibab/tensorflow-wavenet ``wavenet/ops.py`` ``mu_law_encode`` does). The network is
a stack of dilated causal convolutions (§2.1: kernel 2, dilations 1, 2, 4, ...; left padding
(k - 1) * d, never any right padding) with gated units tanh(W_f * x) * sigmoid(W_g * x) (§2.3,
eq. 3), 1x1 residual and skip outputs (§2.4, fig. 4), and a head ReLU -> 1x1 -> ReLU -> 1x1 ->
softmax.

:meth:`WaveNet.generate` produces audio one sample at a time with a per-layer cache of past
activations (the "fast WaveNet" queues of Paine et al. 2016, "Fast Wavenet Generation
Algorithm"): each new sample costs one pass through the layers for a single time step, not a
forward pass over the whole receptive field. Each sample is drawn with
:func:`course_lib.nets.sampling.sample_logits` (temperature, top-k), as PixelCNN's pixels are.

Simplifications: the input is an embedding of the previous sample's mu-law index (an initial
causal filter of width 1 instead of ibab's 32); no local or global conditioning; small sizes so
that training fits in about a minute of CPU.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from course_lib import checks
from course_lib.nets.sampling import sample_logits
from course_lib.pixels.pixel_ar import bits_per_dim
from course_lib.train import History, progress_bar, train


# ----------------------------------------------------------------------------- mu-law

def mu_law_encode(x: torch.Tensor, mu: int = 255) -> torch.Tensor:
    """Waveform in [-1, 1] (any shape, float) -> int64 levels in 0..mu (mu + 1 levels).

    Clips to [-1, 1], compands f = sign(x) ln(1 + mu|x|) / ln(1 + mu), then bins
    index = floor((f + 1) / 2 * mu + 0.5)."""
    checks.tensor(x, "x", floating=True)
    mu = checks.positive_int(mu, "mu")
    x = x.clamp(-1.0, 1.0)
    f = torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)
    return torch.floor((f + 1) / 2 * mu + 0.5).long()


def mu_law_decode(q: torch.Tensor, mu: int = 255) -> torch.Tensor:
    """int64 levels in 0..mu -> waveform in [-1, 1] (float32): the inverse of both steps of
    :func:`mu_law_encode`: f = 2 q / mu - 1, x = sign(f) ((1 + mu)^|f| - 1) / mu."""
    checks.tensor(q, "q", floating=False)
    mu = checks.positive_int(mu, "mu")
    f = 2 * q.float() / mu - 1
    return torch.sign(f) * (torch.pow(1.0 + mu, f.abs()) - 1) / mu


def quantize_bits(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Re-quantize a waveform in [-1, 1] to ``bits`` bits (2**bits uniform levels), as a float wave."""
    checks.tensor(x, "x", floating=True)
    if checks.positive_int(bits, "bits") > 24:
        raise ValueError(f"bits: expected an int in 1..24, got {bits}")
    levels = 2 ** bits
    q = torch.round((x.clamp(-1, 1) + 1) / 2 * (levels - 1))
    return q / (levels - 1) * 2 - 1


# ----------------------------------------------------------------------------- the network

class CausalConv1d(nn.Conv1d):
    """A dilated causal convolution: the output at t sees inputs t - (k-1) d .. t only.
    Left-pads (k - 1) * dilation zeros; never pads the right."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 2, dilation: int = 1):
        super().__init__(in_channels, out_channels, kernel_size, dilation=dilation)
        self.left = (kernel_size - 1) * dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (self.left, 0)))           # (N, C, L) -> (N, C_out, L)


class ResidualBlock(nn.Module):
    """Gated dilated causal conv (kernel 2) with a 1x1 residual and a 1x1 skip output."""

    def __init__(self, channels: int, skip_channels: int, dilation: int):
        super().__init__()
        self.dilation = dilation
        self.conv = CausalConv1d(channels, 2 * channels, 2, dilation)
        self.res = nn.Conv1d(channels, channels, 1)
        self.skip = nn.Conv1d(channels, skip_channels, 1)

    def forward(self, x: torch.Tensor):
        f, g = self.conv(x).chunk(2, dim=1)                         # 2 x (N, C, L)
        z = torch.tanh(f) * torch.sigmoid(g)
        return x + self.res(z), self.skip(z)


class WaveNet(nn.Module):
    """A small WaveNet over mu-law levels.

    forward(q (N, L) int64 in 0..levels-1) -> logits (N, levels, L), where logits[:, :, t] is the
    distribution of q[:, t + 1] given q[:, :t + 1] (train with :func:`wavenet_loss`). A level
    outside 0..levels-1, or q on another device than the model, is a ValueError naming ``q``.
    """

    def __init__(self, levels: int = 256, channels: int = 32, skip_channels: int = 64,
                 dilations=(1, 2, 4, 8, 16, 32, 64, 128)):
        super().__init__()
        self.levels = levels
        self.dilations = tuple(int(d) for d in dilations)
        self.embed = nn.Embedding(levels, channels)
        self.blocks = nn.ModuleList(ResidualBlock(channels, skip_channels, d) for d in self.dilations)
        self.head = nn.Sequential(nn.ReLU(), nn.Conv1d(skip_channels, skip_channels, 1), nn.ReLU(),
                                  nn.Conv1d(skip_channels, levels, 1))

    @property
    def receptive_field(self) -> int:
        """How many samples one prediction sees: (k - 1) * sum(dilations) + 1 with k = 2."""
        return sum(self.dilations) + 1

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        checks.tensor(q, "q", ndim=2, dtype=torch.long, shape="(N, L)")
        checks.same_device(self, q, "q")
        checks.index_range(q, "q", self.levels)
        x = self.embed(q).transpose(1, 2)                            # (N, L) -> (N, C, L)
        skips = 0
        for block in self.blocks:
            x, s = block(x)
            skips = skips + s                                        # (N, S, L)
        return self.head(skips)                                      # (N, levels, L)

    @torch.no_grad()
    def generate(self, n_samples: int, prime: torch.Tensor, temperature: float | torch.Tensor = 1.0,
                 generator: torch.Generator | None = None, *, top_k: int | None = None,
                 progress: bool = False) -> torch.Tensor:
        """Continue ``prime`` (N, P) int64 levels (P >= 1) by ``n_samples`` samples, one at a time.

        ``temperature``: a float, or a (N,) tensor (one per clip); ``top_k``: draw among the k most
        likely levels only (both as in :func:`~course_lib.nets.sampling.sample_logits`). Each layer
        keeps a ring buffer of its last ``dilation`` inputs, so a step costs O(layers), not a pass
        over the receptive field. ``progress`` shows a bar over the steps (:func:`course_lib.train.progress_bar`).
        Returns (N, P + n_samples) int64 levels (the prime included)."""
        checks.tensor(prime, "prime", ndim=2, dtype=torch.long, shape="(N, P)")
        if prime.shape[1] < 1:
            raise ValueError(f"prime: expected at least one sample, shape (N, P) with P >= 1, "
                             f"got {tuple(prime.shape)}")
        checks.same_device(self, prime, "prime")
        checks.index_range(prime, "prime", self.levels)
        n_samples = checks.positive_int(n_samples, "n_samples", minimum=0)
        per_clip = isinstance(temperature, torch.Tensor) and temperature.dim() == 1
        if per_clip and len(temperature) not in (1, len(prime)):
            raise ValueError(f"temperature: expected one per clip, shape ({prime.shape[0]},), "
                             f"got {tuple(temperature.shape)}")
        self.eval()
        n, dev = prime.shape[0], prime.device
        c = self.embed.embedding_dim
        # fused weights per block: [W_{t-d} W_t] for the dilated conv, [W_res; W_skip] for the outputs
        fused = [(torch.cat([b.conv.weight[:, :, 0], b.conv.weight[:, :, 1]], 1).t().contiguous(), b.conv.bias,
                  torch.cat([b.res.weight[:, :, 0], b.skip.weight[:, :, 0]], 0).t().contiguous(),
                  torch.cat([b.res.bias, b.skip.bias]), b.dilation) for b in self.blocks]
        queues = [[torch.zeros(n, c, device=dev)] * d for d in self.dilations]  # inputs at t - d .. t - 1
        out = [prime[:, i] for i in range(prime.shape[1])]
        total = prime.shape[1] + n_samples
        bar = progress_bar(total - 1, "WaveNet generation") if progress else None
        for t in range(total - 1):
            if bar is not None:
                bar.update()
            x = self.embed(out[t])                                   # (N, C)
            skips = 0
            for (w_in, b_in, w_out, b_out, d), queue in zip(fused, queues):
                slot = t % d
                past, queue[slot] = queue[slot], x                   # the input at t - d; store the one at t
                f, g = torch.addmm(b_in, torch.cat([past, x], 1), w_in).chunk(2, dim=1)
                z = torch.tanh(f) * torch.sigmoid(g)                 # (N, C)
                res, s = torch.addmm(b_out, z, w_out).split([c, w_out.shape[1] - c], dim=1)
                x = x + res
                skips = skips + s                                    # (N, S)
            if t + 1 < prime.shape[1]:
                continue                                             # teacher-forced through the prime
            logits = self.head(skips[:, :, None])[:, :, 0]          # (N, 1) -> (N, levels)
            out.append(sample_logits(logits, temperature, top_k, generator))      # (N,)
        if bar is not None:
            bar.close()
        return torch.stack(out, dim=1)                               # (N, P + n_samples)


def wavenet_loss(model: WaveNet, q: torch.Tensor, skip: int = 0,
                 bpd: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = bits_per_dim) -> torch.Tensor:
    """Next-sample cross-entropy in bits per sample: logits at t against q[t + 1] (eq. 1).

    ``skip`` leaves the first targets out of the loss (those whose context is mostly padding);
    ``bpd`` is :func:`~course_lib.pixels.pixel_ar.bits_per_dim` unless given."""
    logits = model(q)                                                # (N, levels, L)
    return bpd(logits[:, :, skip:-1], q[:, 1 + skip:])               # shift by one: predict the next sample


def random_windows(waves: torch.Tensor, batch: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """``batch`` windows of ``length`` consecutive samples, each from a random clip of waves (N, L)
    at a random start (both drawn with ``generator``, clips first). Returns (batch, length)."""
    checks.tensor(waves, "waves", ndim=2, shape="(N, L)")
    n, total = waves.shape
    checks.positive_int(batch, "batch"), checks.positive_int(length, "length")
    checks.generator(generator)
    if length > total:
        raise ValueError(f"window length {length} is longer than the clips ({total} samples)")
    rows = torch.randint(0, n, (batch,), generator=generator)
    starts = torch.randint(0, total - length + 1, (batch,), generator=generator)
    idx = starts[:, None] + torch.arange(length)[None]               # (batch, length)
    return waves[rows.to(waves.device)[:, None], idx.to(waves.device)]


def fit(model: WaveNet, levels: torch.Tensor, steps: int, batch: int = 16, crop: int = 1024,
        lr: float = 3e-3, seed: int = 0, progress: bool = True,
        bpd: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = bits_per_dim, **train_kwargs) -> History:
    """Train on random windows of mu-law levels (N, L); returns History.

    Each step draws ``batch`` windows of ``crop`` + receptive field samples (:func:`random_windows`,
    a generator seeded by ``seed``); only the last ``crop`` predictions, those with a full context,
    count in the loss :func:`wavenet_loss`. ``train_kwargs`` go to :func:`course_lib.train.train`."""
    checks.tensor(levels, "levels", ndim=2, dtype=torch.long, shape="(N, L)")
    checks.same_device(model, levels, "levels")
    g = torch.Generator().manual_seed(seed)
    skip = model.receptive_field - 1
    length = min(crop + skip + 1, levels.shape[1])

    def loss_fn(step):
        window = random_windows(levels, batch, length, g)           # (B, L) levels
        return wavenet_loss(model, window, skip=skip, bpd=bpd)
    return train(model, loss_fn, steps, lr=lr, progress=progress, desc="WaveNet", **train_kwargs)


@torch.no_grad()
def evaluate_bits(model: WaveNet, levels: torch.Tensor, batch: int = 8) -> float:
    """Bits per sample of ``model`` on whole clips (N, L), skipping the first receptive field."""
    checks.tensor(levels, "levels", ndim=2, dtype=torch.long, shape="(N, L)")
    checks.same_device(model, levels, "levels")
    model.eval()
    skip = min(model.receptive_field - 1, levels.shape[1] - 2)
    total, count = 0.0, 0
    for i in range(0, levels.shape[0], batch):
        q = levels[i:i + batch]
        n = q[:, 1 + skip:].numel()
        total += wavenet_loss(model, q, skip=skip).item() * n
        count += n
    return total / count


def marginal_bits(levels: torch.Tensor, train_levels: torch.Tensor, n_levels: int = 256) -> float:
    """Bits per sample of the no-context baseline: the histogram of ``train_levels`` (add-one),
    evaluated on ``levels``."""
    n_levels = checks.positive_int(n_levels, "n_levels")
    checks.index_range(train_levels, "train_levels", n_levels)
    checks.index_range(levels, "levels", n_levels)
    if train_levels.numel() == 0 or levels.numel() == 0:
        raise ValueError(f"{'train_levels' if train_levels.numel() == 0 else 'levels'}: expected at least one level, got none")
    counts = torch.bincount(train_levels.flatten().cpu(), minlength=n_levels).float() + 1
    logp = (counts / counts.sum()).log2()
    return float(-logp[levels.flatten().cpu()].mean())
