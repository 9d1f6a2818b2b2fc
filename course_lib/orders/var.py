"""Next-scale prediction: VAR (Tian et al. 2024, "Visual Autoregressive Modeling: Scalable Image
Generation via Next-Scale Prediction"; official code FoundationVision/VAR).

Two pieces, at course scale:

* :class:`MultiScaleVQ`: the multi-scale residual quantizer of VAR's tokenizer (paper §3.2,
  Algorithm 1; ``VectorQuantizer2`` in models/quant.py). One codebook shared by every scale. With
  f the encoder's (h, w) latent map, f_rest = f and f_hat = 0, for each scale k of side p_k:
  r_k = area-downsample(f_rest, p_k), codes_k = nearest codes of r_k, h_k = phi_k(bicubic-upsample
  (embed(codes_k), h)), f_hat += h_k, f_rest -= h_k. phi_k(h) = (1 - 0.5) h + 0.5 conv3x3(h), the
  refinement convolution (quant.py ``Phi``); scale k of S uses the phi whose tick is nearest to
  k / (S - 1), ticks linspace(1/(3n), 1 - 1/(3n), n) for n = 4 phis and linspace(1/(2n), 1 - 1/(2n), n)
  for any other n, in float64, the first of a tie (``PhiPartiallyShared``: :func:`phi_indices`). The last scale
  neither down- nor up-samples. Loss: mean over scales of beta |sg(f_hat) - f|^2 + |f_hat - sg(f)|^2
  with the running f_hat, beta = 0.25, and the straight-through f + sg(f_hat - f).
* :class:`NextScaleTransformer`: a transformer over [prompt tokens | start token | scale 2 inputs |
  ... | scale S inputs] with a block-causal mask (a token sees its own scale and every earlier one,
  full attention inside a scale: var.py ``attn_bias_for_masking``). The input for scale k + 1 is the
  running reconstruction f_hat after scales 1..k, area-downsampled to scale k + 1's size (quant.py
  ``idxBl_to_var_input``), through a linear ``word_embed``; every token gets a learned position and
  a level (scale) embedding (var.py L51-77). :class:`VAR` adds the classification head over the
  shared codebook; :func:`generate` runs one forward pass per scale with classifier-free guidance
  ramped over the scales, logits = (1 + t) cond - t uncond, t = cfg k / (S - 1) (var.py
  ``autoregressive_infer_cfg``).

What the course simplifies: scales (1, 2, 3, 4) on a 4x4 latent map instead of ten scales up to
16x16; a codebook of a few hundred codes (notebook 06: 256 of size 8) instead of 4096 x 32; a tiny
pre-LN transformer with the prompt as four prefix tokens (VAR conditions on the class through a start
token and AdaLN in every block); no KV cache (each of the S passes re-reads the prefix, so the count
of forward passes is still S); dead codes of the small codebook are restarted from the batch's
residuals (VAR has no restarts; its 4096 codes are trained on ImageNet).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from course_lib import checks, runtime
from course_lib.nets.sampling import sample_logits
from course_lib.nets.transformer import Config, Transformer, make_mask
from course_lib.orders.prompt import N_PROMPT, PromptEmbedding, cfg_logits, check_prompts, with_null
from course_lib.tokens.vq import QuantOut, Quantizer, dead_code_threshold, nearest_code

def check_scales(scales) -> tuple[int, ...]:
    """Scale sides, strictly increasing positive ints, e.g. (1, 2, 3, 4)."""
    scales = tuple(scales)
    if not scales or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in scales) \
            or any(b <= a for a, b in zip(scales, scales[1:])):
        raise ValueError(f"scales: expected strictly increasing positive ints such as (1, 2, 3, 4), got {scales}")
    return scales


def area_down(x: torch.Tensor, side: int) -> torch.Tensor:
    """(B, D, H, W) -> (B, D, side, side) by area averaging (VAR and Infinity both go down by area)."""
    return x if x.shape[-1] == side else F.interpolate(x, size=(side, side), mode="area")


def upsample(x: torch.Tensor, side: int, mode: str = "bicubic") -> torch.Tensor:
    """(B, D, p, p) -> (B, D, side, side); VAR upsamples bicubically, Infinity (tri)linearly."""
    return x if x.shape[-1] == side else F.interpolate(x, size=(side, side), mode=mode)


def phi_indices(n_phi: int, n_scales: int) -> list[int]:
    """Which of ``n_phi`` refinement convs each of ``n_scales`` scales uses, as VAR's quant.py
    ``PhiPartiallyShared`` (and ``PhiNonShared``): ticks ``np.linspace(1/3/K, 1-1/3/K, K)`` when K = 4,
    else ``np.linspace(1/2/K, 1-1/2/K, K)``, in float64; scale si takes ``argmin |ticks - si/(SN-1)|``
    (numpy's argmin: the first of a tie, and with VAR's 10 scales k/9 falls on a tie at k = 2 and 7, so
    the float64 arithmetic decides). One scale (VAR would divide by zero) uses the tick nearest to 0."""
    K = checks.positive_int(n_phi, "n_phi")
    S = checks.positive_int(n_scales, "n_scales")
    ticks = np.linspace(1 / 3 / K, 1 - 1 / 3 / K, K) if K == 4 else np.linspace(1 / 2 / K, 1 - 1 / 2 / K, K)
    return [int(np.argmin(np.abs(ticks - si / max(S - 1, 1)))) for si in range(S)]


class Phi(nn.Module):
    """VAR's refinement conv: phi(h) = (1 - ratio) h + ratio conv3x3(h), ratio 0.5 (quant.py ``Phi``)."""

    def __init__(self, dim: int, ratio: float = 0.5):
        super().__init__()
        self.conv, self.ratio = nn.Conv2d(dim, dim, 3, padding=1), ratio

    def forward(self, h):                                                            # (B, D, H, W)
        return (1 - self.ratio) * h + self.ratio * self.conv(h)


