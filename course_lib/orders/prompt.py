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

:class:`PromptedCausal` is the base of the two raster-order models, the token GPT of notebook 04
(:mod:`~course_lib.orders.gpt`) and the continuous transformer of notebook 07
(:mod:`~course_lib.orders.continuous`): [4 prompt tokens; the tokens so far] + learned positions
through a causal transformer, one output vector per token; :meth:`PromptedCausal.autoregress`
is their generation loop (KV cache, guidance rows). They differ only in how a token enters (an
embedding row or a linear projection) and what turns the output vector into a token (a softmax
head or a head of :mod:`course_lib.heads`).

The calling convention of every model of :mod:`course_lib.orders` and :mod:`course_lib.heads`:
``model(x, prompts)`` (the tokens first, the condition second), ``loss(model, x, prompts, *,
p_null, generator)``, ``generate(model, prompts, *, cfg_scale, temperature, generator, ...)``
with ``cfg_scale = 1`` the plain conditional model everywhere, checked at the door by
:func:`course_lib.checks.sampling`.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from course_lib import checks, data, runtime
from course_lib.nets.transformer import Config, KVCache, Transformer, make_mask

N_VALUES = data.N_VALUES                      # (4, 6, 9, 2) values per attribute
NULL = torch.tensor(N_VALUES)                 # the null id of each attribute: one past its last value
N_PROMPT = len(N_VALUES)                      # 4 condition tokens


def check_prompts(prompts, name: str = "prompts", allow_null: bool = True) -> torch.Tensor:
    """``prompts`` must be (B, 4) integers, B >= 1, attribute a in [0, N_VALUES[a]] (the last is the
    null id when ``allow_null``). Returns it as int64."""
    if isinstance(prompts, (list, tuple)):
        raise TypeError(f"{name}: expected a (B, 4) int64 tensor, got a Python {type(prompts).__name__}: "
                        f"write torch.tensor({name}) or use data.Shapes.prompts")
    checks.tensor(prompts, name, ndim=2, floating=False, shape="(B, 4) int64")
    if prompts.shape[1] != N_PROMPT:
        raise ValueError(f"{name}: expected shape (B, 4) (shape, color, position, size), got {tuple(prompts.shape)}")
    checks.rows(prompts, name)
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
    return uncond + checks.number(scale, "scale") * (cond - uncond)


def with_null(prompts: torch.Tensor, guided: bool) -> torch.Tensor:
    """The rows a guided model runs: [prompts; null prompts] (2B, 4) when ``guided``, else the
    prompts (B, 4) themselves. ``prompts`` is checked first, so a wrong width is named here and
    never reaches ``torch.cat``."""
    prompts = check_prompts(prompts)
    return torch.cat([prompts, null_prompts(prompts.shape[0], prompts.device)]) if guided else prompts


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


class PromptedCausal(nn.Module):
    """The prompted causal transformer of the raster order (notebooks 04 and 07), as nanoGPT:

        [prompt (B, 4, d); embed_input(x_1 .. x_{T-1}) (B, T - 1, d)] + pos -> causal Transformer
        -> h (B, 3 + T, d);   h[:, 3 + i] sees the prompt and x_<i+1 and predicts x_{i+1}.

    ``embed_input`` (made by the subclass's ``input_layer``, called here so that every model draws
    its initial weights in the same order: prompt, input layer, body) turns a token into a vector:
    an ``nn.Embedding`` of ids (:class:`~course_lib.orders.gpt.TokenGPT`) or an ``nn.Linear`` of
    continuous vectors (:class:`~course_lib.orders.continuous.ContinuousAR`). Subclasses check their
    tokens (:meth:`check_x`) and say what an output vector becomes (:meth:`forward`).
    """

    def __init__(self, d_model: int, n_tokens: int, n_layer: int, n_head: int,
                 input_layer: Callable[[], nn.Module]):
        super().__init__()
        self.n_tokens = checks.positive_int(n_tokens, "n_tokens")
        self.prompt = PromptEmbedding(d_model)
        self.embed_input = input_layer()                                       # token -> (d,)
        self.pos = nn.Parameter(torch.zeros(1, N_PROMPT + n_tokens, d_model))
        self.body = Transformer(Config(d_model=d_model, n_layer=n_layer, n_head=n_head))

    def check_x(self, x, name: str = "x") -> torch.Tensor:
        raise NotImplementedError

    def embed(self, x: torch.Tensor, prompts: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Prompt tokens (if ``start == 0``) then the embedded tokens, positions from ``start`` on:
        (B, 4 + T, d), or (B, T, d) when start > 0 (a cached step)."""
        prompt_tokens = self.prompt(prompts) if start == 0 else None           # (B, 4, d)
        return sequence(prompt_tokens, self.embed_input(x), self.pos, start)

    def hidden(self, x: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: x (B, T, ...) with T <= n_tokens, prompts (B, 4) -> h (B, T, d), h[:, i]
        the model's vector for x[:, i] (it saw the prompt and x[:, :i] only)."""
        x = self.check_x(x)
        prompts = check_prompts(prompts)
        checks.same_rows(prompts, "prompts", x.shape[0], "x")
        T = x.shape[1]
        seq = self.embed(x[:, :-1], prompts)                                   # (B, 4 + T - 1, d)
        h = self.body(seq, make_mask("causal", seq.shape[1], device=seq.device))    # (B, 3 + T, d)
        return h[:, N_PROMPT - 1:N_PROMPT - 1 + T]                              # (B, T, d)

    def last_hidden(self, seq: torch.Tensor, rows: torch.Tensor, cache: KVCache | None) -> torch.Tensor:
        """The output vector (R, d) at the last position of [prompt; seq] for prompts ``rows`` (R, 4),
        seq (R, i, ...) the tokens drawn so far. With a cache, only what it lacks is fed: the
        prompt (and seq, empty then) on the first call, the newest token on every later one."""
        if cache is None:                                                      # the whole sequence again
            x = self.embed(seq, rows)                                          # (R, 4 + i, d)
            return self.body(x, make_mask("causal", x.shape[1], device=x.device))[:, -1]
        if len(cache) == 0:                                                    # the prompt, once
            return self.body(self.embed(seq, rows), cache=cache)[:, -1]
        x = self.embed(seq[:, -1:], rows, start=N_PROMPT + seq.shape[1] - 1)   # (R, 1, d): the newest
        return self.body(x, cache=cache)[:, -1]                                # (R, d)

    @torch.no_grad()
    def autoregress(self, prompts: torch.Tensor, empty: torch.Tensor, draw: Callable, *, guided: bool,
                    kv_cache: bool = True) -> torch.Tensor:
        """The raster-order loop: ``n_tokens`` passes; pass i gives the vectors h (R, d) of the
        prompted rows then (if ``guided``) the null-prompted ones, R = 2B, and ``draw(i, h)``
        returns token i of the B images, (B, ...); it is appended to every row. ``empty`` is the
        (R, 0, ...) sequence to start from. Eval mode inside, the previous mode restored after.
        Returns (B, n_tokens, ...)."""
        rows = with_null(prompts, guided)                                      # (R, 4)
        B = prompts.shape[0]
        cache = KVCache() if kv_cache else None
        seq = empty
        with runtime.evaluating(self):
            for i in range(self.n_tokens):
                x = draw(i, self.last_hidden(seq, rows, cache))                # (B, ...)
                seq = torch.cat([seq, (torch.cat([x, x]) if guided else x)[:, None]], dim=1)   # (R, i + 1, ...)
        return seq[:B]
