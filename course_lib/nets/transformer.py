"""A small, readable transformer (nanoGPT style, Karpathy 2022; Vaswani et al. 2017) for the course.

* :class:`Config`: sizes in one dataclass.
* :func:`make_mask`: which position may look at which: ``"causal"`` (GPT), ``"bidirectional"``
  (BERT, MaskGIT, the TiTok tokenizer) or ``"block_causal"`` (VAR: every token sees its own block
  and all earlier blocks; blocks given by their lengths).
* :class:`Transformer`: pre-LayerNorm blocks over (B, T, D) embeddings with any mask; it does not own
  an embedding, so tokenizers, GPTs and next-scale models all wrap it.
* :class:`GPT`: token + learned position embedding -> Transformer -> logits; ``mask`` picks the
  attention pattern. Later notebooks (GPT over tokens, MaskGIT, VAR) reuse these classes.
* :class:`KVCache`: the keys and values of the positions already seen, per layer, so that a causal
  model sampling one token at a time computes each new position only, instead of re-running the
  whole prefix (the "incremental decoding" of Vaswani et al.'s tensor2tensor and of every GPT
  sampler, e.g. HuggingFace's ``past_key_values``; Pope et al. 2022, "Efficiently Scaling
  Transformer Inference", §2). Pass the same cache to successive ``Transformer.forward`` calls.

Masks are bool (T, T) with True = "may attend", as ``F.scaled_dot_product_attention`` expects.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib import checks

MASKS = ("causal", "bidirectional", "block_causal")


@dataclass
class Config:
    d_model: int = 128
    n_layer: int = 4
    n_head: int = 4
    mlp_ratio: int = 4
    dropout: float = 0.0
    bias: bool = True
    vocab_size: int = 256      # GPT only
    block_size: int = 256      # GPT only: the longest sequence (learned positions)

    def __post_init__(self):
        if self.d_model % self.n_head:
            raise ValueError(f"d_model {self.d_model} must be divisible by n_head {self.n_head}")


def make_mask(kind: str, T: int | None = None, blocks=None, device=None) -> torch.Tensor | None:
    """A (T, T) bool attention mask (True = may attend) or None for "bidirectional".

    causal: i sees j <= i. block_causal: ``blocks`` = lengths summing to T; i sees j if j's block
    is not later than i's.
    """
    if kind not in MASKS:
        raise ValueError(f"unknown mask {kind!r}: expected one of {', '.join(MASKS)}")
    if kind == "bidirectional":
        return None
    if kind == "causal":
        if T is None:
            raise ValueError("a causal mask needs T")
        return torch.ones(T, T, dtype=torch.bool, device=device).tril()
    if blocks is None:
        raise ValueError("a block_causal mask needs blocks (a list of block lengths)")
    blocks = [int(b) for b in blocks]
    if T is not None and sum(blocks) != T:
        raise ValueError(f"block lengths {blocks} sum to {sum(blocks)}, expected T = {T}")
    ids = torch.repeat_interleave(torch.arange(len(blocks), device=device),
                                  torch.tensor(blocks, device=device))                # (T,)
    return ids[:, None] >= ids[None, :]


class KVCache:
    """Keys and values of the positions seen so far, one (k, v) pair per layer, each (B, H, T, d_head).

    Usage (a causal model, one new position per call)::

        cache = KVCache()
        h = body(x[:, :4], cache=cache)          # the prompt: 4 positions
        h = body(x_new, cache=cache)             # (B, 1, D): attends to the 4 cached + itself
        len(cache)                               # 5 positions cached
    """

    def __init__(self):
        self.layers: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        return 0 if not self.layers else self.layers[0][0].shape[2]

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add this call's k, v (B, H, T_new, hd) to layer ``layer``; returns all of them (B, H, T, hd)."""
        if layer in self.layers:
            k0, v0 = self.layers[layer]
            if k0.shape[0] != k.shape[0]:
                raise ValueError(f"cache: batch of {k.shape[0]} rows, but the cached positions have {k0.shape[0]}")
            k, v = torch.cat([k0, k], dim=2), torch.cat([v0, v], dim=2)               # (B, H, T, hd)
        self.layers[layer] = (k, v)
        return k, v


