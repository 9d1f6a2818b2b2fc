"""MaskGIT: a bidirectional transformer that fills in masked image tokens, many at a time, most
confident first (Chang et al. 2022, "MaskGIT: Masked Generative Image Transformer", arXiv 2202.04200).

* :func:`gamma`: the cosine mask schedule gamma(r) = cos(pi r / 2) (paper §3.3, eq. 3-4; official
  code ``maskgit/libml/mask_schedule.py``, ``schedule(..., method="cosine")``).
* :func:`random_mask` and :func:`loss`: training (paper §3.1-3.2, eq. 1): per example draw
  r ~ U(0, 1), mask ceil(gamma(r) N) of the N tokens chosen uniformly at random, replace them by the
  [MASK] id, and take the cross-entropy ONLY on the masked positions, with label smoothing 0.1 (the
  released class-conditional config).
* :class:`MaskGIT`: [4 prompt tokens, N image tokens] -> a bidirectional :class:`Transformer` ->
  logits over the K codes at every image position. The prompt comes through
  :class:`course_lib.orders.prompt.PromptEmbedding` (with a null prompt for classifier-free guidance).
* :func:`generate` (also :func:`decode`): iterative parallel decoding (paper §3.2 "Iterative Decoding", Algorithm in Fig. 2;
  official ``maskgit/libml/parallel_decode.py`` ``decode``): in T steps, each step samples every
  unknown token, scores each sample by the log-probability of the sampled token plus annealed Gumbel
  noise, keeps the most confident ones and masks the rest again; a decided token is never re-masked.
  It returns the tokens and the step at which each position was decided (the order).

What the course simplifies: a 4x4 token grid of a small VQ tokenizer instead of MaskGIT's 16x16 grid
of a VQGAN, a 4-layer transformer instead of 24 layers, a prompt of four attribute tokens instead of
one class token, and no learning-rate warm-up or weight decay schedule.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib import checks, runtime
from course_lib.nets.transformer import Config as TransformerConfig
from course_lib.nets.transformer import Transformer
from course_lib.orders import prompt as prompt_lib

CHOICE_TEMPERATURE = 4.5      # released class-conditional config (maskgit_class_cond_config.py)
LABEL_SMOOTHING = 0.1         # idem


@dataclass
class MaskGITConfig:
    """Sizes of a :class:`MaskGIT`. The [MASK] id is ``codebook_size`` (one past the last code)."""
    codebook_size: int = 64
    n_tokens: int = 16           # image tokens per image (a 4x4 grid)
    d_model: int = 128
    n_layer: int = 4
    n_head: int = 4
    dropout: float = 0.0

    @property
    def mask_id(self) -> int:
        return self.codebook_size


# ----------------------------------------------------------------------------- the schedule

def gamma(r: torch.Tensor | float) -> torch.Tensor | float:
    """The cosine mask schedule gamma(r) = cos(pi r / 2): the share of tokens masked at ratio r in
    [0, 1] (gamma(0) = 1: all masked; gamma(1) = 0: none) (paper §3.3; ``mask_schedule.py``)."""
    if isinstance(r, torch.Tensor):
        checks.value_range(r, "r", 0.0, 1.0)
        return torch.cos(math.pi / 2 * r)
    return math.cos(math.pi / 2 * checks.number(r, "r", 0.0, 1.0))


def masked_after_step(step: int, steps: int, n_start: int, n_unknown: int) -> int:
    """How many tokens stay masked after decoding step ``step`` (0-based) of ``steps``:
    floor(n_start * gamma((step + 1) / steps)) clipped to [1, n_unknown - 1], from the number of
    unknown tokens at the START of decoding (n_start), not the current one; 0 after the last step,
    whose samples are all kept (``parallel_decode.py``: ``mask_len``, and the final output is the
    last step's ``sampled_ids``)."""
    steps = checks.positive_int(steps, "steps")
    if not 0 <= step < steps:
        raise ValueError(f"step: expected 0 <= step < steps = {steps}, got {step}")
    if step == steps - 1:
        return 0
    n = math.floor(n_start * gamma((step + 1) / steps))
    return max(1, min(n_unknown - 1, n))


# ----------------------------------------------------------------------------- training

def random_mask(n_examples: int, n_tokens: int, generator: torch.Generator | None = None,
                device=None) -> torch.Tensor:
    """(n_examples, n_tokens) bool, True = masked: per example r ~ U(0, 1) and ceil(gamma(r) N)
    positions chosen uniformly at random (at least 1) (paper §3.2; one ratio per example). Drawn on
    the CPU from ``generator`` (the same masks on every device), then moved to ``device``."""
    checks.positive_int(n_examples, "n_examples"), checks.positive_int(n_tokens, "n_tokens")
    checks.generator(generator)
    r = torch.rand(n_examples, 1, generator=generator)                                   # (B, 1)
    count = torch.ceil(gamma(r) * n_tokens).clamp(1, n_tokens)                          # (B, 1)
    rank = torch.rand(n_examples, n_tokens, generator=generator).argsort(1).argsort(1)  # (B, N) random ranks
    return (rank < count).to(device)


def masked_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
                label_smoothing: float = LABEL_SMOOTHING) -> torch.Tensor:
    """Cross-entropy on the MASKED positions only (paper eq. 1), with label smoothing: averaged over
    each image's masked positions, then over the images, as the official
    ``weighted_sequence_cross_entropy_loss`` (maskgit/libml/losses.py: sum(loss * w, -1) / sum(w, -1),
    then the batch mean; smoothed targets (1 - s) one-hot + s / K, as PyTorch's). Each image counts
    the same whatever its share of masked tokens (a token-level mean would weight the heavily masked
    images more). Rows without a masked token are left out. One difference: MaskGIT's logits also
    cover its class and [MASK] ids, so its s / K spreads over those too; here K is the codebook.
    logits (B, N, K), targets (B, N) int64 in [0, K), mask (B, N) bool with at least one True."""
    checks.tensor(logits, "logits", ndim=3, floating=True, shape="(B, N, K)")
    checks.tensor(targets, "targets", ndim=2, floating=False, shape="(B, N) int64")
    if targets.shape != logits.shape[:2]:
        raise ValueError(f"targets: expected shape {tuple(logits.shape[:2])} (logits' (B, N)), got {tuple(targets.shape)}")
    checks.index_range(targets, "targets", logits.shape[-1])
    checks.bool_mask(mask, "mask", tuple(targets.shape), "targets.shape, True = masked")
    checks.number(label_smoothing, "label_smoothing", 0.0, 1.0)
    if mask.device.type != "meta" and not bool(mask.any()):
        raise ValueError("mask: no position is masked; the loss is over the masked positions (a mean of nothing)")
    ce = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none",
                         label_smoothing=label_smoothing).view(targets.shape)            # (B, N)
    w = mask.to(ce.dtype)                                                              # (B, N)
    count = w.sum(1)                                                                   # (B,)
    per_image = (ce * w).sum(1) / count.clamp_min(1)                                   # (B,)
    return per_image[count > 0].mean()


