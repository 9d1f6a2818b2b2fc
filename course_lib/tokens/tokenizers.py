"""Tokenizers: small conv autoencoders that turn images, audio and short clips into tokens.

Encoder -> (optional) quantizer -> decoder, as in VQ-VAE (van den Oord et al. 2017) and its audio
and video cousins (SoundStream, Zeghidour et al. 2021; VideoGPT, Yan et al. 2021), at course scale:

* :class:`ImageTokenizer`: (B, C, H, W) -> a (H / p, W / p) grid of tokens, p = 2^n_down the patch
  size; one token per "cell" of the image, not per pixel "atom".
* :class:`AudioTokenizer`: (B, L) waves -> L / prod(strides) frames of tokens.
* :class:`VideoTokenizer`: (B, T, C, H, W) clips -> tube tokens over (t, p, p) frames x pixels.

The contract (:class:`Tokenizer`): ``encode(x)`` gives continuous tokens, channel last
(B, *grid, D); the quantizer (any :class:`~course_lib.tokens.vq.Quantizer`, or ``None`` for
continuous tokens) maps them to a :class:`~course_lib.tokens.vq.QuantOut`; ``decode`` maps tokens
back; ``forward(x)`` returns an :class:`AEOut` with the reconstruction and the quantizer's
``QuantOut`` unchanged. :func:`fit` trains a tokenizer with MSE, the perceptual loss, the
multi-resolution STFT loss and/or the adversarial loss of :mod:`course_lib.tokens.losses`;
:func:`evaluate` reconstructs a held-out set and reports its quality and codebook usage.
Simplification: no attention layers, no normalisation layers (tiny models, a few thousand steps on
a CPU).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib import checks, metrics, runtime
from course_lib.tokens import losses
from course_lib.tokens.vq import QuantOut, Quantizer, ResidualVQ
from course_lib.train import Adversary, History, train


@dataclass
class AEOut:
    """What a tokenizer's forward returns.

    recon: the reconstruction, shaped like the input;
    quant: the quantizer's :class:`QuantOut` exactly as it returned it (tokens z_q channel last
        (B, *grid, D), codes, auxiliary loss, stats), or None for continuous tokens.
    """
    recon: torch.Tensor
    quant: QuantOut | None


class ResBlock(nn.Module):
    def __init__(self, ch: int, conv=nn.Conv2d):
        super().__init__()
        self.c1, self.c2 = conv(ch, ch, 3, padding=1), conv(ch, ch, 1)

    def forward(self, x):
        return x + self.c2(F.silu(self.c1(F.silu(x))))


class Tokenizer(nn.Module):
    """Encoder -> quantizer -> decoder. Subclasses set ``encoder``, ``decoder``, ``quantizer`` and
    define ``_check``; ``_pre``/``_post`` move the input to and from the conv layout."""
    quantizer: Quantizer | None

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x -> continuous tokens, channel last (B, *grid, D). x on another device than the model,
        or in another floating dtype, is an error naming ``x``."""
        self._check(x)
        checks.same_place(self, x, "x")
        return self.encoder(self._pre(x)).movedim(1, -1)                        # (B, *grid, D)

    def quantize(self, z: torch.Tensor, n_levels: int | None = None) -> QuantOut | None:
        """Continuous tokens (B, *grid, D) -> the quantizer's QuantOut (None without a quantizer).
        n_levels: decode with the first n_levels levels of a residual quantizer."""
        if n_levels is not None and not isinstance(self.quantizer, ResidualVQ):
            raise ValueError(f"n_levels needs a ResidualVQ quantizer, this tokenizer has "
                             f"{type(self.quantizer).__name__}")
        if self.quantizer is None:
            return None
        return self.quantizer(z) if n_levels is None else self.quantizer(z, n_levels=n_levels)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Tokens, channel last (B, *grid, D) -> a reconstruction shaped like the input."""
        checks.tensor(z, "z", floating=True, shape="(B, *grid, D)")
        checks.same_place(self, z, "z")
        return self._post(self.decoder(z.movedim(-1, 1)))                         # (B, D, *grid) in

    def forward(self, x: torch.Tensor, n_levels: int | None = None) -> AEOut:
        z = self.encode(x)                                                         # (B, *grid, D)
        q = self.quantize(z, n_levels)
        return AEOut(self.decode(z if q is None else q.z_q), q)

    def quality(self, x: torch.Tensor, recon: torch.Tensor) -> dict:
        """How close ``recon`` is to ``x``: {"psnr": dB} for images in [0, 1] (recon clamped)."""
        return {"psnr": metrics.psnr(recon.clamp(0, 1), x)}

    @property
    def last_layer(self) -> torch.Tensor:
        """The decoder's output conv weight (VQGAN's adaptive weight uses it)."""
        return self.decoder[-1].weight

    def _pre(self, x):
        return x

    def _post(self, y):
        return y


class ImageTokenizer(Tokenizer):
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


class AudioTokenizer(Tokenizer):
    """Strided 1-D conv autoencoder for (B, L) waves (a SoundStream/EnCodec-shaped toy):
    frames per second = sample_rate / prod(strides), exactly L / prod(strides) frames.

    Each down-sampling conv has kernel 2s and stride s (SoundStream §3.1, EnCodec §3.1), padded
    ceil(s / 2) on both sides: L / s frames for every stride s >= 2, odd ones too (EnCodec and
    SoundStream use 5), where EnCodec pads k - s = s samples asymmetrically. Each transposed conv
    undoes it exactly (an output padding of 1 for an odd s). A stride of 1 is refused.
    """

    def __init__(self, hidden: int = 32, latent_dim: int = 16, strides=(4, 4, 2),
                 quantizer: nn.Module | None = None):
        super().__init__()
        strides = tuple(strides)
        if not strides:
            raise ValueError("strides: expected at least one stride, got ()")
        for s in strides:
            if checks.positive_int(s, "strides") < 2:
                raise ValueError(f"strides: expected ints >= 2 (a stride of 1 does not down-sample), "
                                 f"got {strides}")
        self.strides, self.latent_dim = strides, latent_dim
        self.hop = math.prod(self.strides)
        enc, dec, c = [nn.Conv1d(1, hidden, 7, padding=3), nn.SiLU()], [], hidden
        for s in self.strides:
            enc += [nn.Conv1d(c, 2 * c, 2 * s, stride=s, padding=(s + 1) // 2), nn.SiLU()]   # L -> L / s
            c *= 2
        enc += [ResBlock(c, nn.Conv1d), nn.SiLU(), nn.Conv1d(c, latent_dim, 3, padding=1)]
        dec = [nn.Conv1d(latent_dim, c, 3, padding=1), ResBlock(c, nn.Conv1d), nn.SiLU()]
        for s in reversed(self.strides):
            dec += [nn.ConvTranspose1d(c, c // 2, 2 * s, stride=s, padding=(s + 1) // 2,
                                       output_padding=s % 2), nn.SiLU()]                  # L / s -> L
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

    def _post(self, y):
        return y[:, 0]                                                             # (B, L)

    def quality(self, x: torch.Tensor, recon: torch.Tensor) -> dict:
        """{"snr_db": the waveform SNR in dB}."""
        return {"snr_db": metrics.snr_db(x, recon)}

    def frame_rate(self, sample_rate: int) -> float:
        return sample_rate / self.hop


class VideoTokenizer(Tokenizer):
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

    def _post(self, y):
        return y.transpose(1, 2)                                                   # (B, T, C, H, W)


# ----------------------------------------------------------------------------- training

def fit(model: nn.Module, batch_fn, steps: int, *, lr: float = 2e-3, loss: str = "mse",
        data_variance: float | None = None, stft_weight: float = 0.0,
        perceptual: nn.Module | None = None, perceptual_weight: float = 1.0,
        discriminator: nn.Module | None = None, disc_start: int = 0, disc_weight: float = 0.5,
        desc: str = "tokenizer", progress: bool = True, history: History | None = None,
        **train_kw) -> History:
    """Train a tokenizer (a :class:`Tokenizer` or a TiTok) on batches ``batch_fn(step) -> x``.

    The loss, per step: L = L_rec + L_quant [+ w_p L_perceptual] [+ w_d lambda L_G], with
    L_rec = MSE or L1 (``loss``), divided by ``data_variance`` if given (as Sonnet's VQ-VAE divides
    the MSE by the data variance, so that beta weighs the commitment against a loss of order 1
    whatever the scale of the data), plus ``stft_weight`` x the multi-resolution STFT loss (audio);
    L_quant the quantizer's auxiliary loss; ``perceptual`` a module (x_hat, x) -> scalar.

    ``discriminator``: VQGAN's adversarial loss (Esser et al. 2021, eq. 7), from step
    ``disc_start`` on: the model gets L_G = -mean D(x_hat) with the adaptive weight lambda; the
    discriminator is the :class:`~course_lib.train.Adversary` of the training loop, stepped after
    the model on the same batch with the hinge loss and its own Adam(0.5, 0.9), the order of
    taming-transformers (taming/models/vqgan.py, optimizer 0 then optimizer 1).

    Logs the reconstruction term ("rec") and the quantizer's perplexity and usage per step. Other
    keywords (schedule, warmup, ...) go to :func:`course_lib.train.train`. Returns the History.
    """
    if loss not in ("mse", "l1"):
        raise ValueError(f"unknown loss {loss!r}: expected 'mse' or 'l1'")
    if data_variance is not None and not data_variance > 0:
        raise ValueError(f"data_variance must be > 0, got {data_variance!r}")
    seen = {}                                  # this step's batch and reconstruction, for the adversary
    adversary = None
    if discriminator is not None:
        def d_loss_fn(step):
            return losses.hinge_d_loss(discriminator(seen["x"]), discriminator(seen["recon"]))
        adversary = Adversary(discriminator, d_loss_fn, start=disc_start,
                              optimizer=torch.optim.Adam(discriminator.parameters(), lr=lr, betas=(0.5, 0.9)))

    def loss_fn(step):
        x = batch_fn(step)
        out = model(x)
        rec = losses.mse(out.recon, x) if loss == "mse" else (out.recon - x).abs().mean()
        if data_variance is not None:
            rec = rec / data_variance
        if stft_weight:
            rec = rec + stft_weight * losses.multi_resolution_stft_loss(x, out.recon)
        total = rec if out.quant is None else rec + out.quant.loss
        if perceptual is not None:
            total = total + perceptual_weight * perceptual(out.recon, x)
        logs = {"rec": rec.detach()}
        if out.quant is not None:
            logs.update(perplexity=out.quant.stats.perplexity, usage=out.quant.stats.usage)
        if adversary is not None:
            seen.update(x=x, recon=out.recon.detach())
            if step >= disc_start:
                g = losses.generator_adv_loss(discriminator(out.recon))
                lam = losses.adaptive_weight(total, g, model.last_layer)
                total = total + disc_weight * lam * g
        return {"loss": total, **logs}

    return train(model, loss_fn, steps, lr=lr, desc=desc, progress=progress, history=history,
                 adversary=adversary, **train_kw)


def sample_batch(pool: torch.Tensor, batch: int, seed: int = 0):
    """A ``batch_fn`` drawing random rows of ``pool`` (fixed seed: reproducible runs)."""
    g = torch.Generator().manual_seed(seed)

    def batch_fn(step):
        return pool[torch.randint(len(pool), (batch,), generator=g).to(pool.device)]
    return batch_fn


def sample_crops(image: torch.Tensor, size: int, batch: int, seed: int = 0):
    """A ``batch_fn`` of ``batch`` random ``size`` x ``size`` crops (B, C, size, size) of one
    (C, H, W) image (fixed seed: reproducible runs)."""
    g = torch.Generator().manual_seed(seed)
    c, h, w = image.shape

    def batch_fn(step):
        ys = torch.randint(h - size + 1, (batch,), generator=g).tolist()
        xs = torch.randint(w - size + 1, (batch,), generator=g).tolist()
        return torch.stack([image[:, y:y + size, x:x + size] for y, x in zip(ys, xs)])
    return batch_fn


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, batch: int = 256, *, n_levels: int | None = None,
             n_tokens: int | None = None) -> dict:
    """Reconstruct ``x`` in batches, in eval mode.

    n_levels: decode with the first n_levels of a residual quantizer; n_tokens: decode from the
    first n_tokens latent tokens (TiTok). Returns {"recon", "mse", the model's ``quality`` (PSNR
    for images, "snr_db" for waves), "codes" (None for continuous tokens) and, with a quantizer,
    "stats" (:class:`~course_lib.tokens.vq.CodeStats` of all the codes), "perplexity", "usage"}.
    """
    kw = {k: v for k, v in (("n_levels", n_levels), ("n_tokens", n_tokens)) if v is not None}
    checks.tensor(x, "x", floating=True)
    checks.same_place(model, x, "x")
    with runtime.evaluating(model):
        outs = [model(x[i:i + batch], **kw) for i in range(0, len(x), batch)]
    recon = torch.cat([o.recon for o in outs])
    res = {"recon": recon, "mse": (recon - x).pow(2).mean().item(), **model.quality(x, recon), "codes": None}
    if model.quantizer is not None:
        res["codes"] = torch.cat([o.quant.codes for o in outs])
        res["stats"] = model.quantizer.code_stats(res["codes"])
        res.update(perplexity=res["stats"].perplexity, usage=res["stats"].usage)
    return res


@dataclass
class Run:
    """A trained tokenizer, its training history and its :func:`evaluate` result on held-out data."""
    model: nn.Module
    history: History
    result: dict


def train_and_evaluate(model: nn.Module, batch_fn, test: torch.Tensor, steps: int, **fit_kw) -> Run:
    """:func:`fit` ``model`` for ``steps`` steps of ``batch_fn`` (e.g. :func:`sample_batch`), then
    :func:`evaluate` it on ``test``. Other keywords go to :func:`fit`."""
    hist = fit(model, batch_fn, steps, **fit_kw)
    return Run(model, hist, evaluate(model, test))


def bits_per_item(n_tokens: int, codebook_size: int, levels: int = 1) -> float:
    """n_tokens x levels x log2(codebook_size): bits needed to store one image or clip."""
    checks.positive_int(n_tokens, "n_tokens"), checks.positive_int(codebook_size, "codebook_size")
    checks.positive_int(levels, "levels")
    return n_tokens * levels * math.log2(codebook_size)
