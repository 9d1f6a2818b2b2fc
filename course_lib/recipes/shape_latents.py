"""The continuous tokenizer shared by notebooks 07 (the limit of tokens), 09 (generation heads) and
10 (MeanFlow): the twin of :mod:`course_lib.recipes.shape_tokens` without the quantizer.

The same conv autoencoder (:class:`course_lib.tokens.tokenizers.ImageTokenizer`, patch 4) turns a
16x16 shape into a 4x4 grid of tokens read in raster order, but each token stays a vector of
``LATENT_DIM`` real numbers instead of becoming one of K codes. Two things make the latent space one
that a generator can work in, as in the KL-regularised autoencoder of Latent Diffusion (Rombach et
al. 2022, "High-Resolution Image Synthesis with Latent Diffusion Models", §3 and app. G):

* a **KL regulariser with a fixed posterior variance**: in training, the decoder sees
  z = mu + sigma * eps (eps ~ N(0, I), sigma = ``NOISE`` fixed), and the loss adds the KL of
  N(mu, sigma^2) to N(0, 1), whose only term that depends on the encoder is mu^2 / 2. Latent
  Diffusion's encoder outputs and learns its variance; a fixed variance is the "sigma-VAE" of
  LatentLM (Sun et al. 2024, "Multimodal Latent Language Modeling with Next-Token Diffusion",
  arXiv 2412.08635, §2.3: a fixed variance keeps the latent space from collapsing its variance to
  0). The decoder thus learns to ignore small errors in the latents, which a generator will make;
* **per-channel normalisation**: after training, the latents are shifted and scaled to mean 0 and
  std 1 per channel on the training images (LDM/Stable Diffusion's ``scale_factor``, there one
  number for all channels, 0.18215 for Stable Diffusion's VAE; MAR scales its KL-16 latents by
  0.2325 the same way), so a generator that starts from N(0, I) noise starts at the right scale.

Trained once per mode and kept in the disk cache (:func:`course_lib.train.cached`). Usage::

    from course_lib.recipes import shape_latents
    latents, prompts = shape_latents.latent_data(4096, seed=0)   # (4096, 16, LATENT_DIM), (4096, 4)
    images = shape_latents.decode(latents)                       # (4096, 3, 16, 16) in [0, 1]
    shape_latents.encode(images)                                 # (4096, 16, LATENT_DIM) again
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from course_lib import checks, runtime, train
from course_lib.recipes import shapes_task
from course_lib.recipes.shapes_task import GRID, N_TOKENS, SIZE, TRAIN_SEED  # noqa: F401  (re-exported)
from course_lib.tokens import losses, tokenizers
from course_lib.recipes.registry import Pretrained

VERSION = 1                   # bump when the architecture or training changes (invalidates the cache)
LATENT_DIM = 4                # real numbers per token: 64 per image
NOISE = 0.1                   # sigma of the fixed-variance posterior (in the encoder's raw units)
KL_WEIGHT = 1e-3              # weight of the KL term mu^2 / 2 against the pixel MSE


@dataclass(frozen=True)
class Budget(shapes_task.TokenizerBudget):
    """The continuous tokenizer's budget in one mode (the shared sizes, then this design): its cache key."""
    latent_dim: int = LATENT_DIM  # real numbers per token
    noise: float = NOISE      # sigma of the fixed-variance posterior
    kl_weight: float = KL_WEIGHT  # weight of the KL term
    seed: int = TRAIN_SEED    # weights, training shapes and noise
    version: int = VERSION    # the code's version


BUDGETS = shapes_task.budgets(Budget)


def budget(mode: str | None = None) -> Budget:
    """The tokenizer's budget in the current (or given) mode."""
    return runtime.pick(BUDGETS, mode)


class LatentTokenizer(nn.Module):
    """An :class:`~course_lib.tokens.tokenizers.ImageTokenizer` without quantizer (``ae``) and the
    per-channel statistics of its latents on the training set (buffers ``mean``, ``std``, (D,)),
    saved with the weights."""

    def __init__(self, hidden: int, latent_dim: int = LATENT_DIM):
        super().__init__()
        self.ae = tokenizers.ImageTokenizer(3, hidden, latent_dim, n_down=2, quantizer=None)
        self.register_buffer("mean", torch.zeros(latent_dim))
        self.register_buffer("std", torch.ones(latent_dim))

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, 16, 16) -> normalised latents (B, 16, D), raster order."""
        mu = self.ae.encode(images)                                             # (B, 4, 4, D)
        return ((mu - self.mean) / self.std).flatten(1, 2)                      # (B, 16, D)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalised latents (B, 16, D) -> images (B, 3, 16, 16), not clamped."""
        z = latents * self.std + self.mean                                      # (B, 16, D) raw units
        return self.ae.decode(z.unflatten(1, (GRID, GRID)))                     # (B, 4, 4, D) -> image

    @property
    def noise(self) -> torch.Tensor:
        """(D,) the training noise sigma in normalised units: latent errors of about this size are
        what the decoder learned to shrug off."""
        return NOISE / self.std


