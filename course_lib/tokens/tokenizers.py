"""Tokenizers: small conv autoencoders that turn images, audio and short clips into tokens.

Encoder -> (optional) quantizer -> decoder, as in VQ-VAE (van den Oord et al. 2017) and its audio
and video cousins (SoundStream, Zeghidour et al. 2021; VideoGPT, Yan et al. 2021), at course scale:

* :class:`ImageTokenizer`: (B, C, H, W) -> a (H / p, W / p) grid of tokens, p = 2^n_down the patch
  size; one token per "cell" of the image, not per pixel "atom".
* :class:`AudioTokenizer`: (B, L) waves -> L / prod(strides) frames of tokens.
* :class:`VideoTokenizer`: (B, T, C, H, W) clips -> tube tokens over (t, p, p) frames x pixels.

Each takes any quantizer of :mod:`course_lib.tokens.vq` / :mod:`course_lib.tokens.bitwise` whose
``forward((..., D)) -> QuantOut``, or ``None`` for continuous tokens. :func:`fit` trains one with
MSE, the perceptual loss, the multi-resolution STFT loss and/or the adversarial loss of
:mod:`course_lib.tokens.losses`. Simplification: no attention layers, no normalisation layers (tiny models,
a few thousand steps on a CPU).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.tokens import losses
from course_lib.train import History, train


@dataclass
class AEOut:
    """recon: the reconstruction; z: the tokens fed to the decoder (quantized if there is a
    quantizer), channel-first; codes: token ids or None; qloss: the quantizer's auxiliary loss;
    stats: the quantizer's stats."""
    recon: torch.Tensor
    z: torch.Tensor
    codes: torch.Tensor | None
    qloss: torch.Tensor
    stats: dict


class ResBlock(nn.Module):
    def __init__(self, ch: int, conv=nn.Conv2d):
        super().__init__()
        self.c1, self.c2 = conv(ch, ch, 3, padding=1), conv(ch, ch, 1)

    def forward(self, x):
        return x + self.c2(F.silu(self.c1(F.silu(x))))


class _Tokenizer(nn.Module):
    """Shared logic: encode, quantize channel-last, decode."""
    spatial_dims = 2

    def _quantize(self, z: torch.Tensor, **qkw):
        if self.quantizer is None:
            return z, None, z.new_zeros(()), {}
        zl = z.movedim(1, -1)                                                    # (B, ..., D)
        out = self.quantizer(zl, **qkw)
        return out.z_q.movedim(-1, 1), out.codes, out.loss, out.stats             # (B, D, ...)

    def forward(self, x: torch.Tensor, **qkw) -> AEOut:
        self._check(x)
        z = self.encoder(self._pre(x))
        zq, codes, qloss, stats = self._quantize(z, **qkw)
        return AEOut(self._post(self.decoder(zq), x), zq, codes, qloss, stats)

    def encode(self, x: torch.Tensor, **qkw):
        """x -> (tokens channel-first, codes or None)."""
        self._check(x)
        zq, codes, _, _ = self._quantize(self.encoder(self._pre(x)), **qkw)
        return zq, codes

    def decode(self, z: torch.Tensor, like: torch.Tensor | None = None) -> torch.Tensor:
        out = self.decoder(z)
        return self._post(out, like) if like is not None else self._post(out, None)

    @property
    def last_layer(self) -> torch.Tensor:
        """The decoder's output conv weight (VQGAN's adaptive weight uses it)."""
        return self.decoder[-1].weight

    def _pre(self, x):
        return x

    def _post(self, y, x):
        return y


class ImageTokenizer(_Tokenizer):
    """Conv autoencoder for (B, C, H, W) images; patch size 2^n_down, ``latent_dim`` channels."""

    def __init__(self, channels: int = 3, hidden: int = 64, latent_dim: int = 8, n_down: int = 2,
                 quantizer: nn.Module | None = None):
        super().__init__()
        if n_down < 0:
            raise ValueError(f"n_down must be >= 0, got {n_down}")
        self.channels, self.latent_dim, self.n_down = channels, latent_dim, n_down
        self.patch = 2 ** n_down
        down = [m for _ in range(n_down) for m in (nn.Conv2d(hidden, hidden, 4, stride=2, padding=1), nn.SiLU())]
        up = [m for _ in range(n_down) for m in (nn.ConvTranspose2d(hidden, hidden, 4, stride=2, padding=1), nn.SiLU())]
        self.encoder = nn.Sequential(nn.Conv2d(channels, hidden, 3, padding=1), nn.SiLU(), *down,
                                     ResBlock(hidden), nn.SiLU(), nn.Conv2d(hidden, latent_dim, 1))
        self.decoder = nn.Sequential(nn.Conv2d(latent_dim, hidden, 3, padding=1), ResBlock(hidden),
                                     nn.SiLU(), *up, nn.Conv2d(hidden, channels, 3, padding=1))
        self.quantizer = quantizer

    def _check(self, x):
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"expected images (B, {self.channels}, H, W), got "
                             f"{tuple(getattr(x, 'shape', ())) or type(x).__name__}")
        if x.shape[2] % self.patch or x.shape[3] % self.patch:
            raise ValueError(f"image size {tuple(x.shape[2:])} must be divisible by the patch size {self.patch}")

    def token_grid(self, h: int, w: int) -> tuple[int, int]:
        return h // self.patch, w // self.patch


