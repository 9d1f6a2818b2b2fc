"""The transformer that feeds a head, in two orders, trained with its head; generation timed apart.

A head (:mod:`course_lib.heads`) turns a condition z into a continuous token; something must
produce z. Two orders of the course, over the 16 latent tokens of a shape
(:mod:`course_lib.recipes.shape_latents`):

* **raster**: the causal transformer of :mod:`course_lib.orders.continuous` (notebook 07), reused
  as it is: z_i sees the prompt and tokens 1..i-1; one transformer pass and one head call per token
  (16 passes, with the KV cache), as NextStep-1 (arXiv 2508.10711) generates image tokens;
* **masked** (:class:`MaskedAR`): MAR's order (Li et al. 2024, "Autoregressive Image Generation
  without Vector Quantization", §3.3-3.4; LTH14/mar ``models/mar.py``): a bidirectional transformer
  sees the prompt and the known tokens, a learned [MASK] vector stands for the unknown ones, and it
  outputs z for every masked position at once. Training masks a share drawn from a Gaussian centred
  at 1.0 (std 0.25) truncated to [0.7, 1.0], one share per batch, positions in a random order per
  image, loss on the masked tokens only; generation runs ``steps`` passes in a random order, with
  MaskGIT's cosine schedule of how many stay masked (:func:`course_lib.orders.maskgit.masked_after_step`),
  each pass handing the z of the tokens it decides to the head.

  Simplified from MAR: one bidirectional transformer over [prompt; tokens with [MASK]] instead of
  MAR's MAE-style encoder (known tokens only, 64 buffer tokens holding the class) and decoder; no
  linear growth of the guidance scale over the steps. MAR's ``diffusion_pos_embed`` (a learned
  position added to z before the head) is kept.

:func:`loss` trains a transformer and its head together (the head's loss, its gradient through z);
:func:`generate` returns the latents and **where the time went**: seconds in the transformer and in
the head, passes of each. Guidance in both orders runs the prompted and the null-prompted rows
together and hands both conditions to the head, ``head.sample(z, z_uncond=, cfg_scale=)``: each
head guides where its paper does (:mod:`course_lib.heads.base`: the flow head on its velocity,
as MAR and NextStep-1; the one-step heads on z, as SLED).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import nn

from course_lib import checks, runtime
from course_lib.heads.base import Head
from course_lib.nets.transformer import Config, Transformer
from course_lib.orders import continuous
from course_lib.orders import prompt as P
from course_lib.orders.maskgit import masked_after_step
from course_lib.orders.continuous import ContinuousAR, ContinuousConfig

ORDERS = ("raster", "masked")
MAR_MASK = dict(mean=1.0, std=0.25, low=0.7)        # MAR's training mask ratio (main_mar.py: mask_ratio_min 0.7)


class MaskedAR(nn.Module):
    """MAR's order: [4 prompt tokens; 16 tokens, the masked ones replaced by a learned [MASK] vector]
    + learned positions -> bidirectional :class:`~course_lib.nets.transformer.Transformer` -> z
    (B, 16, d_model) at every token position (plus MAR's ``diffusion_pos_embed``)."""

    def __init__(self, cfg: ContinuousConfig = ContinuousConfig()):
        super().__init__()
        self.cfg = cfg
        self.prompt = P.PromptEmbedding(cfg.d_model)
        self.proj = nn.Linear(cfg.latent_dim, cfg.d_model)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.d_model))
        self.pos = nn.Parameter(torch.zeros(1, P.N_PROMPT + cfg.n_tokens, cfg.d_model))
        self.head_pos = nn.Parameter(torch.zeros(1, cfg.n_tokens, cfg.d_model))    # MAR's diffusion_pos_embed
        self.body = Transformer(Config(d_model=cfg.d_model, n_layer=cfg.n_layer, n_head=cfg.n_head))
        for p in (self.mask_token, self.pos, self.head_pos):
            nn.init.normal_(p, std=0.02)

    def check_x(self, latents, name: str = "latents") -> torch.Tensor:
        c = self.cfg
        checks.tensor(latents, name, ndim=3, floating=True, shape=f"(B, {c.n_tokens}, {c.latent_dim})")
        if tuple(latents.shape[1:]) != (c.n_tokens, c.latent_dim):
            raise ValueError(f"{name}: expected shape (B, {c.n_tokens}, {c.latent_dim}), got {tuple(latents.shape)}")
        checks.rows(latents, name)
        checks.finite(latents, name)
        return checks.same_place(self, latents, name)

    def forward(self, latents: torch.Tensor, prompts: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """latents (B, 16, D) (values at masked positions are not read), prompts (B, 4), mask (B, 16)
        bool (True = unknown) -> z (B, 16, d_model)."""
        latents = self.check_x(latents)
        prompts = P.check_prompts(prompts)
        checks.same_rows(prompts, "prompts", latents.shape[0], "latents")
        checks.bool_mask(mask, "mask", latents.shape[:2], "latents.shape[:2]")
        x = torch.where(mask[..., None], self.mask_token, self.proj(latents))         # (B, 16, d)
        x = torch.cat([self.prompt(prompts), x], dim=1) + self.pos                    # (B, 20, d)
        h = self.body(x, "bidirectional")                                             # (B, 20, d)
        return h[:, P.N_PROMPT:] + self.head_pos                                      # (B, 16, d)


def build(order: str, cfg: ContinuousConfig) -> nn.Module:
    """The transformer of ``order`` ("raster": :class:`~course_lib.orders.continuous.ContinuousAR`,
    "masked": :class:`MaskedAR`)."""
    checks.one_of(order, "order", ORDERS)
    return ContinuousAR(cfg) if order == "raster" else MaskedAR(cfg)


# ----------------------------------------------------------------------------- training

def mar_mask(n: int, n_tokens: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """(n, n_tokens) bool, True = masked: ONE share r for the batch from N(1.0, 0.25^2) truncated to
    [0.7, 1.0] (MAR, models/mar.py ``random_masking``; the share is drawn by rejection), ceil(r T)
    positions per row, chosen by a random order per row. Drawn on the CPU from ``generator``."""
    while True:
        r = MAR_MASK["mean"] + MAR_MASK["std"] * torch.randn(1, generator=generator).item()
        if MAR_MASK["low"] <= r <= 1.0:
            break
    k = math.ceil(r * n_tokens)
    rank = torch.rand(n, n_tokens, generator=generator).argsort(1).argsort(1)          # (n, T) random order
    return (rank < k).to(device)


def loss(model: nn.Module, head: Head, latents: torch.Tensor, prompts: torch.Tensor, *, p_null: float = 0.1,
         generator: torch.Generator | None = None) -> torch.Tensor:
    """The head's loss on the tokens the transformer predicts: every token in raster order, the
    masked ones in the masked order; the prompt replaced by the null prompt with probability
    ``p_null`` per image (classifier-free guidance training). latents (B, 16, D), prompts (B, 4)."""
    if not isinstance(model, MaskedAR):
        return continuous.loss(model, head, latents, prompts, p_null=p_null, generator=generator)
    continuous.check_head(model, head)
    latents = model.check_x(latents)
    checks.same_rows(P.check_prompts(prompts), "prompts", latents.shape[0], "latents")
    checks.number(p_null, "p_null", 0.0, 1.0)
    prompts = P.drop_prompts(prompts, p_null, checks.generator(generator))
    mask = mar_mask(latents.shape[0], model.cfg.n_tokens, generator, latents.device)   # (B, 16)
    z = model(latents, prompts, mask)                                                  # (B, 16, d)
    return head.loss(latents[mask], z[mask], generator=generator)                      # masked tokens only


# ----------------------------------------------------------------------------- generation, timed

@dataclass
class Generated:
    """latents (B, 16, D); order (B, 16): the step at which each token was generated; passes: the
    transformer's forward passes; head_nfe: the head's network passes per token; seconds_backbone,
    seconds_head: wall time in each (all B images together)."""
    latents: torch.Tensor
    order: torch.Tensor
    passes: int
    head_nfe: int
    seconds_backbone: float
    seconds_head: float

    @property
    def head_share(self) -> float:
        return self.seconds_head / max(self.seconds_backbone + self.seconds_head, 1e-12)


sync = runtime.sync          # wait for the GPU, so that a wall-clock time covers its work


class _TimedHead:
    """A head whose ``sample`` is timed and always runs ``steps`` steps (for
    :func:`course_lib.orders.continuous.generate`, which calls ``head.sample(z, ...)``)."""

    def __init__(self, head: Head, steps: int | None):
        self.head, self.steps, self.seconds, self.calls = head, steps, 0.0, 0
        self.token_dim, self.cond_dim = head.token_dim, head.cond_dim

    def sample(self, z, **kw):
        sync()
        t0 = time.perf_counter()
        out = self.head.sample(z, steps=self.steps, **kw)
        sync()
        self.seconds += time.perf_counter() - t0
        self.calls += 1
        return out


@torch.no_grad()
def generate(model: nn.Module, head: Head, prompts: torch.Tensor, *, steps: int = 8, head_steps: int | None = None,
             cfg_scale: float = 1.0, temperature: float = 1.0,
             generator: torch.Generator | None = None) -> Generated:
    """Latents for ``prompts`` (B, 4): raster order (16 transformer passes, ``steps`` ignored) or
    masked order (``steps`` passes, MAR's ``num_iter``, at most one per token); the head runs ``head_steps`` network
    passes per token (its default when None)."""
    prompts = P.check_prompts(prompts)
    checks.same_device(model, prompts, "prompts")
    continuous.check_head(model, head)
    cfg_scale, temperature, steps, generator = checks.sampling(
        cfg_scale=cfg_scale, temperature=temperature, steps=steps, generator=generator)
    head_steps = None if head_steps is None else checks.positive_int(head_steps, "head_steps")
    timed = _TimedHead(head, head_steps)
    head_nfe = head.nfe(head_steps)
    sync()
    t0 = time.perf_counter()
    with runtime.evaluating(model, head):
        if not isinstance(model, MaskedAR):
            latents = continuous.generate(model, timed, prompts, cfg_scale=cfg_scale, temperature=temperature,
                                          generator=generator)
            B, T = latents.shape[:2]
            order = torch.arange(T, device=latents.device).expand(B, T)
            passes = T
        else:
            latents, order, passes = _masked(model, timed, prompts, steps, cfg_scale, temperature, generator)
    sync()
    total = time.perf_counter() - t0
    return Generated(latents, order, passes, head_nfe, total - timed.seconds, timed.seconds)


def _masked(model: MaskedAR, head: _TimedHead, prompts, steps, cfg_scale, temperature, generator):
    """MAR's ``sample_tokens``: a random order per image; at step k the transformer sees what is
    known, the schedule says how many stay masked, and the head samples the tokens decided now."""
    c, B, dev = model.cfg, prompts.shape[0], prompts.device
    guided = cfg_scale != 1.0
    rows = P.with_null(prompts, guided)                                                # (R, 4)
    latents = torch.zeros(B, c.n_tokens, c.latent_dim, device=dev)
    mask = torch.ones(B, c.n_tokens, dtype=torch.bool, device=dev)                     # True = unknown
    rank = torch.rand(B, c.n_tokens, generator=generator).argsort(1).argsort(1).to(dev)   # (B, 16) random order
    order = torch.full((B, c.n_tokens), steps - 1, dtype=torch.long, device=dev)
    unknown, passes = c.n_tokens, 0
    for k in range(steps):
        passes += 1
        rep = (lambda t: t.repeat(2, *[1] * (t.dim() - 1))) if guided else (lambda t: t)   # noqa: E731
        z = model(rep(latents), rows, rep(mask))                                       # (R, 16, d)
        n_next = masked_after_step(k, steps, c.n_tokens, unknown) if unknown > 1 else 0
        still = rank < n_next                                                          # (B, 16): stays masked
        now = mask & ~still                                                            # decided at this step
        z_u = z[B:][now] if guided else None                                           # the null-prompt rows
        x = head.sample(z[:B][now], z_uncond=z_u, cfg_scale=cfg_scale, temperature=temperature,
                        generator=generator)                                           # (B * n_now, D)
        latents[now] = x.to(latents.dtype)
        order[now] = k
        mask, unknown = still, n_next
        if unknown == 0:                             # more steps than tokens: done early
            break
    return latents, order, passes
