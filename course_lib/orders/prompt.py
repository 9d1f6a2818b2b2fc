"""The prompt as condition tokens, and classifier-free guidance on logits.

A prompt of the shapes task is four attribute indices (shape, colour, position, size:
:attr:`course_lib.data.Shapes.prompts`, (B, 4) int64). A model reads it as 4 condition tokens, one
per attribute, each from its own embedding table that has one extra row, the **null** id
(``N_VALUES[a]`` for attribute a): "no prompt". As in VAR (models/var.py: the class label is
replaced by the null class ``num_classes`` with probability 0.1) and MaskGIT/MAR (10% class
dropout), :func:`drop_prompts` replaces a whole prompt by the null prompt with probability p during
training, so one network learns both p(x | prompt) and p(x).

At sampling time, **classifier-free guidance** (Ho & Salimans 2022, "Classifier-Free Diffusion
Guidance", eq. 6, there on noise predictions; on logits as in VAR and Infinity) runs the network
twice, with the prompt and with the null prompt, and extrapolates:

    logits = uncond + w * (cond - uncond)

w = 1 is the plain conditional model, w = 0 the unconditional one, w > 1 pushes away from what the
model would draw without a prompt. (VAR writes the same with t = w - 1: (1 + t) cond - t uncond;
Infinity writes w cond + (1 - w) uncond.)
"""
from __future__ import annotations

import numbers

import torch
from torch import nn

from course_lib import checks, data

N_VALUES = data.N_VALUES                      # (4, 6, 9, 2) values per attribute
NULL = torch.tensor(N_VALUES)                 # the null id of each attribute: one past its last value
N_PROMPT = len(N_VALUES)                      # 4 condition tokens


def check_prompts(prompts, name: str = "prompts", allow_null: bool = True) -> torch.Tensor:
    """``prompts`` must be (B, 4) integers, attribute a in [0, N_VALUES[a]] (the last is the null id
    when ``allow_null``). Returns it as int64."""
    checks.tensor(prompts, name, ndim=2, floating=False, shape="(B, 4) int64")
    if prompts.shape[1] != N_PROMPT:
        raise ValueError(f"{name}: expected shape (B, 4) (shape, color, position, size), got {tuple(prompts.shape)}")
    for a, (attr, k) in enumerate(zip(data.ATTRIBUTES, N_VALUES)):
        checks.index_range(prompts[:, a], f"{name}[:, {a}] ({attr})", k + int(allow_null))
    return prompts.long()


def null_prompts(n: int, device=None) -> torch.Tensor:
    """(n, 4) int64: the null prompt ("no prompt") n times."""
    return NULL.to(device).expand(checks.positive_int(n, "n"), N_PROMPT).clone()


def drop_prompts(prompts: torch.Tensor, p: float = 0.1, generator: torch.Generator | None = None) -> torch.Tensor:
    """A copy of ``prompts`` (B, 4) where each row is replaced, with probability ``p``, by the null
    prompt (all four attributes at once), for classifier-free guidance training. The draw is on the
    CPU from ``generator`` (reproducible whatever the device). The input is not changed."""
    prompts = check_prompts(prompts)
    p = checks.number(p, "p", 0.0, 1.0)
    drop = torch.rand(prompts.shape[0], generator=generator) < p                # (B,) on the CPU
    return torch.where(drop.to(prompts.device)[:, None], NULL.to(prompts.device), prompts)   # (B, 4)


def cfg_logits(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance on logits: uncond + scale * (cond - uncond) (Ho & Salimans 2022,
    eq. 6). cond and uncond: the same shape (..., V); scale = 1 gives ``cond`` back."""
    checks.tensor(cond, "cond", floating=True)
    checks.tensor(uncond, "uncond", floating=True)
    if cond.shape != uncond.shape:
        raise ValueError(f"cond and uncond must have the same shape, got {tuple(cond.shape)} and {tuple(uncond.shape)}")
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
        raise TypeError(f"scale: expected a number, got {type(scale).__name__} {scale!r}")
    return uncond + scale * (cond - uncond)


def sequence(prompt_tokens: torch.Tensor | None, body: torch.Tensor, pos: torch.Tensor, start: int = 0) -> torch.Tensor:
    """The input of a prompted transformer (the GPTs of notebooks 04 and 07): [prompt_tokens
    (B, 4, d), given when start == 0; body (B, T, d), T may be 0] plus the learned positions
    pos[:, start:start + L]. start > 0 is a cached step: the body alone, at its own positions.
    Returns (B, L, d)."""
    parts = ([prompt_tokens] if start == 0 else []) + [body]
    x = torch.cat(parts, dim=1)                                                # (B, L, d)
    return x + pos[:, start:start + x.shape[1]]


class PromptEmbedding(nn.Module):
    """(B, 4) prompts (null ids allowed) -> (B, 4, d_model) condition tokens: one table per attribute
    (N_VALUES[a] + 1 rows, the last for the null id) plus a learned embedding of which attribute
    it is."""

    def __init__(self, d_model: int):
        super().__init__()
        self.d_model = checks.positive_int(d_model, "d_model")
        self.tables = nn.ModuleList(nn.Embedding(k + 1, d_model) for k in N_VALUES)
        self.slot = nn.Parameter(torch.zeros(1, N_PROMPT, d_model))
        for t in self.tables:
            nn.init.normal_(t.weight, std=0.02)
        nn.init.normal_(self.slot, std=0.02)

    def forward(self, prompts: torch.Tensor) -> torch.Tensor:
        prompts = check_prompts(prompts)
        checks.same_device(self, prompts, "prompts")
        tokens = torch.stack([t(prompts[:, a]) for a, t in enumerate(self.tables)], dim=1)   # (B, 4, D)
        return tokens + self.slot