class AudioTokenizer(_Tokenizer):
    """Strided 1-D conv autoencoder for (B, L) waves (a SoundStream/EnCodec-shaped toy):
    frames per second = sample_rate / prod(strides)."""

    def __init__(self, hidden: int = 32, latent_dim: int = 16, strides=(4, 4, 2),
                 quantizer: nn.Module | None = None):
        super().__init__()
        self.strides, self.latent_dim = tuple(strides), latent_dim
        self.hop = math.prod(self.strides)
        enc, dec, c = [nn.Conv1d(1, hidden, 7, padding=3), nn.SiLU()], [], hidden
        for s in self.strides:
            enc += [nn.Conv1d(c, 2 * c, 2 * s, stride=s, padding=s // 2), nn.SiLU()]
            c *= 2
        enc += [ResBlock(c, nn.Conv1d), nn.SiLU(), nn.Conv1d(c, latent_dim, 3, padding=1)]
        dec = [nn.Conv1d(latent_dim, c, 3, padding=1), ResBlock(c, nn.Conv1d), nn.SiLU()]
        for s in reversed(self.strides):
            dec += [nn.ConvTranspose1d(c, c // 2, 2 * s, stride=s, padding=s // 2), nn.SiLU()]
            c //= 2
        dec += [nn.Conv1d(c, 1, 7, padding=3)]
        self.encoder, self.decoder = nn.Sequential(*enc), nn.Sequential(*dec)
        self.quantizer = quantizer

    def _check(self, x):
        if not isinstance(x, torch.Tensor) or x.dim() != 2:
            raise ValueError(f"expected waves (B, L), got {tuple(getattr(x, 'shape', ())) or type(x).__name__}")
        if x.shape[1] % self.hop:
            raise ValueError(f"wave length {x.shape[1]} must be divisible by the hop {self.hop}")

    def _pre(self, x):
        return x[:, None]                                                          # (B, 1, L)

    def _post(self, y, x):
        return y[:, 0]                                                             # (B, L)

    def frame_rate(self, sample_rate: int) -> float:
        return sample_rate / self.hop


class VideoTokenizer(_Tokenizer):
    """VideoGPT-style tube tokens: a 3-D conv with kernel = stride = (t, p, p) over (B, T, C, H, W)
    clips, a small 3-D conv stack, and its transpose; one token per t frames x p x p pixels."""

    def __init__(self, channels: int = 3, hidden: int = 64, latent_dim: int = 8, t: int = 2, p: int = 4,
                 quantizer: nn.Module | None = None):
        super().__init__()
        self.channels, self.t, self.p, self.latent_dim = channels, t, p, latent_dim
        self.encoder = nn.Sequential(nn.Conv3d(channels, hidden, (t, p, p), stride=(t, p, p)), nn.SiLU(),
                                     nn.Conv3d(hidden, hidden, (1, 3, 3), padding=(0, 1, 1)), nn.SiLU(),
                                     nn.Conv3d(hidden, latent_dim, 1))
        self.decoder = nn.Sequential(nn.Conv3d(latent_dim, hidden, (1, 3, 3), padding=(0, 1, 1)), nn.SiLU(),
                                     nn.Conv3d(hidden, hidden, (1, 3, 3), padding=(0, 1, 1)), nn.SiLU(),
                                     nn.ConvTranspose3d(hidden, channels, (t, p, p), stride=(t, p, p)))
        self.quantizer = quantizer

    def _check(self, x):
        if not isinstance(x, torch.Tensor) or x.dim() != 5 or x.shape[2] != self.channels:
            raise ValueError(f"expected clips (B, T, {self.channels}, H, W), got "
                             f"{tuple(getattr(x, 'shape', ())) or type(x).__name__}")
        if x.shape[1] % self.t or x.shape[3] % self.p or x.shape[4] % self.p:
            raise ValueError(f"clip shape {tuple(x.shape)}: T must divide by {self.t}, H and W by {self.p}")

    def _pre(self, x):
        return x.transpose(1, 2)                                                   # (B, C, T, H, W)

    def _post(self, y, x):
        return y.transpose(1, 2)                                                   # (B, T, C, H, W)


# ----------------------------------------------------------------------------- training

def fit(model: _Tokenizer, batch_fn, steps: int, *, lr: float = 2e-3, loss: str = "mse",
        data_variance: float | None = None, stft_weight: float = 0.0,
        perceptual: nn.Module | None = None, perceptual_weight: float = 1.0,
        discriminator: nn.Module | None = None, disc_start: int = 0, disc_weight: float = 0.5,
        desc: str = "tokenizer", progress: bool = True, history: History | None = None,
        **train_kw) -> History:
    """Train a tokenizer on batches ``batch_fn(step) -> x``; returns the :class:`History`.

    loss: "mse" or "l1" (the regression term); data_variance: divide the regression term by it, as
    Sonnet's VQ-VAE divides the MSE by the data variance, so that beta weighs the commitment against
    a loss of order 1 whatever the scale of the data; stft_weight (audio): adds that weight times the
    multi-resolution STFT loss. The quantizer's auxiliary loss is always added. ``perceptual`` (a module (x_hat, x) -> scalar) adds
    perceptual_weight * it; ``discriminator`` adds VQGAN's adaptive-weighted hinge GAN loss after
    ``disc_start`` steps (the discriminator is trained here with its own Adam(0.5, 0.9)). Logs the
    quantizer's perplexity and the reconstruction loss per step. Other keywords (schedule,
    warmup, ...) go to :func:`course_lib.train.train`.
    """
    if loss not in ("mse", "l1"):
        raise ValueError(f"unknown loss {loss!r}: expected 'mse' or 'l1'")
    if data_variance is not None and not data_variance > 0:
        raise ValueError(f"data_variance must be > 0, got {data_variance!r}")
    d_opt = None
    if discriminator is not None:
        d_opt = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=(0.5, 0.9))

    def loss_fn(step):
        x = batch_fn(step)
        out = model(x)
        rec = losses.mse(out.recon, x) if loss == "mse" else (out.recon - x).abs().mean()
        if data_variance is not None:
            rec = rec / data_variance
        if stft_weight:
            rec = rec + stft_weight * losses.multi_resolution_stft_loss(x, out.recon)
        total = rec + out.qloss
        if perceptual is not None:
            total = total + perceptual_weight * perceptual(out.recon, x)
        logs = {"rec": rec.detach()}
        if discriminator is not None and step >= disc_start:
            d_loss = losses.hinge_d_loss(discriminator(x), discriminator(out.recon.detach()))
            d_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            d_opt.step()
            g = losses.generator_adv_loss(discriminator(out.recon))
            lam = losses.adaptive_weight(total, g, model.last_layer)
            total = total + disc_weight * lam * g
            logs["d_loss"] = d_loss.detach()
        for k in ("perplexity", "usage"):
            if k in out.stats:
                logs[k] = out.stats[k]
        return {"loss": total, **logs}

    return train(model, loss_fn, steps, lr=lr, desc=desc, progress=progress, history=history, **train_kw)


def sample_batch(pool: torch.Tensor, batch: int, seed: int = 0):
    """A ``batch_fn`` drawing random rows of ``pool`` (fixed seed: reproducible runs)."""
    g = torch.Generator().manual_seed(seed)

    def batch_fn(step):
        return pool[torch.randint(len(pool), (batch,), generator=g).to(pool.device)]
    return batch_fn


def random_crops(image: torch.Tensor, size: int, batch: int, seed: int = 0):
    """A ``batch_fn`` of random ``size`` x ``size`` crops of one (C, H, W) image."""
    g = torch.Generator().manual_seed(seed)
    c, h, w = image.shape

    def batch_fn(step):
        ys = torch.randint(h - size + 1, (batch,), generator=g).tolist()
        xs = torch.randint(w - size + 1, (batch,), generator=g).tolist()
        return torch.stack([image[:, y:y + size, x:x + size] for y, x in zip(ys, xs)])
    return batch_fn


@torch.no_grad()
def evaluate(model: _Tokenizer, x: torch.Tensor, batch: int = 256, **qkw) -> dict:
    """Reconstruct ``x`` in batches (eval mode). Returns {"recon", "codes", "mse", "psnr" (images in
    [0,1]) or "snr_db" (waves), "perplexity", "usage" (if discrete)}."""
    from course_lib import metrics
    from course_lib.tokens import vq as quantize
    was = model.training
    model.eval()
    recons, codes = [], []
    for i in range(0, len(x), batch):
        out = model(x[i:i + batch], **qkw)
        recons.append(out.recon)
        if out.codes is not None:
            codes.append(out.codes)
    model.train(was)
    recon = torch.cat(recons)
    res = {"recon": recon, "codes": torch.cat(codes) if codes else None,
           "mse": (recon - x).pow(2).mean().item()}
    if isinstance(model, AudioTokenizer):
        res["snr_db"] = metrics.snr_db(x, recon)
    else:
        res["psnr"] = metrics.psnr(recon.clamp(0, 1), x)
    q = model.quantizer
    # one codebook (not residual levels) of a size we can histogram: usage statistics
    if (res["codes"] is not None and hasattr(q, "codebook_size") and q.codebook_size <= 2 ** 20
            and not hasattr(q, "n_quantizers")):
        res["perplexity"] = metrics.perplexity(res["codes"], q.codebook_size)
        res["usage"] = metrics.usage(res["codes"], q.codebook_size)
    return res


def bits_per_item(n_tokens: int, codebook_size: int, levels: int = 1) -> float:
    """n_tokens x levels x log2(codebook_size): bits needed to store one image or clip."""
    return n_tokens * levels * math.log2(codebook_size)
