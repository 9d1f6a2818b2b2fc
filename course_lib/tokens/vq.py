"""Vector quantization: VQ-VAE's codebook, its EMA variant, dead-code restarts, and residual VQ.

* :func:`nearest_code`, :func:`straight_through`, :func:`vq_losses`: the three lines at the heart of
  VQ-VAE (van den Oord et al. 2017, "Neural Discrete Representation Learning", eq. 3):
  k = argmin_j |z_e - e_j|^2,  z_q = e_k,  z_q_st = z_e + sg(z_q - z_e),
  L = |sg[z_e] - z_q|^2 + beta |z_e - sg[z_q]|^2, beta = 0.25 (paper VQ-VAE, not taming's legacy
  VQGAN that puts beta on the other term: CompVis/taming-transformers, taming/modules/vqvae/
  quantize.py, ``VectorQuantizer2(legacy=True)``). The losses use the RAW z_q, before the
  straight-through step: computed on z_q_st the codebook term would get no gradient at all.
* :class:`VectorQuantizer`: a learned codebook (codebook loss) or an EMA codebook (VQ-VAE appendix
  A.1: N_i <- g N_i + (1-g) n_i, m_i <- g m_i + (1-g) sum z_e, e_i = m_i / N~_i, Laplace smoothing
  N~_i = (N_i + eps) / (sum N + K eps) * sum N, g = 0.99, eps = 1e-5), k-means initialisation on the
  first batch, and restart of dead codes (EMA count below a threshold, as SoundStream/EnCodec,
  encodec/quantization/core_vq.py; EnCodec's ``expire_codes_`` sets only the vector, which its EMA
  step then overwrites, the course resets the count and sum too, as lucidrains' ``replace``) with
  random vectors of the current batch. :func:`ema_vq` builds one with all three fixes.
* :class:`ResidualVQ`: SoundStream's Algorithm 1 (Zeghidour et al. 2021, §3.3): quantize, subtract,
  quantize the residual with the next codebook; quantizer dropout draws the levels per example. The
  residual subtracts a detached code (EnCodec issue #25's fix), the output is z + sg(sum q - z)
  (Mimi's form, kyutai-labs/moshi, moshi/quantization/core_vq.py): every level's commitment loss
  reaches the encoder. Mimi's ``no_quantization_rate`` (Défossez et al. 2024, "Moshi", §3.3): that
  fraction of the training examples bypasses the quantizer (Moshi quantizes half the time).
* :class:`Quantizer`, :class:`QuantOut`, :class:`CodeStats`: the contract every quantizer of the
  course keeps (here and in :mod:`course_lib.tokens.bitwise`): ``forward((..., D)) -> QuantOut``,
  whose ``stats`` has the same fields for every quantizer. Vectors are channel-last: ``z`` has shape
  (..., D). Distances are computed in fp32 with autocast off (bf16 distances give argmin ties and NaNs).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from course_lib import checks
from course_lib.metrics import perplexity, usage

MAX_HISTOGRAM = 2 ** 20     # larger vocabularies (LFQ / BSQ with d > 20 bits) report NaN usage figures


# ----------------------------------------------------------------------------- the contract

@dataclass
class CodeStats:
    """How a quantizer used its codes on one batch: the same fields for every quantizer.

    perplexity: exp(entropy of the code histogram): K when all K codes are used equally, 1 on
        collapse; for residual VQ the mean over levels of each level's perplexity;
    usage: fraction of the codebook used at least once (mean over levels);
    level_perplexity, level_usage: one figure per level (residual VQ), empty for one codebook;
    terms: other figures to log (loss terms, restarted codes, entropies).
    Vocabularies over 2^20 codes report NaN perplexity and usage (no histogram that large).
    """
    perplexity: float
    usage: float
    level_perplexity: tuple = ()
    level_usage: tuple = ()
    terms: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        """The scalars to log: perplexity, usage, one entry per level and the terms."""
        out = {"perplexity": self.perplexity, "usage": self.usage}
        out.update({f"perplexity_{i}": p for i, p in enumerate(self.level_perplexity)})
        return {**out, **self.terms}


def code_stats(codes: torch.Tensor, codebook_size: int, **terms) -> CodeStats:
    """:class:`CodeStats` of one codebook's integer codes (any shape), via :mod:`course_lib.metrics`."""
    if codebook_size > MAX_HISTOGRAM:
        return CodeStats(float("nan"), float("nan"), terms=terms)
    if codes.numel() == 0:              # no vector used this codebook (a level dropped by quantizer dropout)
        return CodeStats(1.0, 0.0, terms=terms)          # exp(entropy of nothing) = 1, no code used
    return CodeStats(perplexity(codes, codebook_size), usage(codes, codebook_size), terms=terms)


