"""What the two shared tokenizers of the prompted-shapes task have in common: the VQ one of notebooks
04-05 (:mod:`course_lib.recipes.shape_tokens`) and the continuous one of 07, 09 and 10
(:mod:`course_lib.recipes.shape_latents`).

Both turn a 16x16 shape into a 4x4 grid of tokens read in raster order, train on the same shapes
with the same budget per mode, and are kept in the disk cache (:func:`course_lib.train.cached`)
under their budget, so every notebook and benchmark of a mode shares one trained tokenizer.

Usage (in a tokenizer's recipe)::

    @dataclass(frozen=True)
    class Budget(shapes_task.TokenizerBudget):
        codebook: int = 256                        # what this tokenizer adds to the shared budget
    BUDGETS = shapes_task.budgets(Budget)          # one Budget per mode
    tok = shapes_task.cached_tokenizer("shape-tokenizer", budget(mode), build, fit)
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import torch

from course_lib import checks, data, metrics, runtime, train
from course_lib.orders import prompt as P

SIZE = 16                     # 16 x 16 images
GRID = 4                      # -> 4 x 4 tokens (patch 4)
N_TOKENS = GRID * GRID        # 16 tokens per image, in raster order
TRAIN_SEED = 0                # the tokenizers' (and the token models') training shapes
PLACE = data.ATTRIBUTES.index("position")  # the attribute that "the place left open" leaves open


@dataclass(frozen=True)
class TokenizerBudget:
    """The training budget of a shared tokenizer in one mode; each tokenizer's budget adds the
    constants of its design (all of it is the cache key of its weights)."""
    mode: str                 # the course mode this budget is for
    n_train: int              # training shapes, drawn with seed TRAIN_SEED
    batch: int                # images per step
    hidden: int               # channels of the conv autoencoder
    steps: int                # training steps (AdamW, lr 2e-3, cosine decay)


@dataclass(frozen=True)
class TransformerBudget:
    """The budget of a prompted transformer over the shapes' tokens in one mode (the GPT of 04,
    MaskGIT of 05, the continuous models of 07); each recipe adds its own fields."""
    mode: str                 # the course mode this budget is for
    tokenizer: TokenizerBudget  # the tokenizer whose tokens it models (in its cache key)
    n_train: int              # training shapes (seed TRAIN_SEED), as tokens
    batch: int                # sequences per step
    d_model: int              # the transformer's width
    n_layer: int              # transformer blocks
    n_head: int               # attention heads
    steps: int                # training steps (warmup, then cosine decay)
    lr: float                 # AdamW's peak learning rate
    n_eval: int               # held-out prompts per score


def budgets(cls: type) -> dict:
    """One ``cls`` (a :class:`TokenizerBudget`) per mode, with the sizes both tokenizers train with."""
    return {"quick": cls(mode="quick", n_train=4096, batch=64, hidden=32, steps=300),
            "lecture": cls(mode="lecture", n_train=8192, batch=64, hidden=48, steps=2000),
            "full": cls(mode="full", n_train=32768, batch=128, hidden=96, steps=6000)}


def training_images(B: TokenizerBudget) -> torch.Tensor:
    """The tokenizers' training images (B.n_train, 3, 16, 16), drawn with seed TRAIN_SEED."""
    return data.shapes(B.n_train, size=SIZE, seed=TRAIN_SEED).images


@functools.lru_cache(maxsize=None)
def _cached(name: str, B: TokenizerBudget, device: str, build: Callable, fit: Callable) -> torch.nn.Module:
    return train.cached(name, B, build=lambda: build(B), fit=fit(B)).requires_grad_(False)


def cached_tokenizer(name: str, B: TokenizerBudget, build: Callable, fit: Callable) -> torch.nn.Module:
    """The tokenizer ``name`` of budget ``B``, in eval mode, no gradients: from memory, else the disk
    cache (key: ``B``), else ``build(B)`` trained now by ``fit(B)(model)``."""
    return _cached(name, B, str(runtime.device()), build, fit)


def shapes_as(n: int, seed: int, encode: Callable) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` shapes drawn with ``seed``, as (``encode(images)``, prompts (n, 4) int64)."""
    shapes = data.shapes(checks.positive_int(n, "n"), size=SIZE, seed=seed)
    return encode(shapes.images), shapes.prompts


def leave_place_open(prompts: torch.Tensor) -> torch.Tensor:
    """A copy of ``prompts`` (N, 4) with the position replaced by its null id: "a small red circle,
    anywhere". Nine places are right for each such prompt, the shapes' version of the lecture's dog
    that may run left or right; the evaluator does not judge the place of an image for it. The models
    trained on such prompts: notebook 09's continuous transformers, and notebook 11's token GPT and
    MaskGIT (``open_place=True``)."""
    out = P.check_prompts(prompts).clone()
    out[:, PLACE] = int(P.NULL[PLACE])
    return out


def real_draw(prompts: torch.Tensor, open_place: bool = False, seed: int = 0) -> torch.Tensor:
    """What a perfect generator would draw for ``prompts`` (N, 4): the same prompts rendered again with
    another draw of the jitter (seed ``metrics.FLOOR_SEED + seed``), the second set of real images of
    :func:`course_lib.evaluator.frechet_floor`; with ``open_place`` the same shapes at places drawn at
    random (the floor where the place is left open). Images (N, 3, 16, 16)."""
    prompts = P.check_prompts(prompts).clone().cpu()
    if open_place:
        g = torch.Generator().manual_seed(metrics.FLOOR_SEED + seed)
        prompts[:, PLACE] = torch.randint(data.N_VALUES[PLACE], (len(prompts),), generator=g)
    return data.render_prompts(prompts, seed=metrics.FLOOR_SEED + seed)