class MultiScaleVQ(Quantizer):
    """VAR's multi-scale residual quantizer (module docstring) over a (B, S_last, S_last, dim) latent.

    codebook_size K codes of size ``dim``, one codebook for every scale; ``scales`` the sides;
    ``n_phi`` refinement convs shared across scales as VAR's ``share_quant_resi``; ``beta`` 0.25.
    ``restart``: in training, codes whose EMA usage (decay 0.99) falls under
    :func:`~course_lib.tokens.vq.dead_code_threshold` are moved onto random residual vectors of the
    batch (a course addition: a tiny codebook collapses without it). Codes come out flattened
    scale by scale: (B, L) with L = sum p_k^2 (VAR's ``idx_Bl``); :meth:`split` undoes it.
    """

    def __init__(self, codebook_size: int = 64, dim: int = 8, scales=(1, 2, 3, 4), n_phi: int = 4,
                 beta: float = 0.25, restart: bool = True, seed: int = 0):
        super().__init__()
        self.codebook_size = checks.positive_int(codebook_size, "codebook_size", 2)
        self.dim = checks.positive_int(dim, "dim")
        self.scales = check_scales(scales)
        self.beta, self.restart, self.seed, self.restarts = beta, restart, seed, 0
        g = torch.Generator().manual_seed(seed)
        self.codebook = nn.Parameter(torch.randn(codebook_size, dim, generator=g) / math.sqrt(dim))
        self.phis = nn.ModuleList(Phi(dim) for _ in range(checks.positive_int(n_phi, "n_phi")))
        self.phi_ids = phi_indices(n_phi, len(self.scales))                        # scale k -> its phi
        self.register_buffer("usage_ema", torch.ones(codebook_size))

    @property
    def n_tokens(self) -> int:
        return sum(p * p for p in self.scales)

    def phi(self, k: int) -> Phi:
        """The refinement conv of scale k: the one whose tick is nearest to k / (S - 1) (:func:`phi_indices`)."""
        return self.phis[self.phi_ids[k]]

    def embed(self, k: int, codes_k: torch.Tensor) -> torch.Tensor:
        """Scale k's codes (B, p_k, p_k) -> its contribution h_k = phi_k(up(e[codes])) (B, D, H, H)."""
        e = self.codebook[codes_k].permute(0, 3, 1, 2)                             # (B, D, p, p)
        return self.phi(k)(upsample(e, self.scales[-1]))                           # (B, D, H, H)

    def split(self, codes: torch.Tensor) -> list[torch.Tensor]:
        """(B, L) flat codes -> one (B, p_k, p_k) tensor per scale. Codes must lie in the codebook
        (a negative index would silently read a code from the end)."""
        checks.tensor(codes, "codes", ndim=2, floating=False, shape=f"(B, {self.n_tokens})")
        if codes.shape[1] != self.n_tokens:
            raise ValueError(f"codes: expected (B, {self.n_tokens}) (sum of p^2 over scales {self.scales}), "
                             f"got {tuple(codes.shape)}")
        checks.rows(codes, "codes")
        checks.index_range(codes, "codes", self.codebook_size)
        parts = codes.split([p * p for p in self.scales], dim=1)
        return [c.reshape(-1, p, p) for c, p in zip(parts, self.scales)]

    def _check_latent(self, z):
        self.check_input(z)
        H = self.scales[-1]
        if z.dim() != 4 or z.shape[1:3] != (H, H):
            raise ValueError(f"z: expected a latent map (B, {H}, {H}, {self.dim}) (the last scale is "
                             f"{H}), got {tuple(z.shape)}")
        checks.finite(z, "z")                        # a NaN is nearest to no code: it would become code 0

    def forward(self, z: torch.Tensor) -> QuantOut:
        """z (B, H, H, D) channel last -> QuantOut(z_q (B, H, H, D), codes (B, L), loss, stats)."""
        self._check_latent(z)
        f = z.permute(0, 3, 1, 2)                                                   # (B, D, H, H)
        f_rest, f_hat = f.detach().clone(), torch.zeros_like(f)
        loss, codes, rests = f.new_zeros(()), [], []
        for k, p in enumerate(self.scales):
            r = area_down(f_rest, p).permute(0, 2, 3, 1)                            # (B, p, p, D)
            idx = nearest_code(r, self.codebook)                                   # (B, p, p)
            h = self.embed(k, idx)                                                 # (B, D, H, H)
            f_hat = f_hat + h
            f_rest = f_rest - h.detach()
            loss = loss + self.beta * (f_hat.detach() - f).pow(2).mean() + (f_hat - f.detach()).pow(2).mean()
            codes.append(idx.flatten(1))
            rests.append(r.reshape(-1, self.dim).detach())
        codes = torch.cat(codes, 1)                                                 # (B, L)
        terms = {}
        if self.training and self.restart:
            terms["restarted"] = self._restart_dead(codes, torch.cat(rests))
        z_q = (f + (f_hat - f).detach()).permute(0, 2, 3, 1)                       # STE, (B, H, H, D)
        return QuantOut(z_q, codes, loss / len(self.scales), self.code_stats(codes, **terms))

    @torch.no_grad()
    def _restart_dead(self, codes: torch.Tensor, vectors: torch.Tensor) -> int:
        counts = torch.bincount(codes.flatten(), minlength=self.codebook_size).float()
        self.usage_ema.mul_(0.99).add_(counts, alpha=0.01)
        dead = self.usage_ema < dead_code_threshold(codes.numel(), self.codebook_size)
        n = int(dead.sum())
        if n:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.restarts)
            self.restarts += 1
            pick = torch.randint(vectors.shape[0], (n,), generator=g).to(vectors.device)
            self.codebook.data[dead] = vectors[pick].to(self.codebook.dtype)
            self.usage_ema[dead] = dead_code_threshold(codes.numel(), self.codebook_size)
        return n

    @torch.no_grad()
    def encode_scales(self, z: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Latent (B, H, H, D) -> (codes (B, L), the running reconstruction f_hat after each scale,
        a list of S tensors (B, H, H, D)): the residual picture, each scale adding detail."""
        self._check_latent(z)
        f_rest = z.permute(0, 3, 1, 2).clone()                                      # (B, D, H, H)
        f_hat, codes, partial = torch.zeros_like(f_rest), [], []
        for k, p in enumerate(self.scales):
            idx = nearest_code(area_down(f_rest, p).permute(0, 2, 3, 1), self.codebook)  # (B, p, p)
            h = self.embed(k, idx)
            f_hat, f_rest = f_hat + h, f_rest - h
            codes.append(idx.flatten(1))
            partial.append(f_hat.permute(0, 2, 3, 1))
        return torch.cat(codes, 1), partial

    @torch.no_grad()
    def teacher_inputs(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, L) -> the transformer's inputs for scales 2..S, (B, L - p_1^2, D): for scale
        k + 1 the running f_hat after scales 1..k, area-downsampled to p_{k+1} (VAR §3.2, not the
        embeddings of scale k's tokens)."""
        parts = self.split(codes)
        f_hat = self.codebook.new_zeros(codes.shape[0], self.dim, self.scales[-1], self.scales[-1])
        out = []
        for k, p_next in enumerate(self.scales[1:]):
            f_hat = f_hat + self.embed(k, parts[k])
            out.append(area_down(f_hat, p_next).flatten(2).transpose(1, 2))        # (B, p^2, D)
        return torch.cat(out, 1) if out else f_hat.new_zeros(codes.shape[0], 0, self.dim)

    @torch.no_grad()
    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, L) -> the latent f_hat (B, H, H, D) the decoder takes."""
        return sum(self.embed(k, c) for k, c in enumerate(self.split(codes))).permute(0, 2, 3, 1)


class NextScaleTransformer(nn.Module):
    """The body shared by VAR and Infinity (module docstring): [4 prompt tokens | start | inputs of
    scales 2..S] -> block-causal transformer -> (B, L, d_out) outputs at the L image positions.

    d_in: size of an input vector (the latent's channels); d_out: the head's outputs per position
    (K logits for VAR, d bit logits for Infinity); cfg: the transformer's sizes.
    """

    def __init__(self, d_in: int, d_out: int, scales=(1, 2, 3, 4), cfg: Config | None = None):
        super().__init__()
        self.scales = check_scales(scales)
        self.cfg = cfg = cfg or Config(d_model=128, n_layer=4, n_head=4)
        self.d_in, self.d_out = d_in, d_out
        L, D = sum(p * p for p in self.scales), cfg.d_model
        self.prompt = PromptEmbedding(D)
        self.start = nn.Parameter(torch.randn(1, 1, D) * 0.02)                   # VAR's pos_start
        self.word_embed = nn.Linear(d_in, D)
        self.pos = nn.Parameter(torch.randn(1, L, D) * 0.02)
        self.level = nn.Embedding(len(self.scales), D)
        nn.init.normal_(self.level.weight, std=0.02)
        self.register_buffer("level_ids", torch.repeat_interleave(
            torch.arange(len(self.scales)), torch.tensor([p * p for p in self.scales])), persistent=False)
        self.body = Transformer(cfg)
        self.head = nn.Linear(D, d_out)
        nn.init.normal_(self.head.weight, std=0.02)

    def blocks(self, n_scales: int) -> list[int]:
        """Block lengths of the sequence up to scale n_scales: [prompt, p_1^2, ..., p_n^2]."""
        return [N_PROMPT] + [p * p for p in self.scales[:n_scales]]

    def mask(self, n_scales: int | None = None, device=None) -> torch.Tensor:
        """The (T, T) block-causal mask (True = may attend) of the sequence up to n_scales scales."""
        return make_mask("block_causal", blocks=self.blocks(n_scales or len(self.scales)), device=device)

    def forward(self, inputs: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
        """inputs (B, n, d_in): the inputs of scales 2..k (n = p_2^2 + ... + p_k^2, 0 for scale 1
        only); prompts (B, 4) int64 (null ids allowed). Returns (B, p_1^2 + n, d_out)."""
        checks.tensor(inputs, "inputs", ndim=3, floating=True, shape=f"(B, n, {self.d_in})")
        if inputs.shape[2] != self.d_in:
            raise ValueError(f"inputs: expected shape (B, n, {self.d_in}) (the model's d_in: the quantizer's dim), "
                             f"got {tuple(inputs.shape)}")
        checks.rows(inputs, "inputs")
        checks.same_place(self, inputs, "inputs")
        prompts = check_prompts(prompts)
        ends = torch.tensor([p * p for p in self.scales]).cumsum(0).tolist()        # [1, 5, 14, 30]
        n = self.scales[0] ** 2 + inputs.shape[1]
        if n not in ends:
            raise ValueError(f"inputs: expected the inputs of whole scales, lengths "
                             f"{[e - self.scales[0] ** 2 for e in ends]}, got {inputs.shape[1]}")
        checks.same_rows(prompts, "prompts", inputs.shape[0], "inputs")
        B = inputs.shape[0]
        x = torch.cat([self.start.expand(B, -1, -1), self.word_embed(inputs)], 1)   # (B, n, D)
        x = x + self.pos[:, :n] + self.level(self.level_ids[:n])
        x = torch.cat([self.prompt(prompts), x], 1)                                 # (B, 4 + n, D)
        h = self.body(x, self.mask(ends.index(n) + 1, x.device))
        return self.head(h[:, N_PROMPT:])                                           # (B, n, d_out)


class VAR(NextScaleTransformer):
    """VAR's transformer: a softmax over the shared codebook's K codes at every position."""

    def __init__(self, codebook_size: int, dim: int, scales=(1, 2, 3, 4), cfg: Config | None = None):
        super().__init__(dim, codebook_size, scales, cfg)

    def loss(self, codes: torch.Tensor, inputs: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
        """Cross-entropy over all L tokens, each weighted equally (VAR trainer.py). codes (B, L) the
        targets in 0..K-1, inputs (B, L - p_1^2, D) their teacher-forcing inputs
        (:meth:`MultiScaleVQ.teacher_inputs`), prompts (B, 4)."""
        L = sum(p * p for p in self.scales)
        checks.tensor(codes, "codes", ndim=2, floating=False, shape=f"(B, {L}) int64")
        if codes.shape[1] != L:
            raise ValueError(f"codes: expected shape (B, {L}), every scale's codes, got {tuple(codes.shape)}")
        checks.tensor(inputs, "inputs", ndim=3, floating=True, shape=f"(B, {L - self.scales[0] ** 2}, {self.d_in})")
        checks.same_rows(codes, "codes", inputs.shape[0], "inputs")
        checks.index_range(codes, "codes", self.d_out)
        logits = self(inputs, prompts)                                              # (B, L, K)
        return F.cross_entropy(logits.reshape(-1, self.d_out), codes.reshape(-1))


def guidance_scale(cfg: float, k: int, n_scales: int) -> float:
    """VAR's ramp in the course's u + s (c - u) form: s = 1 + cfg k / (S - 1), no guidance at the
    first scale, 1 + cfg at the last ((1 + t) c - t u with t = cfg k / (S - 1), var.py L172-173)."""
    return 1.0 + cfg * k / max(n_scales - 1, 1)


def check_parts(model: NextScaleTransformer, quantizer, name: str = "quantizer") -> None:
    """The quantizer must be the model's: the same scales, its vectors the model's inputs and (VAR)
    its codebook the model's classes."""
    if tuple(quantizer.scales) != tuple(model.scales) or quantizer.dim != model.d_in:
        raise ValueError(f"{name}: expected scales {model.scales} and dim {model.d_in} (the model's), got "
                         f"scales {tuple(quantizer.scales)} and dim {quantizer.dim}")
    if isinstance(model, VAR) and quantizer.codebook_size != model.d_out:
        raise ValueError(f"{name}: expected a codebook of {model.d_out} codes (the model's classes), got "
                         f"{quantizer.codebook_size}")


@torch.no_grad()
def generate(model: VAR, quantizer: MultiScaleVQ, prompts: torch.Tensor, *, cfg_scale: float = 2.5,
             temperature: float = 1.0, top_k: int | None = None,
             generator: torch.Generator | None = None) -> dict:
    """Draw one latent per prompt in S forward passes, one per scale, coarse to fine.

    prompts (N, 4) int64; cfg_scale: the guidance weight w at the LAST scale, ramped linearly from
    1 at the first (:func:`guidance_scale` with VAR's t = w - 1: the default 2.5 is VAR's cfg 1.5);
    w = 1: no guidance, one pass over N rows per scale, else over 2N rows, prompt and null prompt.
    Returns {"latent": f_hat (N, H, H, D) for the decoder, "codes": (N, L), "nfe": forward passes}.
    """
    prompts = check_prompts(prompts)
    checks.same_device(model, prompts, "prompts")
    check_parts(model, quantizer)
    cfg_scale, temperature, _, generator = checks.sampling(cfg_scale=cfg_scale, temperature=temperature,
                                                           generator=generator)
    checks.number(temperature, "temperature", 1e-6)
    with runtime.evaluating(model):        # the caller's train/eval mode comes back after
        N, S, H = prompts.shape[0], len(model.scales), model.scales[-1]
        cfg = cfg_scale - 1.0                                                         # VAR's t at the last scale
        rows = with_null(prompts, cfg != 0)                                           # (N or 2N, 4)
        f_hat = quantizer.codebook.new_zeros(N, quantizer.dim, H, H)                  # (N, D, H, H)
        inputs = f_hat.new_zeros(rows.shape[0], 0, quantizer.dim)
        codes, nfe, start = [], 0, 0
        for k, p in enumerate(model.scales):
            out = model(inputs, rows)[:, start:start + p * p]                          # (rows, p^2, K)
            nfe += 1
            logits = out if cfg == 0 else cfg_logits(out[:N], out[N:], guidance_scale(cfg, k, S))
            idx = sample_logits(logits, temperature, top_k, generator).reshape(N, p, p)
            f_hat = f_hat + quantizer.embed(k, idx)
            codes.append(idx.flatten(1))
            start += p * p
            if k + 1 < S:
                nxt = area_down(f_hat, model.scales[k + 1]).flatten(2).transpose(1, 2)  # (N, p'^2, D)
                inputs = torch.cat([inputs, nxt if cfg == 0 else torch.cat([nxt, nxt])], 1)
        return {"latent": f_hat.permute(0, 2, 3, 1), "codes": torch.cat(codes, 1), "nfe": nfe}