def loss(model: "MaskGIT", tokens: torch.Tensor, prompts: torch.Tensor, *, p_null: float = 0.1,
         generator: torch.Generator | None = None, label_smoothing: float = LABEL_SMOOTHING,
         criterion=None) -> torch.Tensor:
    """One training loss (paper §3.2): mask tokens (B, N) with :func:`random_mask`, write [MASK] there,
    replace the prompt by the null prompt with probability ``p_null`` (classifier-free guidance
    training), predict every position, and take ``criterion(logits, tokens, mask, label_smoothing)``
    (default :func:`masked_loss`: the masked positions only). ``tokens`` are the targets: codes in
    0..K-1, never the [MASK] id K (the loss writes the masks itself)."""
    tokens = model.check_x(tokens, mask_allowed=False)
    checks.same_rows(prompt_lib.check_prompts(prompts), "prompts", tokens.shape[0], "tokens")
    generator = checks.generator(generator)
    mask = random_mask(tokens.shape[0], tokens.shape[1], generator, tokens.device)   # (B, N)
    inputs = torch.where(mask, torch.full_like(tokens, model.cfg.mask_id), tokens)    # (B, N)
    checks.number(p_null, "p_null", 0.0, 1.0)
    prompts = prompt_lib.drop_prompts(prompts, p_null, generator)
    return (criterion or masked_loss)(model(inputs, prompts), tokens, mask, label_smoothing)


# ----------------------------------------------------------------------------- the model

