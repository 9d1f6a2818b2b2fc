"""Lookup-free quantizers: FSQ, LFQ and BSQ. No codebook to learn, so no codebook collapse.

* :class:`FSQ` (Mentzer et al. 2023, "Finite Scalar Quantization"): bound each of d channels with
  tanh and round it to L_i levels with the straight-through estimator; an implicit codebook of
  prod(L_i) codes, index in mixed radix (paper §3: bound with tanh, round). The bound is the
  paper's own code (FSQ paper appendix A.1; google-research/google-research, fsq/fsq.ipynb,
  ``FSQ.bound``): half_l = (L-1)(1-1e-3)/2, offset 0.5 for even L (0 for odd), shift =
  tan(offset / half_l), z_hat = round(tanh(z + shift) half_l - offset) / (L // 2).
  (lucidrains/vector-quantize-pytorch uses (1+1e-3) and atanh instead: the rounding boundaries move
  by ~1e-3 and about 1% of unit-Gaussian vectors get another code.) One exception, L = 2: there
  offset / half_l = 1 / (1 - eps), the shift is tan(1.001) ~ 1.56, the boundary between the two
  levels sits at z ~ -1.56 and 94% of unit-Gaussian inputs land on one level. Here L = 2 takes no
  shift: the boundary is at z = 0, half the inputs on each level (levels -1 and 0 after the
  division, as the formula gives).
* :class:`LFQ` (MAGVIT-v2, Yu et al. 2023, "Language Model Beats Diffusion", §3.1): code =
  sign(z) in {-1, +1}^d, index sum_i 2^i [z_i > 0] (MAGVIT-v2 §3.1: the first bit least
  significant; lucidrains' ``LFQ`` reads them most significant first, the same codes numbered with
  the bits reversed), an implicit vocabulary of 2^d; entropy penalty E[H(q(z))] - gamma H(E[q(z)]).
* :class:`BSQ` (Zhao et al. 2024, "Image and Video Tokenization with Binary Spherical
  Quantization"): L2-normalise u = z / |z| then u_hat = sign(u) / sqrt(d): codes lie on the
  unit sphere, so the quantization error is bounded (official code: zhaoyue-zephyrus/bsq-vit,
  transcoder/models/quantizer/bsq.py). sign(0) = -1 there (``torch.where(z > 0, 1, -1)``) and here:
  a zero coordinate becomes bit 0, so u_hat stays on the sphere. As in that code the entropy
  penalty is divided by the inverse temperature: loss = beta * commitment + zeta * (H_sample -
  gamma H_codebook) / inv_temperature. Two conventions differ from that code, deliberately: its
  index reads the bits most significant first (basis 2^(d-1) .. 1), the course's least significant
  first as MAGVIT-v2's LFQ index (§3.1), so one index is the other with the bits reversed (same codes,
  same entropies); and its 256^2 config (b18g18) takes the codebook entropy per bit (group size 1),
  the course's default groups (below) for the reason given there.

Entropy penalty (MAGVIT-v2 §3.1; BSQ §3.3): L = E_x[H(q(c|x))] - gamma H(E_x[q(c|x)]), q(c|x) the
softmax over the 2^d codes of -|z - c|^2 * inv_temperature. Because the distance is a sum over bits,
q factorises into d independent bits, P(bit_i = 1) = sigmoid(4 z_i inv_temperature) (LFQ) or
sigmoid(4 u_i / sqrt(d) inv_temperature) (BSQ): the per-sample entropy is the exact sum of bit
entropies. The batch average E_x[q] does NOT factorise (bits can be correlated), so the codebook
entropy is computed exactly over groups of ``group_size`` bits (BSQ's grouped form: the joint
distribution of each group's 2^g sub-codes, averaged over the batch, entropies summed over groups).
With group_size = d it is exact; group_size = 1 is the cheapest form, but it only asks each bit to be
balanced and is blind to correlated bits: measured here, d = 8 with group size 1 collapsed to 3-4
codes of 256 with every bit at 50%. Default: one group when d <= 10, groups of 8 bits beyond.

Every quantizer here is a :class:`~course_lib.tokens.vq.Quantizer`: it returns a
:class:`~course_lib.tokens.vq.QuantOut` whose stats have the same fields as VQ's.
"""
from __future__ import annotations

