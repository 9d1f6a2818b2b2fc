"""Audio generated sample by sample: mu-law companding and a small WaveNet.

WaveNet (van den Oord et al. 2016, "WaveNet: A Generative Model for Raw Audio") factorises a
waveform over its samples, p(x) = prod_t p(x_t | x_1..x_{t-1}) (eq. 1), and predicts each sample
as a 256-way softmax over mu-law levels (eq. 2):

    f(x) = sign(x) * ln(1 + mu |x|) / ln(1 + mu),   mu = 255,   x in [-1, 1]

then 256 uniform bins over f in [-1, 1] (index = round((f + 1) / 2 * mu), as ibab's
tensorflow-wavenet does). The network is a stack of dilated causal convolutions (kernel 2,
dilations 1, 2, 4, ...; left padding (k - 1) * d, never any right padding) with gated units
tanh(W_f * x) * sigmoid(W_g * x) (eq. 2 of the paper's §2.3), 1x1 residual and skip outputs, and a
head ReLU -> 1x1 -> ReLU -> 1x1 -> softmax.

:meth:`WaveNet.generate` produces audio one sample at a time with a per-layer cache of past
activations (the "fast WaveNet" queues of Paine et al. 2016): each new sample costs one pass
through the layers for a single time step, not a forward pass over the whole receptive field.

Simplifications: the input is an embedding of the previous sample's mu-law index (an initial
causal filter of width 1 instead of ibab's 32); no local or global conditioning; small sizes so
that training fits in about a minute of CPU.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LN2 = math.log(2.0)


# ----------------------------------------------------------------------------- mu-law

def mu_law_encode(x: torch.Tensor, mu: int = 255) -> torch.Tensor:
    """Waveform in [-1, 1] (any shape, float) -> int64 levels in 0..mu (mu + 1 levels).

    Clips to [-1, 1], compands f = sign(x) ln(1 + mu|x|) / ln(1 + mu), then bins
    index = floor((f + 1) / 2 * mu + 0.5)."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"mu_law_encode expects a float tensor, got "
                        f"{getattr(x, 'dtype', type(x).__name__)}")
    x = x.clamp(-1.0, 1.0)
    f = torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)
    return torch.floor((f + 1) / 2 * mu + 0.5).long()


def mu_law_decode(q: torch.Tensor, mu: int = 255) -> torch.Tensor:
    """int64 levels in 0..mu -> waveform in [-1, 1] (float32): the inverse of both steps of
    :func:`mu_law_encode`: f = 2 q / mu - 1, x = sign(f) ((1 + mu)^|f| - 1) / mu."""
    if not isinstance(q, torch.Tensor) or q.is_floating_point() or q.dtype == torch.bool:
        raise TypeError(f"mu_law_decode expects an integer tensor of levels, got "
                        f"{getattr(q, 'dtype', type(q).__name__)}")
    f = 2 * q.float() / mu - 1
    return torch.sign(f) * (torch.pow(1.0 + mu, f.abs()) - 1) / mu


def quantize_bits(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Re-quantize a waveform in [-1, 1] to ``bits`` bits (2**bits uniform levels), as a float wave."""
    if not 1 <= bits <= 24:
        raise ValueError(f"bits must be in 1..24, got {bits!r}")
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
    distribution of q[:, t + 1] given q[:, :t + 1] (train with :func:`wavenet_loss`).
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
        if not isinstance(q, torch.Tensor) or q.dtype != torch.long or q.dim() != 2:
            raise ValueError(f"WaveNet expects int64 levels of shape (N, L), got "
                             f"{getattr(q, 'dtype', type(q).__name__)} {tuple(getattr(q, 'shape', ()))}")
        x = self.embed(q).transpose(1, 2)                            # (N, L) -> (N, C, L)
        skips = 0
        for block in self.blocks:
            x, s = block(x)
            skips = skips + s                                        # (N, S, L)
        return self.head(skips)                                      # (N, levels, L)

    @torch.no_grad()
    def generate(self, n_samples: int, prime: torch.Tensor, temperature=1.0,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Continue ``prime`` (N, P) int64 levels (P >= 1) by ``n_samples`` samples, one at a time.

        ``temperature``: a float, or a (N,) tensor (one per clip). Each layer keeps a ring buffer
        of its last ``dilation`` inputs, so a step costs O(layers), not a pass over the receptive
        field. Returns (N, P + n_samples) int64 levels (the prime included)."""
        if prime.dim() != 2 or prime.shape[1] < 1 or prime.dtype != torch.long:
            raise ValueError(f"prime must be int64 levels of shape (N, P) with P >= 1, got "
                             f"{prime.dtype} {tuple(prime.shape)}")
        temp = torch.as_tensor(temperature, dtype=torch.float32).reshape(-1, 1)     # (1 or N, 1)
        if (temp <= 0).any() or temp.shape[0] not in (1, prime.shape[0]):
            raise ValueError(f"temperature must be > 0, a float or one per clip, got {temperature!r}")
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
        for t in range(total - 1):
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
            logits = self.head(skips[:, :, None])[:, :, 0].float().cpu() / temp   # (N, levels)
            probs = torch.softmax(logits, dim=-1)
            out.append(torch.multinomial(probs, 1, generator=generator)[:, 0].to(dev))
        return torch.stack(out, dim=1)                               # (N, P + n_samples)


def wavenet_loss(model: WaveNet, q: torch.Tensor, skip: int = 0) -> torch.Tensor:
    """Next-sample cross-entropy in bits per sample: logits at t against q[t + 1].

    ``skip`` leaves the first targets out of the loss (those whose context is mostly padding)."""
    logits = model(q)                                                # (N, levels, L)
    target = q[:, 1 + skip:]                                         # shift by one: predict the next sample
    return F.cross_entropy(logits[:, :, skip:-1].float(), target) / LN2


def random_crops(waves: torch.Tensor, batch: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """``batch`` random windows of ``length`` samples from waves (N, L); returns (batch, length)."""
    n, total = waves.shape
    if length > total:
        raise ValueError(f"crop length {length} is longer than the clips ({total} samples)")
    rows = torch.randint(0, n, (batch,), generator=generator)
    starts = torch.randint(0, total - length + 1, (batch,), generator=generator)
    idx = starts[:, None] + torch.arange(length)[None]               # (batch, length)
    return waves[rows.to(waves.device)[:, None], idx.to(waves.device)]


def fit(model: WaveNet, levels: torch.Tensor, steps: int, batch: int = 16, crop: int = 1024,
        lr: float = 3e-3, seed: int = 0, progress: bool = True, **train_kwargs):
    """Train on random crops of mu-law levels (N, L); each crop is ``crop`` + receptive field long
    and only the last ``crop`` predictions (those with a full context) count. Returns History."""
    from course_lib.train import train

    g = torch.Generator().manual_seed(seed)
    skip = model.receptive_field - 1
    length = min(crop + skip + 1, levels.shape[1])
    return train(model, lambda step: wavenet_loss(model, random_crops(levels, batch, length, g), skip=skip),
                 steps, lr=lr, progress=progress, desc="WaveNet", **train_kwargs)


@torch.no_grad()
def evaluate_bits(model: WaveNet, levels: torch.Tensor, batch: int = 8) -> float:
    """Bits per sample of ``model`` on whole clips (N, L), skipping the first receptive field."""
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
    counts = torch.bincount(train_levels.flatten().cpu(), minlength=n_levels).float() + 1
    logp = (counts / counts.sum()).log2()
    return float(-logp[levels.flatten().cpu()].mean())
