"""A GPT over image tokens: one token at a time, in raster order, after a prompt (notebook 04).

An image becomes 16 tokens (a 4x4 grid from :mod:`course_lib.recipes.shape_tokens`, read row by
row); the prompt becomes 4 condition tokens (:class:`~course_lib.orders.prompt.PromptEmbedding`).
The model is a decoder-only transformer over the sequence

    [p_shape, p_color, p_position, p_size, t_1, ..., t_15]   ->   predicts t_1, ..., t_16

with a causal mask, trained with cross-entropy on the next token: the recipe of GPT-2 (Radford et
al. 2019) applied to images as in iGPT (Chen et al. 2020, "Generative Pretraining from Pixels",
§2.1, eq. 1, there on pixels) and, over the codes of a VQ tokenizer with a condition prepended, as
in VQGAN's transformer (Esser et al. 2021, "Taming Transformers for High-Resolution Image
Synthesis", §3.2, eq. 8-9; taming-transformers, taming/models/cond_transformer.py). Generating an
image takes as many forward passes as it has tokens (16 here), each one drawing one token with
temperature and top-k (:mod:`course_lib.nets.sampling`); a token, once drawn, is never revised.

* Classifier-free guidance on logits (Ho & Salimans 2022, eq. 6): trained with the prompt replaced
  by the null prompt 10% of the time (:func:`~course_lib.orders.prompt.drop_prompts`); sampling
  runs the prompted and the null-prompted rows in one batch and uses
  ``uncond + w * (cond - uncond)`` (:func:`~course_lib.orders.prompt.cfg_logits`).
* The KV cache (:class:`course_lib.nets.transformer.KVCache`): each step feeds only the new token
  and reuses the keys and values of the earlier ones; same tokens, fewer operations.

Simplifications against the papers: a 4-layer, 128-wide model, 16 tokens, a prompt of 4 attribute
tokens instead of text or a class label, no dropout.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib import checks
from course_lib.nets.sampling import sample_logits
from course_lib.nets.transformer import Config, KVCache, Transformer, make_mask
from course_lib.orders import prompt as P


@dataclass
class GPTConfig:
    vocab_size: int = 256           # codebook size K of the tokenizer
    n_tokens: int = 16              # image tokens per image (4 x 4)
    d_model: int = 128
    n_layer: int = 4
    n_head: int = 4

    @property
    def seq_len(self) -> int:
        """Positions the model sees in training: 4 prompt tokens + all image tokens but the last."""
        return P.N_PROMPT + self.n_tokens - 1


class TokenGPT(nn.Module):
    """Prompt embedding + token embedding + learned positions -> causal :class:`Transformer` ->
    logits over the K codes.

    ``forward(prompts (B, 4), tokens (B, T))`` with T <= n_tokens returns logits (B, T, K):
    ``logits[:, i]`` is the prediction of ``tokens[:, i]`` from the prompt and ``tokens[:, :i]``.
    """

    def __init__(self, cfg: GPTConfig = GPTConfig()):
        super().__init__()
        self.cfg = cfg
        self.prompt = P.PromptEmbedding(cfg.d_model)
        self.tok = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = nn.Parameter(torch.zeros(1, P.N_PROMPT + cfg.n_tokens, cfg.d_model))
        self.body = Transformer(Config(d_model=cfg.d_model, n_layer=cfg.n_layer, n_head=cfg.n_head))
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        for w in (self.tok.weight, self.pos, self.head.weight):
            nn.init.normal_(w, std=0.02)

    def _check_tokens(self, tokens, name="tokens", longest=None) -> torch.Tensor:
        longest = longest or self.cfg.n_tokens
        checks.tensor(tokens, name, ndim=2, floating=False, shape=f"(B, T <= {longest}) int64")
        if tokens.shape[1] > longest:
            raise ValueError(f"{name}: at most {longest} tokens per image, got {tokens.shape[1]}")
        checks.same_device(self, tokens, name)
        return checks.index_range(tokens, name, self.cfg.vocab_size).long()

    def embed(self, prompts: torch.Tensor, tokens: torch.Tensor, start: int = 0) -> torch.Tensor:
        """The input sequence: prompt tokens (if ``start == 0``) then image tokens, with positions
        from ``start`` on. Returns (B, 4 + T, D), or (B, T, D) when start > 0 (a cached step)."""
        prompt = self.prompt(prompts) if start == 0 else None                 # (B, 4, D)
        return P.sequence(prompt, self.tok(tokens), self.pos, start)           # (B, 4 + T, D) or (B, T, D)

    def forward(self, prompts: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        prompts = P.check_prompts(prompts)
        tokens = self._check_tokens(tokens)
        if prompts.shape[0] != tokens.shape[0]:
            raise ValueError(f"prompts and tokens must have the same batch size, got {prompts.shape[0]} "
                             f"and {tokens.shape[0]}")
        T = tokens.shape[1]
        x = self.embed(prompts, tokens[:, :-1])                                # (B, 4 + T - 1, D)
        h = self.body(x, make_mask("causal", x.shape[1], device=x.device))    # (B, 3 + T, D)
        return self.head(h[:, P.N_PROMPT - 1:P.N_PROMPT - 1 + T])             # (B, T, K)


def loss(model: TokenGPT, tokens: torch.Tensor, prompts: torch.Tensor, p_null: float = 0.1,
         generator: torch.Generator | None = None) -> torch.Tensor:
    """Next-token cross-entropy (nats per token) on (B, 16) tokens, the prompt replaced by the null
    prompt with probability ``p_null`` per image (classifier-free guidance training)."""
    prompts = P.drop_prompts(prompts, p_null, generator)
    logits = model(prompts, tokens)                                            # (B, 16, K)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens.reshape(-1))


def _check_scale(scale) -> float:
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
        raise TypeError(f"cfg_scale: expected a number, got {type(scale).__name__} {scale!r}")
    return float(scale)


@torch.no_grad()
def generate(model: TokenGPT, prompts: torch.Tensor, *, cfg_scale: float = 1.0, temperature: float = 1.0,
             top_k: int | None = None, generator: torch.Generator | None = None, kv_cache: bool = True,
             force: torch.Tensor | None = None) -> torch.Tensor:
    """Draw (B, n_tokens) token ids in raster order for ``prompts`` (B, 4): n_tokens forward passes.

    cfg_scale: classifier-free guidance weight w (1 = the plain conditional model; with w != 1 each
    pass runs the prompted and the null-prompted rows together, 2B rows). temperature, top_k: as
    :func:`course_lib.nets.sampling.sample_logits`; ``generator`` (CPU) makes the draw reproducible.
    kv_cache: feed one new token per pass and reuse the earlier keys and values (True), or re-run
    the whole sequence each pass (False); both give the same tokens at the same seed.
    force: optional (B, n_tokens) int64, -1 where the model draws and a token id where that token is
    imposed instead (the model continues from it: "a wrong token early cannot be taken back").
    """
    cfg = model.cfg
    prompts = P.check_prompts(prompts)
    checks.same_device(model, prompts, "prompts")
    scale = _check_scale(cfg_scale)
    B, dev = prompts.shape[0], prompts.device
    if force is not None:
        checks.tensor(force, "force", ndim=2, floating=False, shape=f"(B, {cfg.n_tokens}) int64, -1 = free")
        if tuple(force.shape) != (B, cfg.n_tokens):
            raise ValueError(f"force: expected shape ({B}, {cfg.n_tokens}), got {tuple(force.shape)}")
        checks.index_range(force, "force", cfg.vocab_size, low=-1)
        force = force.to(dev)
    guided = scale != 1.0
    rows = torch.cat([prompts, P.null_prompts(B, dev)]) if guided else prompts  # (R, 4), R = 2B or B
    was = model.training
    model.eval()
    tokens = torch.zeros(B, 0, dtype=torch.long, device=dev)
    cache = KVCache() if kv_cache else None
    for i in range(cfg.n_tokens):
        seq = tokens.repeat(2, 1) if guided else tokens                        # (R, i)
        if cache is None:                                                      # the whole sequence again
            x = model.embed(rows, seq)                                         # (R, 4 + i, D)
            h = model.body(x, make_mask("causal", x.shape[1], device=dev))[:, -1]
        elif i == 0:                                                           # the prompt, once
            h = model.body(model.embed(rows, seq), cache=cache)[:, -1]
        else:                                                                  # only the newest token
            x = model.embed(rows, seq[:, -1:], start=P.N_PROMPT + i - 1)       # (R, 1, D)
            h = model.body(x, cache=cache)[:, -1]                              # (R, D)
        logits = model.head(h)                                                 # (R, K)
        if guided:
            logits = P.cfg_logits(logits[:B], logits[B:], scale)              # (B, K)
        nxt = sample_logits(logits, temperature, top_k, generator)            # (B,)
        if force is not None:
            nxt = torch.where(force[:, i] >= 0, force[:, i], nxt)
        tokens = torch.cat([tokens, nxt[:, None]], dim=1)                      # (B, i + 1)
    model.train(was)
    return tokens


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