@dataclass
class QuantOut:
    """What every quantizer of the course returns.

    z_q: quantized vectors with the straight-through gradient, same shape as the input (..., D);
    codes: integer ids, (...,) for one codebook or (..., L) for L levels;
    loss: scalar auxiliary loss to add to the reconstruction loss (0 when there is none);
    stats: :class:`CodeStats`, the same fields for every quantizer.
    """
    z_q: torch.Tensor
    codes: torch.Tensor
    loss: torch.Tensor
    stats: CodeStats


class Quantizer(nn.Module):
    """Base of every quantizer: ``forward(z (..., dim)) -> QuantOut`` over ``codebook_size`` codes; :meth:`code_stats`
    (per level in residual VQ) lets a tokenizer report codebook usage whatever quantizer it holds."""
    codebook_size: int
    dim: int

    def code_stats(self, codes: torch.Tensor, **terms) -> CodeStats:
        return code_stats(codes, self.codebook_size, **terms)

    def check_input(self, z) -> torch.Tensor:
        """z: floating (..., dim), channel last, finite (a NaN vector would silently become code 0 or bits 0)."""
        checks.tensor(z, "z", dim=self.dim, floating=True, shape=f"(..., {self.dim}) (channel last)")
        return checks.finite(z, "z")


def _no_autocast(t: torch.Tensor): return torch.autocast(device_type=t.device.type, enabled=False)


# ----------------------------------------------------------------------------- the three lines

