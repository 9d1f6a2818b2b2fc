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

import functools
from types import SimpleNamespace

import torch

from course_lib import checks, data, runtime, train
from course_lib.tokens import tokenizers, vq

VERSION = 1                   # bump when the architecture or training changes (invalidates the cache)
SIZE = 16                     # 16 x 16 images
GRID = 4                      # -> 4 x 4 tokens (patch 4)
N_TOKENS = GRID * GRID        # 16 tokens per image, in raster order
CODEBOOK = 256                # K codes (64 lose the small shapes: 0.65 prompt accuracy after decoding)
LATENT_DIM = 8
TRAIN_SEED = 0                # the tokenizer's (and the token models') training shapes

BUDGETS = {
    "quick": dict(n_train=4096, batch=64, hidden=32, steps=300),
    "lecture": dict(n_train=8192, batch=64, hidden=48, steps=2000),
    "full": dict(n_train=32768, batch=128, hidden=96, steps=6000),
}


def budget(mode: str | None = None) -> SimpleNamespace:
    return runtime.pick(BUDGETS, mode)


def config(mode: str | None = None) -> dict:
    """Everything that defines the trained tokenizer of this mode (its cache key)."""
    B = budget(mode)
    return dict(version=VERSION, mode=B.mode, n_train=B.n_train, batch=B.batch, hidden=B.hidden,
                steps=B.steps, K=CODEBOOK, latent_dim=LATENT_DIM, seed=TRAIN_SEED)


def _build(B: SimpleNamespace) -> tokenizers.ImageTokenizer:
    torch.manual_seed(TRAIN_SEED)
    q = vq.ema_vq(CODEBOOK, LATENT_DIM, vectors_per_batch=B.batch * N_TOKENS)
    return tokenizers.ImageTokenizer(3, B.hidden, LATENT_DIM, n_down=2, quantizer=q).to(runtime.device())


def _fit(B: SimpleNamespace):
    def fit(model):
        pool = data.shapes(B.n_train, size=SIZE, seed=TRAIN_SEED).images
        tokenizers.fit(model, tokenizers.sample_batch(pool, B.batch), B.steps, lr=2e-3, schedule="cosine",
                       desc="shape tokenizer")
    return fit


@functools.lru_cache(maxsize=None)
def _tokenizer(mode: str, device: str) -> tokenizers.ImageTokenizer:
    B = budget(mode)
    return train.cached("shape-tokenizer", config(mode), build=lambda: _build(B), fit=_fit(B)).requires_grad_(False)


def tokenizer(mode: str | None = None) -> tokenizers.ImageTokenizer:
    """The shared VQ tokenizer of this mode, in eval mode: from memory, else the disk cache, else
    trained now (B.steps steps)."""
    return _tokenizer(budget(mode).mode, str(runtime.device()))


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
    shapes = data.shapes(checks.positive_int(n, "n"), size=SIZE, seed=seed)
    return encode(shapes.images, mode), shapes.prompts