class Attention(nn.Module):
    """Multi-head self-attention, softmax(Q K^T / sqrt(d_head) + mask) V per head (Vaswani et al.
    2017, eq. 1 and §3.2.2), through ``F.scaled_dot_product_attention``. With a :class:`KVCache`,
    the new positions' keys and values are appended to the cache and the queries attend to all of
    them, causally (new position i sees every cached position and the new ones up to i)."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=cfg.bias)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.bias)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, cache: KVCache | None = None,
                layer: int = 0) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(x).split(D, dim=2)                                         # 3 x (B, T, D)
        q, k, v = (t.view(B, T, self.n_head, D // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, H, T, hd)
        if cache is not None:
            seen = cache.layers[layer][0].shape[2] if layer in cache.layers else 0
            k, v = cache.append(layer, k, v)                                           # (B, H, seen + T, hd)
            # new position i (absolute seen + i) may attend to keys j <= seen + i
            mask = None if T == 1 else (torch.arange(seen + T, device=x.device)[None, :]
                                        <= seen + torch.arange(T, device=x.device)[:, None])  # (T, seen + T)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).reshape(B, T, D)                                         # (B, T, D)
        return self.proj(y)


class Block(nn.Module):
    """Pre-LayerNorm residual block (GPT-2, Radford et al. 2019, §2.3): x + attn(ln(x)), then
    x + mlp(ln(x)) with a GELU MLP of width mlp_ratio * d_model."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.attn = Attention(cfg)
        self.mlp = nn.Sequential(nn.Linear(cfg.d_model, cfg.mlp_ratio * cfg.d_model, bias=cfg.bias), nn.GELU(),
                                 nn.Linear(cfg.mlp_ratio * cfg.d_model, cfg.d_model, bias=cfg.bias),
                                 nn.Dropout(cfg.dropout))

    def forward(self, x, mask=None, cache: KVCache | None = None, layer: int = 0):       # (B, T, D)
        x = x + self.attn(self.ln1(x), mask, cache, layer)
        return x + self.mlp(self.ln2(x))


class Transformer(nn.Module):
    """n_layer pre-LN blocks and a final LayerNorm over (B, T, d_model) embeddings."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | str | None = None,
                cache: KVCache | None = None) -> torch.Tensor:
        """x (B, T, d_model) float in the model's dtype and on its device; mask as in :func:`make_mask`.

        ``cache``: a :class:`KVCache` for causal incremental decoding: x holds only the NEW positions,
        which attend causally to the cached ones and to each other; ``mask`` must then be "causal"
        (or None, read as causal). Gives the same outputs as the whole sequence with a causal mask."""
        checks.tensor(x, "x", floating=True, shape=f"(B, T, {self.cfg.d_model})")
        if x.dim() != 3 or x.shape[-1] != self.cfg.d_model:
            raise ValueError(f"x: expected embeddings (B, T, {self.cfg.d_model}), got {tuple(x.shape)}")
        checks.same_place(self, x, "x")
        if cache is not None:
            if not isinstance(cache, KVCache):
                raise TypeError(f"cache: expected a KVCache, got {type(cache).__name__}")
            if mask not in (None, "causal"):
                raise ValueError(f"a KV cache works with the causal mask only, got mask={mask!r}")
            for i, b in enumerate(self.blocks):
                x = b(x, None, cache, i)
            return self.ln_f(x)
        if isinstance(mask, str):
            mask = make_mask(mask, x.shape[1], device=x.device)
        if mask is not None and tuple(mask.shape[-2:]) != (x.shape[1], x.shape[1]):
            raise ValueError(f"mask must be ({x.shape[1]}, {x.shape[1]}), got {tuple(mask.shape)}")
        for b in self.blocks:
            x = b(x, mask)
        return self.ln_f(x)


class GPT(nn.Module):
    """Token and position embeddings, a :class:`Transformer`, a linear head to vocab_size logits.

    forward(idx (B, T) int64 in 0..vocab_size-1, mask="causal") -> logits (B, T, vocab_size). A
    float idx is a TypeError; an id outside the vocabulary, or idx on another device than the
    model, a ValueError naming ``idx``.
    """

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = nn.Parameter(torch.zeros(1, cfg.block_size, cfg.d_model))
        self.body = Transformer(cfg)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        nn.init.normal_(self.tok.weight, std=0.02)
        nn.init.normal_(self.pos, std=0.02)
        nn.init.normal_(self.head.weight, std=0.02)

    def forward(self, idx: torch.Tensor, mask: torch.Tensor | str | None = "causal") -> torch.Tensor:
        checks.tensor(idx, "idx", ndim=2, dtype=torch.long, shape="(B, T) int64 token ids")
        if idx.shape[1] > self.cfg.block_size:
            raise ValueError(f"idx: sequence of {idx.shape[1]} tokens is longer than block_size "
                             f"{self.cfg.block_size}")
        checks.same_device(self, idx, "idx")
        checks.index_range(idx, "idx", self.cfg.vocab_size)
        x = self.tok(idx) + self.pos[:, :idx.shape[1]]                                  # (B, T, D)
        return self.head(self.body(x, mask))


def _init_weights(m):
    """nanoGPT's init: every Linear N(0, 0.02), biases 0 (LayerNorms keep 1 and 0). What nanoGPT
    (``model.py``, ``GPT.__init__``) and GPT-2 (Radford et al. 2019, §2.3) add and the course leaves
    out, deliberately, in this shared body of every transformer of the course: the residual
    projections (attention output and second MLP Linear) drawn with std 0.02 / sqrt(2 n_layer), a
    dropout after each of them, and the token embedding tied to the output head. At 2-4 layers
    the scaled init changes those layers' std by a factor 0.35-0.5 only; the models train from this
    plain init in the notebooks' budgets."""
    if isinstance(m, nn.Linear):
        nn.init.normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)