def nearest_code(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Index of the nearest codebook row, argmin_j |z - e_j|^2 in fp32: z (..., D), codebook (K, D) -> int64 (...,)."""
    checks.tensor(z, "z", floating=True, shape="(..., D)")
    if codebook.dim() != 2 or codebook.shape[1] != z.shape[-1]:
        raise ValueError(f"codebook must have shape (K, {z.shape[-1]}), got {tuple(codebook.shape)}")
    checks.rows(codebook, "codebook")
    checks.finite(z, "z")                                      # a NaN vector would silently get code 0
    with _no_autocast(z):
        flat = z.detach().reshape(-1, z.shape[-1]).float()                      # (N, D)
        e = codebook.detach().float()                                            # (K, D)
        d = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ e.t() + e.pow(2).sum(1)[None]  # (N, K)
        return d.argmin(1).reshape(z.shape[:-1])


def straight_through(z_e: torch.Tensor, z_q: torch.Tensor) -> torch.Tensor:
    """z_e + sg(z_q - z_e): the value of z_q, the gradient of the identity w.r.t. z_e."""
    return z_e + (z_q - z_e).detach()


def vq_losses(z_e: torch.Tensor, z_q: torch.Tensor,
              mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(codebook loss, commitment loss) = (mean |sg[z_e] - z_q|^2, mean |z_e - sg[z_q]|^2).

    Pass the RAW code z_q (before :func:`straight_through`); weight the commitment by beta.
    z_e, z_q: (N, D); mask (optional, bool (N,)): average over the masked-in vectors only.
    """
    if mask is None:
        return (z_e.detach() - z_q).pow(2).mean(), (z_e - z_q.detach()).pow(2).mean()
    checks.bool_mask(mask, "mask", z_e.shape[:1], "one flag per row of z_e")
    w = mask.float()[:, None]                                                    # (N, 1)
    denom = (w.sum() * z_e.shape[-1]).clamp_min(1)
    codebook = ((z_e.detach() - z_q).pow(2) * w).sum() / denom
    commitment = ((z_e - z_q.detach()).pow(2) * w).sum() / denom
    return codebook, commitment


# ----------------------------------------------------------------------------- k-means and EMA

def kmeans(x: torch.Tensor, k: int, iters: int = 10, seed: int = 0) -> torch.Tensor:
    """Lloyd's k-means on (N, D) vectors; returns (k, D) centroids (empty clusters keep their old
    centroid). Initialised with k random vectors (with replacement if N < k)."""
    checks.tensor(x, "x", floating=True, shape="(N, D)")
    k, iters = checks.positive_int(k, "k"), checks.positive_int(iters, "iters", 0)
    checks.rows(x, "x")
    checks.finite(x, "x")
    x = x.detach().reshape(-1, x.shape[-1]).float()                                  # (N, D)
    g = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    idx = torch.randperm(n, generator=g)[:k] if n >= k else torch.randint(n, (k,), generator=g)
    c = x[idx.to(x.device)].clone()                                                 # (k, D)
    for _ in range(iters):
        a = nearest_code(x, c)                                                      # (N,)
        sums = torch.zeros_like(c).index_add_(0, a, x)
        counts = torch.bincount(a, minlength=k).float()[:, None]
        c = torch.where(counts > 0, sums / counts.clamp_min(1), c)
    return c


def ema_update(cluster_size: torch.Tensor, embed_sum: torch.Tensor, z: torch.Tensor,
               codes: torch.Tensor, decay: float = 0.99, eps: float = 1e-5):
    """One EMA codebook step (VQ-VAE appendix A.1). Pure function, returns new tensors.

    cluster_size N: (K,); embed_sum m: (K, D); z: (N, D) encoder vectors; codes: (N,) their codes.
    Returns (N', m', codebook e = m' / N~') with N~ the Laplace-smoothed counts.

    N', m' are Sonnet's ``VectorQuantizerEMA`` state (vqvae.py); Sonnet starts them at 0, read debiased
    (/ (1 - g^step)); the course at N = 1, m = codebook, undebiased (as lucidrains): equal later on.
    """
    k = cluster_size.shape[0]
    z = z.detach().float()
    onehot = torch.nn.functional.one_hot(codes.long(), k).float()                    # (N, K)
    n_new = decay * cluster_size + (1 - decay) * onehot.sum(0)                       # (K,)
    m_new = decay * embed_sum + (1 - decay) * onehot.t() @ z                         # (K, D)
    total = n_new.sum()
    smoothed = (n_new + eps) / (total + k * eps) * total                            # (K,)
    return n_new, m_new, m_new / smoothed[:, None]


def dead_code_threshold(vectors_per_batch: int, codebook_size: int, fraction: float = 0.1) -> float:
    """The EMA count under which a code counts as dead: ``fraction`` of the count every code would
    have if all were used equally, vectors_per_batch / K (Mimi's rule, 10% of the mean usage:
    kyutai-labs/moshi, moshi/quantization/core_vq.py). EnCodec uses a fixed 2 instead."""
    checks.positive_int(vectors_per_batch, "vectors_per_batch")
    checks.positive_int(codebook_size, "codebook_size")
    return fraction * vectors_per_batch / codebook_size


# ----------------------------------------------------------------------------- the module

class VectorQuantizer(Quantizer):
    """A VQ-VAE bottleneck over channel-last vectors (..., dim).

    codebook_size K, dim D; beta: commitment weight (0.25); ema: update the codebook by EMA (decay,
    eps) instead of the codebook loss (the codebook is then a buffer and only beta * commitment is in
    the loss); kmeans_init: fit the codebook on the first training batch (kmeans_iters Lloyd steps);
    dead_threshold: in training, restart codes whose EMA count (kept in both modes, decay ``decay``)
    falls below it with random vectors of the batch (0 = never; :func:`dead_code_threshold`: Mimi's).
    ``seed`` fixes every draw: the initial codebook, k-means, and each restart's picks (the n-th
    restart draws on the CPU from a generator seeded by ``seed`` and n; the global RNG is untouched).

    Without k-means the EMA counts start at 1, so with a threshold above ~1 (Mimi's rule at most
    batch sizes) the first training step restarts every code the batch uses too little: the codebook
    is in effect initialised from random batch vectors, as in EnCodec, whose counts start at 0
    (encodec/quantization/core_vq.py). With ``kmeans_init`` the counts start at the cluster sizes.
    """

    def __init__(self, codebook_size: int, dim: int, beta: float = 0.25, ema: bool = False,
                 decay: float = 0.99, eps: float = 1e-5, kmeans_init: bool = False,
                 kmeans_iters: int = 10, dead_threshold: float = 0.0, seed: int = 0):
        super().__init__()
        if codebook_size < 1 or dim < 1:
            raise ValueError(f"codebook_size and dim must be >= 1, got {codebook_size}, {dim}")
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be in (0, 1), got {decay}")
        self.codebook_size, self.dim, self.beta, self.ema = codebook_size, dim, beta, ema
        self.decay, self.eps, self.kmeans_iters, self.dead_threshold = decay, eps, kmeans_iters, dead_threshold
        g = torch.Generator().manual_seed(seed)
        init = torch.randn(codebook_size, dim, generator=g)
        if ema:
            self.register_buffer("codebook", init)
        else:
            self.codebook = nn.Parameter(init)
        self.register_buffer("cluster_size", torch.ones(codebook_size))   # EMA counts N_i
        self.register_buffer("embed_sum", init.clone())                    # EMA sums m_i
        self.register_buffer("initted", torch.tensor(not kmeans_init))
        self.seed = seed
        self.restarts = 0                                  # restart draws so far (seeds the next one)

    @torch.no_grad()
    def _init(self, flat: torch.Tensor):
        c = kmeans(flat, self.codebook_size, self.kmeans_iters, self.seed)
        counts = torch.bincount(nearest_code(flat, c), minlength=self.codebook_size).float()
        self.codebook.data.copy_(c)
        self.cluster_size.copy_(counts)                    # as EnCodec: the k-means cluster sizes
        self.embed_sum.copy_(c * counts[:, None])
        self.initted.fill_(True)

    @torch.no_grad()
    def _restart_dead(self, flat: torch.Tensor) -> int:
        dead = self.cluster_size < self.dead_threshold
        n_dead = int(dead.sum())
        if n_dead == 0 or flat.shape[0] == 0:
            return 0
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.restarts)
        self.restarts += 1
        pick = torch.randint(flat.shape[0], (n_dead,), generator=g).to(flat.device)
        new = flat[pick].float()
        self.codebook.data[dead] = new
        self.cluster_size[dead] = self.dead_threshold
        self.embed_sum[dead] = new * self.dead_threshold
        return n_dead

    @torch.no_grad()
    def _update(self, active: torch.Tensor, codes: torch.Tensor) -> dict:
        """Training-time bookkeeping: EMA codebook (or usage counts only), dead-code restarts."""
        counts = torch.bincount(codes, minlength=self.codebook_size).float()            # (K,)
        if self.ema:
            n, s, e = ema_update(self.cluster_size, self.embed_sum, active, codes, self.decay, self.eps)
            self.cluster_size.copy_(n)
            self.embed_sum.copy_(s)
            self.codebook.copy_(e)
        else:   # usage counts only (for monitoring and restarts)
            self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        if self.dead_threshold > 0:
            return {"restarted": self._restart_dead(active.detach())}
        return {}

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (...,) -> vectors (..., D)."""
        return self.codebook[codes.long()]

    def forward(self, z: torch.Tensor, mask: torch.Tensor | None = None) -> QuantOut:
        """z: (..., D). mask (optional, bool (...,) = z.shape[:-1]): vectors that count for losses
        and updates."""
        self.check_input(z)
        if mask is not None:
            checks.bool_mask(mask, "mask", z.shape[:-1], "z.shape[:-1]: one flag per vector")
        flat = z.reshape(-1, self.dim)                                            # (N, D)
        m = None if mask is None else mask.reshape(-1)                            # (N,)
        active = flat if m is None else flat[m]                                   # (N_active, D)
        if self.training and not bool(self.initted) and active.shape[0] > 0:
            self._init(active)
        codes = nearest_code(flat, self.codebook)                                 # (N,)
        z_q = self.codebook[codes].to(z.dtype)                                    # raw code (N, D)
        cb, commit = vq_losses(flat, z_q, m)          # on the raw code, BEFORE the straight-through step
        loss = self.beta * commit + (0 if self.ema else cb)
        c_act = codes if m is None else codes[m]
        terms = {"commitment": commit.item()}
        if self.training:
            terms.update(self._update(active, c_act))
        z_q_st = straight_through(flat, z_q)                                      # (N, D)
        return QuantOut(z_q_st.reshape(z.shape), codes.reshape(z.shape[:-1]), loss, self.code_stats(c_act, **terms))


def ema_vq(codebook_size: int, dim: int, vectors_per_batch: int, dead_fraction: float = 0.1,
           **kwargs) -> VectorQuantizer:
    """A :class:`VectorQuantizer` with the three fixes against codebook collapse: EMA codebook,
    k-means initialisation on the first batch, and restart of the codes whose EMA count falls below
    :func:`dead_code_threshold` (``dead_fraction`` of the mean count of a batch of
    ``vectors_per_batch`` vectors). Other keywords go to :class:`VectorQuantizer`."""
    return VectorQuantizer(codebook_size, dim, ema=True, kmeans_init=True,
                           dead_threshold=dead_code_threshold(vectors_per_batch, codebook_size, dead_fraction),
                           **kwargs)


class ResidualVQ(Quantizer):
    """Residual VQ with ``n_quantizers`` codebooks (SoundStream Algorithm 1, §3.3).

    r_0 = z; for i = 1..n: q_i = VQ_i(r_{i-1}), r_i = r_{i-1} - sg(q_i); z_hat = z + sg(sum q - z)
    (Mimi; lucidrains sums each level's straight-through output: n times the identity gradient).
    quantizer_dropout: in training, each example (first axis) uses only its first n ~ U{1..N} levels
    (SoundStream; EnCodec and Mimi draw one n per batch). no_quantization_rate (Mimi): in training,
    each example bypasses the quantizer with this probability (its continuous z goes to the decoder;
    no part in the codebook losses and updates). Other arguments go to every
    :class:`VectorQuantizer` (each level its own seed). :class:`CodeStats`: per level and the means.
    """

    def __init__(self, n_quantizers: int, codebook_size: int, dim: int, quantizer_dropout: bool = False,
                 no_quantization_rate: float = 0.0, seed: int = 0, **vq_kwargs):
        super().__init__()
        if n_quantizers < 1:
            raise ValueError(f"n_quantizers must be >= 1, got {n_quantizers}")
        if not 0.0 <= no_quantization_rate < 1.0:
            raise ValueError(f"no_quantization_rate must be in [0, 1), got {no_quantization_rate}")
        self.n_quantizers, self.codebook_size, self.dim = n_quantizers, codebook_size, dim
        self.quantizer_dropout, self.no_quantization_rate = quantizer_dropout, no_quantization_rate
        self.levels = nn.ModuleList(VectorQuantizer(codebook_size, dim, seed=seed + i, **vq_kwargs)
                                    for i in range(n_quantizers))

    def bits_per_vector(self, n_levels: int | None = None) -> float:
        return (n_levels or self.n_quantizers) * math.log2(self.codebook_size)

    def code_stats(self, codes: torch.Tensor, **terms) -> CodeStats:
        """codes (..., L) -> per-level perplexity and usage, and their means."""
        return _level_stats([code_stats(c, self.codebook_size) for c in codes.unbind(-1)], terms)    # per level

    def _draw_levels(self, z: torch.Tensor):
        """Training-time draws: levels per example (B,) (0 = bypass) and the bypass mask (B,)."""
        B = z.shape[0]
        if self.quantizer_dropout:
            per_example = torch.randint(1, self.n_quantizers + 1, (B,), device=z.device)
        else:
            per_example = torch.full((B,), self.n_quantizers, device=z.device)
        bypass = None
        if self.no_quantization_rate > 0:
            bypass = torch.rand(B, device=z.device) < self.no_quantization_rate                # (B,)
            per_example = per_example.masked_fill(bypass, 0)
        return per_example, bypass

    def forward(self, z: torch.Tensor, n_levels: int | None = None) -> QuantOut:
        """z: (B, ..., D). n_levels: use the first n_levels levels (all by default; no dropout then)."""
        self.check_input(z)
        if n_levels is not None and not 1 <= n_levels <= self.n_quantizers:
            raise ValueError(f"n_levels must be in 1..{self.n_quantizers}, got {n_levels}")
        lead = z.shape[:-1]
        bypass, n_active, used = None, None, n_levels or self.n_quantizers
        if self.training and n_levels is None and (self.quantizer_dropout or self.no_quantization_rate > 0):
            per_example, bypass = self._draw_levels(z)
            n_active = per_example.view(-1, *([1] * (len(lead) - 1))).expand(lead)   # (B, ...)
        residual, total = z, torch.zeros_like(z)
        codes, loss, levels = [], z.new_zeros(()), []
        for i, vq in enumerate(self.levels[:used]):
            mask = None if n_active is None else n_active > i                     # (B, ...)
            out = vq(residual, mask)
            q = out.z_q.detach()                                                  # value = raw code
            if mask is not None:
                q = q * mask[..., None]
            total = total + q
            residual = residual - q
            codes.append(out.codes)
            loss = loss + out.loss
            levels.append(out.stats)
        z_hat = z + (total - z).detach()                                          # STE on the sum
        if bypass is not None:                                                    # Mimi: continuous z
            z_hat = torch.where(bypass.view(-1, *([1] * (z.dim() - 1))), z, z_hat)
        terms = {"commitment": sum(s.terms["commitment"] for s in levels)}
        return QuantOut(z_hat, torch.stack(codes, -1), loss, _level_stats(levels, terms))

    @torch.no_grad()
    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (..., L) -> sum of the L levels' vectors (..., D)."""
        return sum(self.levels[i].lookup(codes[..., i]) for i in range(codes.shape[-1]))


def _level_stats(levels: list[CodeStats], terms: dict) -> CodeStats:
    ppl = tuple(s.perplexity for s in levels)
    use = tuple(s.usage for s in levels)
    return CodeStats(sum(ppl) / len(ppl), sum(use) / len(use), ppl, use, terms)
