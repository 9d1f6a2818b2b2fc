"""The image tokenizer shared by notebooks 04 (GPT over tokens) and 05 (MaskGIT).

A VQ-VAE from notebook 02 (:class:`course_lib.tokens.tokenizers.ImageTokenizer`, EMA codebook with
k-means initialisation and dead-code restarts): a 16x16 shape -> a 4x4 grid of tokens from a
codebook of ``CODEBOOK`` codes, read in raster order as 16 tokens. It is trained once per mode and
kept in the disk cache (:func:`course_lib.train.cached`), so 04, 05 and their benchmarks share it.

Usage::

    from course_lib.recipes import shape_tokens
    tok = shape_tokens.tokenizer()                         # trained (or loaded) for this mode
    tokens, prompts = shape_tokens.token_data(4096, seed=0)  # (4096, 16) int64, (4096, 4) int64
    images = shape_tokens.decode(tokens)                   # (4096, 3, 16, 16) in [0, 1]
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from course_lib import checks, runtime
from course_lib.recipes import shapes_task
from course_lib.recipes.shapes_task import GRID, N_TOKENS, SIZE, TRAIN_SEED  # noqa: F401  (re-exported)
from course_lib.tokens import tokenizers, vq
from course_lib.recipes.registry import Pretrained

VERSION = 1                   # bump when the architecture or training changes (invalidates the cache)
CODEBOOK = 256                # K codes (64 lose the small shapes: 0.65 prompt accuracy after decoding)
LATENT_DIM = 8


@dataclass(frozen=True)
class Budget(shapes_task.TokenizerBudget):
    """The VQ tokenizer's budget in one mode (the shared sizes, then this design): its cache key."""
    codebook: int = CODEBOOK  # K codes
    latent_dim: int = LATENT_DIM  # numbers per code vector
    seed: int = TRAIN_SEED    # weights and training shapes
    version: int = VERSION    # the code's version


BUDGETS = shapes_task.budgets(Budget)


def budget(mode: str | None = None) -> Budget:
    """The tokenizer's budget in the current (or given) mode."""
    return runtime.pick(BUDGETS, mode)


def _build(B: Budget) -> tokenizers.ImageTokenizer:
    torch.manual_seed(TRAIN_SEED)
    q = vq.ema_vq(CODEBOOK, LATENT_DIM, vectors_per_batch=B.batch * N_TOKENS)
    return tokenizers.ImageTokenizer(3, B.hidden, LATENT_DIM, n_down=2, quantizer=q).to(runtime.device())


def _fit(B: Budget):
    def fit(model):
        pool = shapes_task.training_images(B)
        tokenizers.fit(model, tokenizers.sample_batch(pool, B.batch), B.steps, lr=2e-3, schedule="cosine",
                       desc="shape tokenizer")
    return fit


def tokenizer(mode: str | None = None) -> tokenizers.ImageTokenizer:
    """The shared VQ tokenizer of this mode, in eval mode: from memory, else the disk cache, else
    trained now (B.steps steps)."""
    return shapes_task.cached_tokenizer("shape-tokenizer", budget(mode), _build, _fit)


@torch.no_grad()
def encode(images: torch.Tensor, mode: str | None = None, batch: int = 1024) -> torch.Tensor:
    """Images (N, 3, 16, 16) -> token ids (N, 16) int64 in raster order (row by row of the 4x4 grid)."""
    tok = tokenizer(mode)
    checks.tensor(images, "images", ndim=4, floating=True, shape="(N, 3, 16, 16)")
    images = images.to(runtime.device())
    codes = [tok.quantize(tok.encode(images[i:i + batch])).codes for i in range(0, len(images), batch)]
    return torch.cat(codes).reshape(len(images), N_TOKENS)                    # (N, 4, 4) -> (N, 16)


@torch.no_grad()
def decode(tokens: torch.Tensor, mode: str | None = None, batch: int = 1024) -> torch.Tensor:
    """Token ids (N, 16) (raster order) -> images (N, 3, 16, 16) clamped to [0, 1]."""
    tok = tokenizer(mode)
    checks.tensor(tokens, "tokens", ndim=2, floating=False, shape=f"(N, {N_TOKENS}) int64")
    if tokens.shape[1] != N_TOKENS:
        raise ValueError(f"tokens: expected shape (N, {N_TOKENS}), got {tuple(tokens.shape)}")
    checks.index_range(tokens, "tokens", CODEBOOK)
    tokens = tokens.to(runtime.device())
    out = []
    for i in range(0, len(tokens), batch):
        z = tok.quantizer.lookup(tokens[i:i + batch].reshape(-1, GRID, GRID))  # (n, 4, 4, D)
        out.append(tok.decode(z).clamp(0, 1))                                  # (n, 3, 16, 16)
    return torch.cat(out)


def token_data(n: int, seed: int = TRAIN_SEED, mode: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` shapes drawn with ``seed``, as (tokens (n, 16) int64, prompts (n, 4) int64)."""
    return shapes_task.shapes_as(n, seed, lambda images: encode(images, mode))


PRETRAINED = (Pretrained("shape-tokenizer", ("04", "05", "06", "07"), tokenizer),)