class MaskGIT(nn.Module):
    """forward(tokens (B, N) int64 in 0..K, K = [MASK]; prompts (B, 4) int64) -> logits (B, N, K).

    The sequence is [4 prompt embeddings, N token embeddings] plus learned positions, through a
    bidirectional transformer (every position sees every other); the logits cover the K codes only,
    never [MASK] (the official code slices the logits to the codebook, ``inference.py``)."""

    def __init__(self, cfg: MaskGITConfig):
        super().__init__()
        self.cfg = cfg
        D = cfg.d_model
        self.tok = nn.Embedding(cfg.codebook_size + 1, D)                    # + [MASK]
        self.prompt = prompt_lib.PromptEmbedding(D)
        self.n_prompt = prompt_lib.N_PROMPT
        self.pos = nn.Parameter(torch.zeros(1, self.n_prompt + cfg.n_tokens, D))
        self.body = Transformer(TransformerConfig(d_model=D, n_layer=cfg.n_layer, n_head=cfg.n_head,
                                                  dropout=cfg.dropout))
        self.head = nn.Linear(D, cfg.codebook_size)
        nn.init.normal_(self.tok.weight, std=0.02)
        nn.init.normal_(self.pos, std=0.02)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def check_x(self, tokens, name: str = "tokens", mask_allowed: bool = True) -> torch.Tensor:
        """(B, N) int64 codes in 0..K-1, and the [MASK] id K where ``mask_allowed`` (inputs, not targets)."""
        K, N = self.cfg.codebook_size, self.cfg.n_tokens
        checks.tensor(tokens, name, ndim=2, dtype=torch.long, shape=f"(B, {N}) int64")
        if tokens.shape[1] != N:
            raise ValueError(f"{name}: expected (B, {N}), got {tuple(tokens.shape)}")
        checks.rows(tokens, name)
        if not mask_allowed and tokens.numel() and int(tokens.max()) == K:
            raise ValueError(f"{name}: expected codes in [0, {K - 1}] as targets, got the [MASK] id {K} "
                             f"(the loss masks the tokens itself: pass the unmasked codes)")
        checks.index_range(tokens, name, K + int(mask_allowed))
        return checks.same_device(self, tokens, name)

    def forward(self, tokens: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
        tokens = self.check_x(tokens)
        prompts = prompt_lib.check_prompts(prompts)
        checks.same_rows(prompts, "prompts", tokens.shape[0], "tokens")
        x = torch.cat([self.prompt(prompts), self.tok(tokens)], 1) + self.pos          # (B, 4 + N, D)
        h = self.body(x, "bidirectional")                                              # (B, 4 + N, D)
        return self.head(h[:, self.n_prompt:])                                         # (B, N, K)


# ----------------------------------------------------------------------------- decoding

@dataclass
class Decoded:
    """What :func:`decode` returns.

    tokens: (B, N) int64, the image tokens (the last step's samples).
    order: (B, N) int64, the step (0 .. steps-1) at which each position was decided.
    guesses: (steps, B, N) int64, every step's samples at all positions (decided ones kept), i.e. the
        model's whole picture at that step; ``guesses[s]`` where ``order <= s`` is what was decided.
    masked: list of steps + 1 ints, the number of masked tokens per image before step 0, after step 0, ...
    nfe: forward passes of the transformer per image (= steps; with guidance the conditional and the
        null-prompt rows run in the same batched pass).
    """
    tokens: torch.Tensor
    order: torch.Tensor
    guesses: torch.Tensor
    masked: list
    nfe: int


def gumbel(shape, generator=None, device=None) -> torch.Tensor:
    """Standard Gumbel noise -log(-log u), u ~ U(0, 1) (clamped away from 0 and 1), drawn on the CPU
    from ``generator`` (the same noise on every device), then moved to ``device``."""
    checks.generator(generator)
    u = torch.rand(shape, generator=generator, dtype=torch.float64).clamp(1e-30, 1 - 1e-12)
    return (-torch.log(-torch.log(u))).float().to(device)


def choose_to_mask(confidence: torch.Tensor, unknown: torch.Tensor, n_mask: int) -> torch.Tensor:
    """(B, N) bool, True = masked again: the ``n_mask`` least confident positions of each row among
    the still-unknown ones; known positions get confidence +inf and are never chosen
    (``parallel_decode.py``, ``mask_by_random_topk``). ``n_mask`` must be in [0, the fewest unknown
    positions of a row]: more would mask decided tokens again."""
    checks.tensor(confidence, "confidence", ndim=2, floating=True, shape="(B, N)")
    checks.bool_mask(unknown, "unknown", tuple(confidence.shape), "confidence.shape, True = not decided")
    n_mask = checks.positive_int(n_mask, "n_mask", 0)
    if unknown.device.type != "meta" and unknown.numel():
        fewest = int(unknown.sum(1).min())
        if n_mask > fewest:
            raise ValueError(f"n_mask: expected at most {fewest}, the fewest unknown positions in a row, got "
                             f"{n_mask} (more would mask decided tokens again)")
    conf = torch.where(unknown, confidence, torch.full_like(confidence, float("inf")))          # (B, N)
    if n_mask <= 0:
        return torch.zeros_like(unknown)
    lowest = conf.topk(n_mask, dim=1, largest=False).indices                                      # (B, n)
    return torch.zeros_like(unknown).scatter(1, lowest, True)


@torch.no_grad()
def logits_with_guidance(model: MaskGIT, tokens: torch.Tensor, prompts: torch.Tensor, *,
                         cfg_scale: float = 1.0) -> torch.Tensor:
    """Logits (B, N, K); with ``cfg_scale`` != 1 the conditional and null-prompt rows run as one batch
    and combine as uncond + scale * (cond - uncond) (Ho & Salimans 2022, on logits)."""
    if checks.number(cfg_scale, "cfg_scale") == 1.0:
        return model(tokens, prompts)
    rows = prompt_lib.with_null(prompts, guided=True)                                          # (2B, 4)
    both = model(torch.cat([tokens, tokens]), rows)                                             # (2B, N, K)
    cond, uncond = both.chunk(2)
    return prompt_lib.cfg_logits(cond, uncond, cfg_scale)


@torch.no_grad()
def generate(model: MaskGIT, prompts: torch.Tensor, *, steps: int = 8, cfg_scale: float = 1.0,
             choice_temperature: float = CHOICE_TEMPERATURE, temperature: float = 1.0,
             generator: torch.Generator | None = None) -> Decoded:
    """Generate tokens for ``prompts`` (B, 4) in ``steps`` parallel steps (paper §3.2; official
    ``parallel_decode.py`` ``decode``). Start with every image token [MASK]; n_start = N. At step t:

    1. logits for all positions (with guidance), sample ``sampled ~ Categorical(softmax(logits / T))``
       at every position (by the Gumbel-max trick: argmax of log p + Gumbel noise, an exact sample),
       and keep the already-decided tokens as they are;
    2. ratio = (t + 1) / steps; the number to keep masked for the next step,
       :func:`masked_after_step` = floor(n_start * gamma(ratio)) clipped to [1, unknown - 1];
    3. confidence = log p(sampled token) + choice_temperature * (1 - ratio) * Gumbel noise;
    4. decided positions get confidence +inf: never re-masked;
    5. mask again the least confident unknown positions (:func:`choose_to_mask`).
    The last step keeps all its samples: they are the output. ``generator``: a CPU
    ``torch.Generator`` (all noise is drawn on the CPU, so a seed gives the same tokens everywhere).
    """
    prompts = prompt_lib.check_prompts(prompts)
    checks.same_device(model, prompts, "prompts")
    cfg_scale, temperature, steps, generator = checks.sampling(
        cfg_scale=cfg_scale, temperature=temperature, steps=steps, generator=generator)
    checks.number(choice_temperature, "choice_temperature", low=0.0)
    checks.number(temperature, "temperature", low=1e-6)
    with runtime.evaluating(model):        # the caller's train/eval mode comes back after
        B, N, dev = prompts.shape[0], model.cfg.n_tokens, prompts.device
        tokens = torch.full((B, N), model.cfg.mask_id, dtype=torch.long, device=dev)               # (B, N)
        order = torch.full((B, N), -1, dtype=torch.long, device=dev)
        unknown = torch.ones(B, N, dtype=torch.bool, device=dev)
        guesses, masked = [], [N]
        for t in range(steps):
            logits = logits_with_guidance(model, tokens, prompts, cfg_scale=cfg_scale) / temperature         # (B, N, K)
            logp = F.log_softmax(logits.float(), -1)                                              # (B, N, K)
            sampled = (logp + gumbel(logp.shape, generator, dev)).argmax(-1)                       # (B, N) ~ softmax
            sampled = torch.where(unknown, sampled, tokens)                                        # keep decided
            guesses.append(sampled)
            ratio = (t + 1) / steps
            n_mask = masked_after_step(t, steps, N, int(unknown.sum(1).max()))
            confidence = logp.gather(-1, sampled[..., None])[..., 0]                                  # (B, N)
            confidence = confidence + choice_temperature * (1 - ratio) * gumbel((B, N), generator, dev)
            still = choose_to_mask(confidence, unknown, n_mask)                                     # (B, N)
            order = torch.where(unknown & ~still, torch.full_like(order, t), order)
            tokens = torch.where(still, torch.full_like(tokens, model.cfg.mask_id), sampled)
            unknown = still
            masked.append(int(still.sum(1)[0]))
        return Decoded(tokens, order, torch.stack(guesses), masked, steps)


decode = generate            # the paper's name for it: "iterative decoding"