import math

import torch

from course_lib import checks
from course_lib.tokens.vq import QuantOut, Quantizer, straight_through


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """round(x) in the forward pass, identity gradient."""
    return x + (torch.round(x) - x).detach()


def bits_to_index(bits: torch.Tensor) -> torch.Tensor:
    """(..., d) bits in {0, 1} (or bools) -> (...,) int64 index sum_i 2^i b_i."""
    checks.tensor(bits, "bits", shape="(..., d) in {0, 1}")
    if bits.dtype != torch.bool:
        checks.tensor(bits, "bits", floating=False, shape="(..., d) in {0, 1} (int or bool)")
        checks.binary(bits, "bits")
    d = bits.shape[-1]
    weights = 2 ** torch.arange(d, device=bits.device)
    return (bits.long() * weights).sum(-1)


def index_to_bits(index: torch.Tensor, d: int) -> torch.Tensor:
    """(...,) int64 in [0, 2^d) -> (..., d) bits in {0, 1}, least significant first (d = 64: any int64,
    read as two's complement)."""
    d = checks.positive_int(d, "d")
    checks.tensor(index, "index", floating=False, shape="(...,) int64")
    if d > 64:
        raise ValueError(f"d: an int64 index holds at most 64 bits, got {d}")
    if d < 64:
        checks.index_range(index, "index", 2 ** d)              # more bits than d would be cut silently
    return (index.long()[..., None] >> torch.arange(d, device=index.device)) & 1


STE_FORMS = ("sign", "code")


def bsq_quantize(z: torch.Tensor, ste: str = "sign") -> torch.Tensor:
    """BSQ: u = z / |z|, u_hat = sign(u) / sqrt(d) with sign(0) = -1 (bit 0, as bsq-vit's
    ``torch.where(z > 0, 1, -1)``), with the straight-through estimator in one of the two forms of
    the official codes (the values are the same):

    * ``"sign"`` (default): on the SIGN, then the scale, u_hat = (u + sg(sign(u) - u)) / sqrt(d): the
      gradient w.r.t. u is 1/sqrt(d) times the identity (BSQ paper §3.1; zhaoyue-zephyrus/bsq-vit,
      transcoder/models/quantizer/bsq.py, ``BinarySphericalQuantizer.quantize`` then ``zq * q_scale``);
    * ``"code"``: on the scaled code, u_hat = u + sg(sign(u) / sqrt(d) - u): the identity gradient
      (FoundationVision/Infinity, infinity/models/bsq_vae/multiscale_bsq.py, ``quantize_new``, the
      form Infinity's tokenizer trains with).

    z: (..., d). Returns (..., d) on the unit sphere.
    """
    checks.tensor(z, "z", floating=True, shape="(..., d)")
    checks.one_of(ste, "ste", STE_FORMS)
    d = z.shape[-1]
    u = z / z.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    # the sign of z is the sign of u, and stays right where |z| overflows (u would be 0 there)
    sign = torch.where(z > 0, 1.0, -1.0).to(z.dtype)
    if ste == "code":
        return straight_through(u, sign / math.sqrt(d))
    return straight_through(u, sign) / math.sqrt(d)


def _bit_entropy(p: torch.Tensor) -> torch.Tensor:
    p = p.clamp(1e-6, 1 - 1e-6)
    return -(p * p.log() + (1 - p) * (1 - p).log())


def _group_code_probs(p: torch.Tensor) -> torch.Tensor:
    """(N, g) independent bit probabilities -> (N, 2^g) probabilities of the group's sub-codes
    (index sum_i 2^i b_i, as :func:`bits_to_index`)."""
    g = p.shape[-1]
    bits = index_to_bits(torch.arange(2 ** g, device=p.device), g).to(p.dtype)     # (2^g, g)
    logp, log1mp = p.clamp_min(1e-12).log(), (1 - p).clamp_min(1e-12).log()       # (N, g)
    return (logp @ bits.t() + log1mp @ (1 - bits).t()).exp()                        # (N, 2^g)


