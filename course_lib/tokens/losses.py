"""Losses that define what "similar" means for a tokenizer's reconstruction.

* :func:`mse`: regression, pixel by pixel or sample by sample. A waveform shifted by one sample has
  a huge MSE and sounds the same: the reason for the other losses.
* :class:`PerceptualLoss`: distance between features of a small fixed network (the perceptual
  loss of Johnson et al. 2016, "Perceptual Losses for Real-Time Style Transfer and
  Super-Resolution"; LPIPS, Zhang et al. 2018, eq. 1, normalises the features per channel and uses
  VGG16). At course scale the network is :class:`FeatureNet`, a small CNN trained for a few
  seconds to classify the shapes' shape and colour (:func:`shapes_feature_net`).
  Simplification: unit-normalised features of the two deeper stages, 3x3 average-pooled, squared
  distance averaged per layer, no learned per-channel weights.
* :func:`multi_resolution_stft_loss`: for audio, spectral convergence + log-magnitude L1 at several
  FFT sizes (Yamamoto et al. 2020, "Parallel WaveGAN", eq. 2-4), insensitive to small shifts.
* :class:`PatchDiscriminator`, :func:`hinge_d_loss`, :func:`adaptive_weight`: VQGAN's adversarial
  loss (Esser et al. 2021, "Taming Transformers", eq. 7): PatchGAN (Isola et al. 2017), the hinge
  loss for D (Lim & Ye 2017, "Geometric GAN"; taming/modules/losses/vqperceptual.py), L_G =
  -mean D(x_hat) for G, and lambda = |grad_last L_rec| / (|grad_last L_G| + 1e-4), clamped to
  [0, 1e4] and detached. The discriminator's own step is explicit in the training loop
  (:class:`course_lib.train.Adversary`, used by :func:`course_lib.tokens.tokenizers.fit`).
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from course_lib import data, runtime
from course_lib.train import train


def mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if x.shape != y.shape:
        raise ValueError(f"mse needs equal shapes, got {tuple(x.shape)} and {tuple(y.shape)}")
    return (x - y).pow(2).mean()


# ----------------------------------------------------------------------------- perceptual

class FeatureNet(nn.Module):
    """A small CNN for 3x16x16 (or 32x32) images: 3 conv stages, then linear heads for the shape
    (4 classes) and colour (len(COLORS)) labels. ``features(x)`` returns the 3 stages' maps."""

    def __init__(self, in_ch: int = 3, width: int = 32, n_shapes: int = 4, n_colors: int = 6):
        super().__init__()
        self.stages = nn.ModuleList([
            nn.Sequential(nn.Conv2d(in_ch, width, 3, padding=1), nn.ReLU()),
            nn.Sequential(nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU()),
            nn.Sequential(nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU()),
        ])
        self.head_shape = nn.Linear(2 * width, n_shapes)
        self.head_color = nn.Linear(2 * width, n_colors)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for s in self.stages:
            x = s(x)
            feats.append(x)
        return feats

    def forward(self, x):
        h = self.features(x)[-1].mean((2, 3))                                    # (B, 2w)
        return self.head_shape(h), self.head_color(h)


@functools.lru_cache(maxsize=4)
def _cached_feature_net(steps: int, size: int, device: str) -> FeatureNet:
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    n_colors = len(data.COLORS)
    net = FeatureNet(n_colors=n_colors).to(device)
    pool = data.shapes(2048, size=size, seed=123)

    def loss_fn(step):
        idx = torch.randint(len(pool), (128,), generator=g).to(pool.images.device)
        ls, lc = net(pool.images[idx])
        return F.cross_entropy(ls, pool.shape[idx]) + F.cross_entropy(lc, pool.color[idx])
    train(net, loss_fn, steps, lr=2e-3, progress=False)
    return net.eval().requires_grad_(False)


def shapes_feature_net(steps: int = 300, size: int = 16) -> FeatureNet:
    """A :class:`FeatureNet` trained (once per process, cached) to classify shapes and colours."""
    return _cached_feature_net(int(steps), int(size), str(runtime.device()))


def feature_net_accuracy(net: FeatureNet, size: int = 16, n: int = 512) -> tuple[float, float]:
    """(shape accuracy, colour accuracy) of ``net`` on fresh shapes."""
    test = data.shapes(n, size=size, seed=999)
    with torch.no_grad():
        ls, lc = net(test.images)
    return ((ls.argmax(1) == test.shape).float().mean().item(),
            (lc.argmax(1) == test.color).float().mean().item())


