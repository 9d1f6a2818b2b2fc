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

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib import checks
from course_lib.nets.sampling import sample_logits
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


class TokenGPT(P.PromptedCausal):
    """Prompt embedding + token embedding + learned positions -> causal :class:`Transformer` ->
    logits over the K codes (:class:`~course_lib.orders.prompt.PromptedCausal` with an
    ``nn.Embedding`` for the tokens and a linear head).

    ``forward(tokens (B, T), prompts (B, 4))`` with T <= n_tokens returns logits (B, T, K):
    ``logits[:, i]`` is the prediction of ``tokens[:, i]`` from the prompt and ``tokens[:, :i]``.
    """

    def __init__(self, cfg: GPTConfig = GPTConfig()):
        super().__init__(cfg.d_model, cfg.n_tokens, cfg.n_layer, cfg.n_head,
                         input_layer=lambda: nn.Embedding(cfg.vocab_size, cfg.d_model))
        self.cfg = cfg
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        for w in (self.embed_input.weight, self.pos, self.head.weight):
            nn.init.normal_(w, std=0.02)

    def check_x(self, tokens, name: str = "tokens") -> torch.Tensor:
        n = self.cfg.n_tokens
        checks.tensor(tokens, name, ndim=2, floating=False, shape=f"(B, T <= {n}) int64")
        if tokens.shape[1] > n:
            raise ValueError(f"{name}: at most {n} tokens per image, got {tokens.shape[1]}")
        checks.rows(tokens, name)
        checks.same_device(self, tokens, name)
        return checks.index_range(tokens, name, self.cfg.vocab_size).long()

    def forward(self, tokens: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden(tokens, prompts))                         # (B, T, K)


def loss(model: TokenGPT, tokens: torch.Tensor, prompts: torch.Tensor, *, p_null: float = 0.1,
         generator: torch.Generator | None = None) -> torch.Tensor:
    """Next-token cross-entropy (nats per token) on (B, 16) tokens, the prompt replaced by the null
    prompt with probability ``p_null`` per image (classifier-free guidance training)."""
    tokens = model.check_x(tokens)
    if tokens.shape[1] != model.cfg.n_tokens:                  # a prefix is for generation, not training
        raise ValueError(f"tokens: expected whole images, shape (B, {model.cfg.n_tokens}), got {tuple(tokens.shape)}")
    checks.same_rows(P.check_prompts(prompts), "prompts", tokens.shape[0], "tokens")
    checks.number(p_null, "p_null", 0.0, 1.0)
    prompts = P.drop_prompts(prompts, p_null, checks.generator(generator))
    logits = model(tokens, prompts)                                            # (B, 16, K)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens.reshape(-1))


@torch.no_grad()
def generate(model: TokenGPT, prompts: torch.Tensor, *, cfg_scale: float = 1.0, temperature: float = 1.0,
             top_k: int | None = None, generator: torch.Generator | None = None, kv_cache: bool = True,
             force: torch.Tensor | None = None) -> torch.Tensor:
    """Draw (B, n_tokens) token ids in raster order for ``prompts`` (B, 4): n_tokens forward passes.

    cfg_scale: classifier-free guidance weight w (1 = the plain conditional model; with w != 1 each
    pass runs the prompted and the null-prompted rows together, 2B rows). temperature (> 0), top_k:
    as :func:`course_lib.nets.sampling.sample_logits`; ``generator`` (CPU) makes the draw reproducible.
    kv_cache: feed one new token per pass and reuse the earlier keys and values (True), or re-run
    the whole sequence each pass (False); both give the same tokens at the same seed.
    force: optional (B, n_tokens) int64, -1 where the model draws and a token id where that token is
    imposed instead (the model continues from it: "a wrong token early cannot be taken back").
    """
    cfg = model.cfg
    prompts = P.check_prompts(prompts)
    checks.same_device(model, prompts, "prompts")
    scale, temperature, _, generator = checks.sampling(cfg_scale=cfg_scale, temperature=temperature,
                                                       generator=generator)
    checks.number(temperature, "temperature", 1e-6)
    B, dev = prompts.shape[0], prompts.device
    if force is not None:
        checks.tensor(force, "force", ndim=2, floating=False, shape=f"(B, {cfg.n_tokens}) int64, -1 = free")
        if tuple(force.shape) != (B, cfg.n_tokens):
            raise ValueError(f"force: expected shape ({B}, {cfg.n_tokens}), got {tuple(force.shape)}")
        checks.index_range(force, "force", cfg.vocab_size, low=-1)
        force = force.to(dev)
    guided = scale != 1.0

    def draw(i, h):                                                            # h (R, D) -> (B,)
        logits = model.head(h)                                                 # (R, K)
        if guided:
            logits = P.cfg_logits(logits[:B], logits[B:], scale)              # (B, K)
        nxt = sample_logits(logits, temperature, top_k, generator)            # (B,)
        return nxt if force is None else torch.where(force[:, i] >= 0, force[:, i], nxt)

    empty = torch.zeros(2 * B if guided else B, 0, dtype=torch.long, device=dev)
    return model.autoregress(prompts, empty, draw, guided=guided, kv_cache=kv_cache)