def default_group_size(d: int) -> int:
    return d if d <= 10 else 8


def bitwise_entropy_loss(logit_pos: torch.Tensor,
                         group_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Entropy terms from logits of P(bit = 1), (N, d): (mean per-sample entropy, exact per bit;
    codebook entropy of the batch-average code distribution, summed over groups of ``group_size``
    bits, exact when group_size >= d). The quantizers use first - gamma * second. Entropies in nats."""
    if logit_pos.dim() != 2:
        raise ValueError(f"logit_pos must be (N, d), got {tuple(logit_pos.shape)}")
    d = logit_pos.shape[1]
    g = default_group_size(d) if group_size is None else int(group_size)
    if not 1 <= g <= 16:
        raise ValueError(f"group_size must be in 1..16 (2^g sub-codes per group), got {group_size}")
    p = torch.sigmoid(logit_pos.float())                                          # (N, d)
    sample = _bit_entropy(p).sum(-1).mean()
    codebook = p.new_zeros(())
    for chunk in p.split(g, dim=1):                                               # (N, <= g)
        avg = _group_code_probs(chunk).mean(0)                                    # (2^g,)
        codebook = codebook - (avg * avg.clamp_min(1e-12).log()).sum()
    return sample, codebook


class FSQ(Quantizer):
    """Finite scalar quantization over channel-last vectors (..., len(levels)); each level count
    L_i >= 2 (L = 2 without the shift: module docstring)."""

    def __init__(self, levels=(8, 5, 5, 5), eps: float = 1e-3):
        super().__init__()
        levels = [int(l) for l in levels]
        if not levels or min(levels) < 2:
            raise ValueError(f"levels must be a non-empty list of ints >= 2, got {levels}")
        self.levels, self.dim, self.eps = levels, len(levels), eps
        self.codebook_size = math.prod(levels)
        self.register_buffer("_levels", torch.tensor(levels, dtype=torch.float32), persistent=False)
        basis = torch.cumprod(torch.tensor([1] + levels[:-1]), 0)
        self.register_buffer("_basis", basis, persistent=False)

    def bound(self, z: torch.Tensor) -> torch.Tensor:
        """tanh(z + shift) half_l - offset: (..., d) in (-L/2, L/2) (module docstring; no shift for L = 2)."""
        half_l = (self._levels - 1) * (1 - self.eps) / 2
        offset = torch.where(self._levels % 2 == 0, 0.5, 0.0)
        shift = torch.where(self._levels == 2, 0.0, torch.tan(offset / half_l))
        return torch.tanh(z + shift) * half_l - offset

    def forward(self, z: torch.Tensor) -> QuantOut:
        self.check_input(z)
        half_width = torch.floor(self._levels / 2)
        z_hat = round_ste(self.bound(z)) / half_width                             # (..., d) in ~[-1, 1]
        ints = torch.round(z_hat.detach() * half_width + half_width).long()      # (..., d) in 0..L-1
        codes = (ints * self._basis).sum(-1)                                     # (...,) mixed radix
        return QuantOut(z_hat, codes, z.new_zeros(()), self.code_stats(codes))


class BitwiseQuantizer(Quantizer):
    """Base of LFQ and BSQ: d bits per token, an implicit vocabulary of 2^d, and the entropy penalty
    entropy_weight * (E[H(q(c|x))] - gamma H(E[q(c|x)])) over groups of ``group_size`` bits
    (module docstring); inv_temperature scales the logits of P(bit = 1)."""

    def __init__(self, dim: int, entropy_weight: float, gamma: float, inv_temperature: float,
                 group_size: int | None):
        super().__init__()
        if dim < 1 or dim > 62:
            raise ValueError(f"dim (bits per token) must be in 1..62, got {dim}")
        self.dim, self.entropy_weight, self.gamma = dim, entropy_weight, gamma
        self.inv_temperature, self.group_size = inv_temperature, group_size
        self.codebook_size = 2 ** dim

    def entropy_penalty(self, logit_pos: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """(weighted penalty, its two entropies to log) from the (N, d) logits of P(bit = 1)."""
        h_sample, h_book = bitwise_entropy_loss(logit_pos, self.group_size)
        terms = {"codebook_entropy": h_book.item(), "sample_entropy": h_sample.item()}
        return self.entropy_weight * (h_sample - self.gamma * h_book), terms


class LFQ(BitwiseQuantizer):
    """Lookup-free quantization: sign(z) in {-1, +1}^d with the STE, an implicit 2^d vocabulary.

    entropy_weight (0.1) and gamma (1.0) as lucidrains' defaults; P(bit = 1) = sigmoid(4 z_i *
    inv_temperature). lucidrains uses inv_temperature 100, which saturates the sigmoid at the
    course's small scales, so the default here is 1 (a deliberate deviation). The commitment weight
    is 0.25 as in Open-MAGVIT2's config (lucidrains' default is 0): without it nothing bounds z, the
    straight-through gradient keeps pushing it outwards (measured: |z| ~ 1e9 after 300 steps) and
    the codes freeze. group_size: bits per group of the codebook entropy (module docstring).
    """

    def __init__(self, dim: int, entropy_weight: float = 0.1, gamma: float = 1.0,
                 inv_temperature: float = 1.0, commitment: float = 0.25, group_size: int | None = None):
        super().__init__(dim, entropy_weight, gamma, inv_temperature, group_size)
        self.commitment = commitment

    def forward(self, z: torch.Tensor) -> QuantOut:
        self.check_input(z)
        q = torch.where(z > 0, 1.0, -1.0).to(z.dtype)
        flat = z.reshape(-1, self.dim)                                             # (N, d)
        # distance to +1 minus distance to -1 is -4 z: P(bit=1) = sigmoid(4 z inv_temp)
        loss, terms = self.entropy_penalty(4 * flat.float() * self.inv_temperature)
        loss = loss + self.commitment * (z - q.detach()).pow(2).mean()
        codes = bits_to_index(z > 0)
        return QuantOut(straight_through(z, q), codes, loss, self.code_stats(codes, **terms))


class BSQ(BitwiseQuantizer):
    """Binary spherical quantization, d bits per token (an implicit vocabulary of 2^d).

    beta: commitment weight on |u - sg(u_hat)|^2 (0 in BSQ's official config); entropy_weight
    (bsq-vit's zeta), gamma, inv_temperature: the entropy penalty, P(bit = 1) = sigmoid(4 u_i /
    sqrt(d) * inv_temperature) (bsq-vit's analytic per-bit form, u on the unit sphere), weighted
    entropy_weight / inv_temperature as bsq-vit's ``BinarySphericalQuantizer.forward`` does: a
    sharper softmax gives larger entropy gradients, and the division keeps their size comparable
    across temperatures. The default entropy_weight 1.0 with inv_temperature 10 gives the penalty an
    effective weight of 0.1, LFQ's. group_size: bits per group of the codebook entropy (module
    docstring). ste: the straight-through form of :func:`bsq_quantize` ("sign": bsq-vit's, the
    default; "code": Infinity's tokenizer's).
    """

    def __init__(self, dim: int, beta: float = 0.0, entropy_weight: float = 1.0, gamma: float = 1.0,
                 inv_temperature: float = 10.0, group_size: int | None = None, ste: str = "sign"):
        super().__init__(dim, entropy_weight, gamma, inv_temperature, group_size)
        self.beta = beta
        self.ste = checks.one_of(ste, "ste", STE_FORMS)

    def forward(self, z: torch.Tensor) -> QuantOut:
        self.check_input(z)
        u = z / z.norm(dim=-1, keepdim=True).clamp_min(1e-8)                      # (..., d) unit
        u_hat = bsq_quantize(z, self.ste)
        flat = u.reshape(-1, self.dim).float()                                     # (N, d)
        penalty, terms = self.entropy_penalty(4 * flat / math.sqrt(self.dim) * self.inv_temperature)
        loss = penalty / self.inv_temperature + self.beta * (u - u_hat.detach()).pow(2).sum(-1).mean()
        codes = bits_to_index(z > 0)
        return QuantOut(u_hat, codes, loss, self.code_stats(codes, **terms))