class PerceptualLoss(nn.Module):
    """sum over the deeper stages of mean |phi(x) / |phi(x)| - phi(y) / |phi(y)||^2.

    Features are channel-normalised as in LPIPS and smoothed by a 3x3 average pool before the
    comparison (a course-scale stand-in for the large receptive fields of VGG's deep layers: a
    one-pixel shift should cost little). ``stages``: which of the 3 stages to use (default the
    two strided ones).
    """

    def __init__(self, net: FeatureNet, stages=(1, 2), pool: bool = True):
        super().__init__()
        self.net = net.eval().requires_grad_(False)
        self.stages, self.pool = tuple(stages), pool

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape:
            raise ValueError(f"perceptual loss needs equal shapes, got {tuple(x.shape)} and {tuple(y.shape)}")
        total = x.new_zeros(())
        for i, (fx, fy) in enumerate(zip(self.net.features(x), self.net.features(y))):
            if i not in self.stages:
                continue
            if self.pool:
                fx, fy = F.avg_pool2d(fx, 3, 1, 1), F.avg_pool2d(fy, 3, 1, 1)
            fx = fx / (fx.norm(dim=1, keepdim=True) + 1e-6)
            fy = fy / (fy.norm(dim=1, keepdim=True) + 1e-6)
            total = total + (fx - fy).pow(2).sum(1).mean()
        return total


# ----------------------------------------------------------------------------- audio

def stft_magnitude(x: torch.Tensor, n_fft: int, floor: float = 1e-7) -> torch.Tensor:
    """|STFT| of (B, L) waves with a Hann window and hop n_fft/4: (B, n_fft/2+1, frames).

    sqrt(max(|S|^2, floor)) as Parallel WaveGAN (floor on the POWER, 1e-7: magnitudes >= 3e-4).
    Why: the log-magnitude term's gradient is 1/|S|; with a floor of 1e-7 on the magnitude itself,
    silent bins (log 1e-7 = -16) dominate the loss and the clipped gradient, and a codec trained on
    it learns near-silence."""
    window = torch.hann_window(n_fft, device=x.device, dtype=x.dtype)
    spec = torch.stft(x, n_fft, hop_length=n_fft // 4, window=window, return_complex=True)
    return (spec.real.pow(2) + spec.imag.pow(2)).clamp_min(floor).sqrt()


def multi_resolution_stft_loss(x: torch.Tensor, y: torch.Tensor, ffts=(64, 128, 256, 512)) -> torch.Tensor:
    """Mean over FFT sizes of spectral convergence |  |Y|-|X| |_F / | |X| |_F + mean |log|X| - log|Y||.

    x: reference waves (B, L), y: reconstructions (B, L)."""
    if x.shape != y.shape or x.dim() != 2:
        raise ValueError(f"expected two (B, L) waves of equal shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.shape[1] <= max(ffts) // 2:                          # the STFT pads n_fft / 2 on each side
        raise ValueError(f"x: waves of {x.shape[1]} samples are too short for an FFT of {max(ffts)} (more than "
                         f"{max(ffts) // 2} needed): pass shorter ffts=")
    total = x.new_zeros(())
    for n in ffts:
        mx, my = stft_magnitude(x, n), stft_magnitude(y, n)
        sc = (mx - my).norm() / mx.norm()
        mag = (mx.log() - my.log()).abs().mean()
        total = total + sc + mag
    return total / len(ffts)


# ----------------------------------------------------------------------------- adversarial

class PatchDiscriminator(nn.Module):
    """PatchGAN (Isola et al. 2017; taming's NLayerDiscriminator at course scale): stride-2 convs
    of kernel 4 with LeakyReLU 0.2, one logit per patch. BatchNorm is left out (tiny batches)."""

    def __init__(self, in_ch: int = 3, width: int = 32, n_layers: int = 2):
        super().__init__()
        layers, c = [], in_ch
        for i in range(n_layers):
            layers += [nn.Conv2d(c, width * 2 ** i, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            c = width * 2 ** i
        layers.append(nn.Conv2d(c, 1, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)                                                        # (B, 1, h, w)


def hinge_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """0.5 (mean relu(1 - D(x)) + mean relu(1 + D(x_hat)))."""
    return 0.5 * (F.relu(1 - logits_real).mean() + F.relu(1 + logits_fake).mean())


def generator_adv_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """L_G = -mean D(x_hat)."""
    return -logits_fake.mean()


def adaptive_weight(rec_loss: torch.Tensor, g_loss: torch.Tensor, last_layer: torch.Tensor,
                    max_weight: float = 1e4) -> torch.Tensor:
    """lambda = |d rec / d last| / (|d g / d last| + 1e-4), clamped, detached (VQGAN eq. 7)."""
    g_rec = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    g_adv = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
    lam = g_rec.norm() / (g_adv.norm() + 1e-4)
    return lam.clamp(0.0, max_weight).detach()