def kl_loss(model: LatentTokenizer, x: torch.Tensor, sigma: float = NOISE,
            kl_weight: float = KL_WEIGHT) -> dict:
    """The loss of one batch x (B, 3, 16, 16): pixel MSE of the decoded noisy latent
    z = mu + sigma * eps, plus kl_weight * mean(mu^2) / 2 (the KL of N(mu, sigma^2) to N(0, 1)
    up to a constant, since sigma is fixed)."""
    mu = model.ae.encode(x)                                                     # (B, 4, 4, D)
    z = mu + sigma * torch.randn_like(mu)
    rec = losses.mse(model.ae.decode(z), x)
    kl = 0.5 * mu.pow(2).mean()
    return {"loss": rec + kl_weight * kl, "rec": rec.detach(), "kl": kl.detach()}


def _build(B: Budget) -> LatentTokenizer:
    torch.manual_seed(TRAIN_SEED)
    return LatentTokenizer(B.hidden).to(runtime.device())


@torch.no_grad()
def _set_statistics(model: LatentTokenizer, pool: torch.Tensor, batch: int = 1024) -> None:
    mu = torch.cat([model.ae.encode(pool[i:i + batch]).reshape(-1, LATENT_DIM)
                    for i in range(0, len(pool), batch)])                       # (N * 16, D)
    model.mean.copy_(mu.mean(0))
    model.std.copy_(mu.std(0).clamp_min(1e-6))


def _fit(B: Budget):
    def fit(model: LatentTokenizer):
        pool = shapes_task.training_images(B)
        batch_fn = tokenizers.sample_batch(pool, B.batch)
        torch.manual_seed(TRAIN_SEED)
        train.train(model, lambda step: kl_loss(model, batch_fn(step)), B.steps, lr=2e-3, schedule="cosine",
                    desc="shape latents")
        model.eval()
        _set_statistics(model, pool)
    return fit


def tokenizer(mode: str | None = None) -> LatentTokenizer:
    """The shared continuous tokenizer of this mode, in eval mode, no gradients: from memory, else
    the disk cache, else trained now (B.steps steps)."""
    return shapes_task.cached_tokenizer("shape-latents", budget(mode), _build, _fit)


def _check_latents(latents, name: str = "latents") -> torch.Tensor:
    checks.tensor(latents, name, ndim=3, floating=True, shape=f"(N, {N_TOKENS}, {LATENT_DIM})")
    if tuple(latents.shape[1:]) != (N_TOKENS, LATENT_DIM):
        raise ValueError(f"{name}: expected shape (N, {N_TOKENS}, {LATENT_DIM}), got {tuple(latents.shape)}")
    return latents


@torch.no_grad()
def encode(images: torch.Tensor, mode: str | None = None, batch: int = 1024) -> torch.Tensor:
    """Images (N, 3, 16, 16) in [0, 1] -> normalised latents (N, 16, LATENT_DIM) float32, raster
    order of the 4x4 grid (the encoder's mean; no noise)."""
    tok = tokenizer(mode)
    checks.tensor(images, "images", ndim=4, floating=True, shape="(N, 3, 16, 16)")
    if tuple(images.shape[1:]) != (3, SIZE, SIZE):
        raise ValueError(f"images: expected shape (N, 3, {SIZE}, {SIZE}), got {tuple(images.shape)}")
    images = images.to(runtime.device(), torch.float32)
    return torch.cat([tok.encode(images[i:i + batch]) for i in range(0, len(images), batch)])


@torch.no_grad()
def decode(latents: torch.Tensor, mode: str | None = None, batch: int = 1024) -> torch.Tensor:
    """Normalised latents (N, 16, LATENT_DIM) -> images (N, 3, 16, 16) clamped to [0, 1]."""
    tok = tokenizer(mode)
    latents = _check_latents(latents).to(runtime.device(), torch.float32)
    return torch.cat([tok.decode(latents[i:i + batch]).clamp(0, 1) for i in range(0, len(latents), batch)])


def latent_data(n: int, seed: int = TRAIN_SEED, mode: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` shapes drawn with ``seed``, as (latents (n, 16, LATENT_DIM) float32, prompts (n, 4) int64)."""
    return shapes_task.shapes_as(n, seed, lambda images: encode(images, mode))


PRETRAINED = (Pretrained("shape-latents", ("07", "09", "10"), tokenizer),)
