"""Infinity's bits: next-scale prediction over binary tokens (Han et al. 2024, "Infinity: Scaling
Bitwise AutoRegressive Modeling for High-Resolution Image Synthesis"; official code
FoundationVision/Infinity).

* :class:`MultiScaleBSQ`: VAR's residual scales with BSQ in place of the codebook (paper §3.1;
  infinity/models/bsq_vae/multiscale_bsq.py). Per scale k: r_k = area-downsample(residual, p_k),
  BSQ-quantize it (u = r / |r|, u_hat = sign(u) / sqrt(d): d bits, an implicit vocabulary of 2^d,
  :func:`course_lib.tokens.bitwise.bsq_quantize`), upsample back, residual -= sg(quantized),
  f_hat += quantized. Down by area (``z_interplote_down``), up (tri)linearly (``z_interplote_up``;
  bilinear on images), and no phi conv.
* :class:`Infinity`: the block-causal transformer of :mod:`course_lib.orders.var` with the
  Infinite-Vocabulary Classifier (§3.2): the head predicts d bits per position, not one of 2^d
  classes; the loss is the per-bit cross-entropy averaged over the d bits (``bitloss_type='mean'``),
  then a weighted sum over tokens (:func:`scale_weights`, trainer.py ``train_step``): with
  ``reweight_loss_by_scale`` (on in Infinity's train.sh, and here by default) a token of scale k
  weighs sqrt(area_last / area_k), normalised to sum 1, so a scale's share of the loss grows with its
  side (1 : 2 : 3 : 4 at the course's scales); without it every token weighs 1 / L.
  Infinity's head has 2 logits per bit (a two-way softmax); here 1 logit per bit, the same family
  (the two-way softmax depends only on the difference of its logits) with half the head.
  :func:`head_parameters` counts the head both ways.
* :func:`self_correct`: Bitwise Self-Correction (§3.3; infinity/models/bitwise_self_correction.py).
  During training, walk the scales with the running sum cum = 0: the label of scale k is the bits
  of the residual f - cum (drawn BEFORE any flip); then flip each bit with probability p_k, p_k
  uniform on {0, 0.01, ..., p_max} drawn once per scale and batch, and add the FLIPPED codes to cum.
  The next residual, and so the next scale's labels, come from the corrupted cum: later scales
  learn to correct the errors of earlier ones. p_max = 0.3 as Infinity's training script.
* The transformer's input for scale k + 1 (:func:`next_input`, in training and in :func:`generate`)
  is cum resized to p_{k+1} x p_{k+1} with the UPsampling mode, ``F.interpolate(cum, size,
  mode=z_interplote_up)`` (trilinear over (T, H, W), bilinear for an image) in both
  ``flip_requant`` and ``autoregressive_infer_cfg``, not by area as VAR's inputs (the BSQ module's
  own forward goes down by area; Infinity trains and samples through ``flip_requant``'s form). At
  the course's scales 4x4 -> 2x2 is the same either way (the mean of each 2x2 block); 4x4 -> 3x3 differs.

What the course simplifies: d = 8 bits (a vocabulary of 256) on a 4x4 latent with scales
(1, 2, 3, 4), against Infinity's 32-64 bits, 13 scales and a 2B-parameter transformer conditioned
on Flan-T5 text features; here the prompt is 4 condition tokens; guidance is constant over scales.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from course_lib import checks, runtime
from course_lib.nets.transformer import Config
from course_lib.orders.prompt import cfg_logits, check_prompts, with_null
from course_lib.orders.var import NextScaleTransformer, area_down, check_parts, check_scales, upsample
from course_lib.tokens.bitwise import BSQ, bits_to_index
from course_lib.tokens.vq import QuantOut, Quantizer

UP = "bilinear"          # Infinity's trilinear on (T, H, W) is bilinear on one image


def bits_to_codes(bits: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    """(..., d) bits in {0, 1} -> BSQ codes (2 b - 1) / sqrt(d), on the unit sphere."""
    return (2 * bits.to(dtype) - 1) / math.sqrt(bits.shape[-1])


class MultiScaleBSQ(Quantizer):
    """Infinity's multi-scale bitwise quantizer (module docstring) over (B, H, H, d) latents.

    d = ``dim`` bits per token, ``scales`` the sides (the last one H); BSQ keywords (beta,
    entropy_weight, ...) go to :class:`course_lib.tokens.bitwise.BSQ`, applied at every scale.
    forward returns codes (B, L) of 2^d-ary indices, flattened scale by scale.
    """

    def __init__(self, dim: int = 8, scales=(1, 2, 3, 4), **bsq_kwargs):
        super().__init__()
        self.dim = checks.positive_int(dim, "dim")
        self.scales = check_scales(scales)
        # Infinity's tokenizer quantizes with quantize_new: the straight-through step on the scaled code
        # (identity gradient), not bsq-vit's step on the sign (multiscale_bsq.py)
        self.bsq = BSQ(dim, **{"ste": "code", **bsq_kwargs})
        self.codebook_size = self.bsq.codebook_size

    @property
    def n_tokens(self) -> int:
        return sum(p * p for p in self.scales)

    def _check_latent(self, z):
        self.check_input(z)
        H = self.scales[-1]
        if z.dim() != 4 or z.shape[1:3] != (H, H):
            raise ValueError(f"z: expected a latent map (B, {H}, {H}, {self.dim}), got {tuple(z.shape)}")
        checks.finite(z, "z")                        # a NaN compares > 0 as False: it would become all-zero bits

    def forward(self, z: torch.Tensor) -> QuantOut:
        self._check_latent(z)
        H = self.scales[-1]
        residual = z.permute(0, 3, 1, 2)                                            # (B, d, H, H)
        f_hat, loss, codes = torch.zeros_like(residual), z.new_zeros(()), []
        for p in self.scales:
            out = self.bsq(area_down(residual, p).permute(0, 2, 3, 1))               # z_q (B, p, p, d)
            q = upsample(out.z_q.permute(0, 3, 1, 2), H, UP)                        # (B, d, H, H)
            residual = residual - q.detach()
            f_hat = f_hat + q
            loss = loss + out.loss
            codes.append(out.codes.flatten(1))
        codes = torch.cat(codes, 1)                                                 # (B, L)
        return QuantOut(f_hat.permute(0, 2, 3, 1), codes, loss / len(self.scales), self.code_stats(codes))

    def codes_of(self, k: int, bits_k: torch.Tensor) -> torch.Tensor:
        """Scale k's bits (B, p^2, d) -> its contribution to f_hat, upsampled (B, d, H, H)."""
        p = self.scales[k]
        c = bits_to_codes(bits_k).transpose(1, 2).reshape(-1, self.dim, p, p)      # (B, d, p, p)
        return upsample(c, self.scales[-1], UP)

    @torch.no_grad()
    def encode_scales(self, z: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Latent (B, H, H, d) -> (bits (B, L, d) long, f_hat after each scale: S tensors (B, H, H, d))."""
        out = self_correct(self, z, p_max=0.0)
        partial, f_hat, start = [], 0, 0
        for k, p in enumerate(self.scales):
            f_hat = f_hat + self.codes_of(k, out.labels[:, start:start + p * p])
            partial.append(f_hat.permute(0, 2, 3, 1))
            start += p * p
        return out.labels, partial

    @torch.no_grad()
    def decode_bits(self, bits: torch.Tensor) -> torch.Tensor:
        """bits (B, L, d) -> latent f_hat (B, H, H, d)."""
        check_bits(bits, "bits", self.n_tokens, self.dim)
        parts = bits.split([p * p for p in self.scales], dim=1)
        return sum(self.codes_of(k, b) for k, b in enumerate(parts)).permute(0, 2, 3, 1)


@dataclass
class SelfCorrection:
    """What :func:`self_correct` returns for one batch.

    labels: (B, L, d) long, the bits each scale must predict (of the residual left by the
        CORRUPTED earlier scales, never flipped themselves);
    used: (B, L, d) long, the bits that went into the running sum (labels with flips);
    inputs: (B, L - p_1^2, d), the transformer's inputs for scales 2..S (cum resized, :func:`next_input`);
    p: the flip probability drawn per scale (S floats, 0 where no flip).
    """
    labels: torch.Tensor
    used: torch.Tensor
    inputs: torch.Tensor
    p: list


@torch.no_grad()
def self_correct(quantizer: MultiScaleBSQ, z: torch.Tensor, p_max: float = 0.3,
                 generator: torch.Generator | None = None) -> SelfCorrection:
    """Bitwise self-correction on latents z (B, H, H, d) (module docstring); p_max = 0 gives the
    plain teacher-forcing labels and inputs. Draws on ``generator`` (CPU); the last scale is never
    flipped (nothing comes after it)."""
    quantizer._check_latent(z)
    p_max = checks.number(p_max, "p_max", 0.0, 1.0)
    f = z.permute(0, 3, 1, 2).float()                                             # (B, d, H, H)
    S = len(quantizer.scales)
    cum, labels, used, inputs, ps = torch.zeros_like(f), [], [], [], []
    for k, p in enumerate(quantizer.scales):
        r = area_down(f - cum, p)                                                   # (B, d, p, p)
        bits = (r > 0).long().flatten(2).transpose(1, 2)                            # (B, p^2, d), label
        labels.append(bits)
        pk = 0.0
        if p_max > 0 and k < S - 1:
            pk = int(torch.randint(0, int(round(100 * p_max)) + 1, (1,), generator=generator)) / 100
            flip = (torch.rand(bits.shape, generator=generator) < pk).to(bits.device)
            bits = bits ^ flip.long()
        ps.append(pk)
        used.append(bits)
        cum = cum + quantizer.codes_of(k, bits).to(f.dtype)
        if k + 1 < S:
            inputs.append(next_input(cum, quantizer.scales[k + 1]))                 # (B, p'^2, d)
    empty = f.new_zeros(f.shape[0], 0, quantizer.dim)
    return SelfCorrection(torch.cat(labels, 1), torch.cat(used, 1),
                          torch.cat(inputs, 1) if inputs else empty, ps)


def scale_weights(scales, reweight_loss_by_scale: bool = True) -> torch.Tensor:
    """(L,) token weights summing to 1, as Infinity's trainer.py: with ``reweight_loss_by_scale``
    a token of scale k weighs sqrt(area_last) / sqrt(area_k) (= p_last / p_k) before normalising, so
    scale k's share of the loss is proportional to its side p_k; without it every token weighs 1 / L
    (each scale's share its area)."""
    scales = check_scales(scales)
    w = torch.cat([torch.full((p * p,), scales[-1] / p if reweight_loss_by_scale else 1.0) for p in scales])
    return w / w.sum()


def next_input(cum: torch.Tensor, side: int) -> torch.Tensor:
    """The transformer's input for the next scale (module docstring): the running sum cum
    (B, d, H, H) resized to side x side with Infinity's ``z_interplote_up`` (bilinear on an image),
    flattened to (B, side^2, d)."""
    return F.interpolate(cum, size=(side, side), mode=UP).flatten(2).transpose(1, 2)


def check_bits(bits, name: str, n_tokens: int, dim: int) -> torch.Tensor:
    """(B, L, d) integer bits, every one 0 or 1, B >= 1."""
    checks.tensor(bits, name, ndim=3, floating=False, shape=f"(B, {n_tokens}, {dim}) bits in {{0, 1}}")
    if tuple(bits.shape[1:]) != (n_tokens, dim):
        raise ValueError(f"{name}: expected shape (B, {n_tokens}, {dim}), got {tuple(bits.shape)}")
    checks.rows(bits, name)
    return checks.binary(bits, name)


class Infinity(NextScaleTransformer):
    """The bitwise transformer: d logits per position, one per bit (module docstring)."""

    def __init__(self, bits: int, scales=(1, 2, 3, 4), cfg: Config | None = None,
                 reweight_loss_by_scale: bool = True):
        super().__init__(bits, bits, scales, cfg)
        self.register_buffer("weights", scale_weights(self.scales, reweight_loss_by_scale), persistent=False)

    def loss(self, labels: torch.Tensor, inputs: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
        """Per-bit cross-entropy, mean over the d bits, weighted sum over tokens (:func:`scale_weights`).
        labels (B, L, d) bits in {0, 1} (:func:`self_correct`), inputs (B, L - p_1^2, d), prompts (B, 4)."""
        check_bits(labels, "labels", len(self.weights), self.d_out)
        checks.tensor(inputs, "inputs", ndim=3, floating=True, shape=f"(B, n, {self.d_in})")
        checks.same_rows(labels, "labels", inputs.shape[0], "inputs")
        logits = self(inputs, prompts)                                              # (B, L, d)
        per_bit = F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype), reduction="none")
        return (per_bit.mean(-1) * self.weights).sum(-1).mean()


def head_parameters(d_model: int, bits: int) -> dict:
    """Parameters of the output head (weights and biases) for d = ``bits``: one logit per bit (here),
    two per bit (Infinity's IVC), and one logit per index of the 2^d vocabulary (a softmax head)."""
    d_model, bits = checks.positive_int(d_model, "d_model"), checks.positive_int(bits, "bits")
    return {"bitwise": (d_model + 1) * bits, "bitwise_2_logits": (d_model + 1) * 2 * bits,
            "index_softmax": (d_model + 1) * 2 ** bits}


@torch.no_grad()
def generate(model: Infinity, quantizer: MultiScaleBSQ, prompts: torch.Tensor, *, cfg_scale: float = 3.0,
             temperature: float = 1.0, generator: torch.Generator | None = None) -> dict:
    """Draw one latent per prompt in S forward passes: at each scale every bit is drawn
    independently from sigmoid(logit / temperature) (temperature > 0), logits guided as Infinity's
    cfg c + (1 - cfg) u = u + cfg_scale (c - u), the same at every scale (cfg_scale 1 = no
    guidance, one pass over N rows; 0 = the unconditional model).
    Returns {"latent": (N, H, H, d), "bits": (N, L, d), "codes": (N, L) indices, "nfe"}."""
    prompts = check_prompts(prompts)
    checks.same_device(model, prompts, "prompts")
    check_parts(model, quantizer)
    cfg_scale, temperature, _, generator = checks.sampling(cfg_scale=cfg_scale, temperature=temperature,
                                                           generator=generator)
    checks.number(temperature, "temperature", 1e-6)
    with runtime.evaluating(model):        # the caller's train/eval mode comes back after
        N, S, d = prompts.shape[0], len(model.scales), quantizer.dim
        guided = cfg_scale != 1.0
        rows = with_null(prompts, guided)                                             # (N or 2N, 4)
        cum = model.pos.new_zeros(N, d, model.scales[-1], model.scales[-1])
        inputs = cum.new_zeros(rows.shape[0], 0, d)
        bits, nfe, start = [], 0, 0
        for k, p in enumerate(model.scales):
            out = model(inputs, rows)[:, start:start + p * p]                          # (rows, p^2, d)
            nfe += 1
            logits = cfg_logits(out[:N], out[N:], cfg_scale) if guided else out
            prob = torch.sigmoid(logits.float() / temperature).cpu()
            b = (torch.rand(prob.shape, generator=generator) < prob).long().to(prompts.device)  # (N, p^2, d)
            bits.append(b)
            cum = cum + quantizer.codes_of(k, b)
            start += p * p
            if k + 1 < S:
                nxt = next_input(cum, model.scales[k + 1])                             # (N, p'^2, d)
                inputs = torch.cat([inputs, torch.cat([nxt, nxt]) if guided else nxt], 1)
        bits = torch.cat(bits, 1)
        return {"latent": cum.permute(0, 2, 3, 1), "bits": bits, "codes": bits_to_index(bits), "nfe": nfe}
