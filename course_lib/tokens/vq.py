"""Vector quantization: VQ-VAE's codebook, its EMA variant, dead-code restarts, and residual VQ.

* :func:`nearest_code`, :func:`straight_through`, :func:`vq_losses`: the three lines at the heart of
  VQ-VAE (van den Oord et al. 2017, "Neural Discrete Representation Learning", eq. 3):
  k = argmin_j |z_e - e_j|^2,  z_q = e_k,  z_q_st = z_e + sg(z_q - z_e),
  L = |sg[z_e] - z_q|^2 + beta |z_e - sg[z_q]|^2, beta = 0.25 (paper VQ-VAE, not taming's legacy
  VQGAN that puts beta on the other term). The losses use the RAW z_q, before the straight-through
  step: computed on z_q_st the codebook term would get no gradient at all.
* :class:`VectorQuantizer`: either a learned codebook (codebook loss) or an EMA codebook (paper
  appendix A.1: N_i <- g N_i + (1-g) n_i, m_i <- g m_i + (1-g) sum z_e, e_i = m_i / N~_i with
  Laplace smoothing N~_i = (N_i + eps) / (sum N + K eps) * sum N, g = 0.99, eps = 1e-5), k-means
  initialisation on the first batch, and restart of dead codes (EMA count below a threshold, as in
  SoundStream/EnCodec) with random vectors of the current batch.
* :class:`ResidualVQ`: SoundStream's Algorithm 1 (Zeghidour et al. 2021): quantize, subtract,
  quantize the residual with the next codebook; quantizer dropout draws the number of levels per
  example. The residual subtracts a detached code (the fix of EnCodec issue #25) and the output is
  z + sg(sum q - z) (Mimi's form), so every level's commitment loss reaches the encoder. Mimi's
  ``no_quantization_rate``: in training, that fraction of the examples bypasses the quantizer (the
  decoder also learns from the continuous latent; Moshi trains with quantization half the time).
* :func:`perplexity`, :func:`usage`: how many codes are really used.

Vectors are channel-last: ``z`` has shape (..., D). Distances are computed in fp32 with autocast
off (bf16 distances give argmin ties and NaNs). The lookup-free quantizers are in
:mod:`course_lib.tokens.bitwise`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from course_lib.metrics import perplexity, usage


@dataclass
class QuantOut:
    """What every quantizer of the course returns.

    z_q: quantized vectors with the straight-through gradient, same shape as the input (..., D);
    codes: integer ids, (...,) for one codebook or (..., L) for L levels/groups;
    loss: scalar auxiliary loss to add to the reconstruction loss (0 when there is none);
    stats: floats to log (perplexity, fraction of codes used, loss terms).
    """
    z_q: torch.Tensor
    codes: torch.Tensor
    loss: torch.Tensor
    stats: dict = field(default_factory=dict)


def _check_vectors(z, name="z", dim=None):
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(z).__name__}")
    if not z.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor, got {z.dtype}")
    if z.dim() < 1 or (dim is not None and z.shape[-1] != dim):
        want = f"(..., {dim})" if dim is not None else "(..., D)"
        raise ValueError(f"{name} must have shape {want} (channel last), got {tuple(z.shape)}")


def _no_autocast(t: torch.Tensor):
    return torch.autocast(device_type=t.device.type, enabled=False)


# ----------------------------------------------------------------------------- the three lines

def nearest_code(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Index of the nearest codebook row for every vector: argmin_j |z - e_j|^2, in fp32.

    z: (..., D); codebook: (K, D). Returns int64 (...,).
    """
    _check_vectors(z)
    if codebook.dim() != 2 or codebook.shape[1] != z.shape[-1]:
        raise ValueError(f"codebook must have shape (K, {z.shape[-1]}), got {tuple(codebook.shape)}")
    with _no_autocast(z):
        flat = z.detach().reshape(-1, z.shape[-1]).float()                      # (N, D)
        e = codebook.detach().float()                                            # (K, D)
        d = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ e.t() + e.pow(2).sum(1)[None]  # (N, K)
        return d.argmin(1).reshape(z.shape[:-1])


def straight_through(z_e: torch.Tensor, z_q: torch.Tensor) -> torch.Tensor:
    """z_e + sg(z_q - z_e): the value of z_q, the gradient of the identity w.r.t. z_e."""
    return z_e + (z_q - z_e).detach()


def vq_losses(z_e: torch.Tensor, z_q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(codebook loss, commitment loss) = (mean |sg[z_e] - z_q|^2, mean |z_e - sg[z_q]|^2).

    Pass the RAW code z_q (before :func:`straight_through`); weight the commitment by beta.
    """
    codebook = (z_e.detach() - z_q).pow(2).mean()
    commitment = (z_e - z_q.detach()).pow(2).mean()
    return codebook, commitment


# ----------------------------------------------------------------------------- k-means and EMA

def kmeans(x: torch.Tensor, k: int, iters: int = 10, seed: int = 0) -> torch.Tensor:
    """Lloyd's k-means on (N, D) vectors; returns (k, D) centroids (empty clusters keep their old
    centroid). Initialised with k random vectors (with replacement if N < k)."""
    _check_vectors(x, "x")
    x = x.detach().reshape(-1, x.shape[-1]).float()
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
    """
    k = cluster_size.shape[0]
    z = z.detach().float()
    onehot = torch.nn.functional.one_hot(codes.long(), k).float()                    # (N, K)
    n_new = decay * cluster_size + (1 - decay) * onehot.sum(0)                       # (K,)
    m_new = decay * embed_sum + (1 - decay) * onehot.t() @ z                         # (K, D)
    total = n_new.sum()
    smoothed = (n_new + eps) / (total + k * eps) * total                            # (K,)
    return n_new, m_new, m_new / smoothed[:, None]


# ----------------------------------------------------------------------------- the module

class VectorQuantizer(nn.Module):
    """A VQ-VAE bottleneck over channel-last vectors (..., dim).

    codebook_size K, dim D; beta: commitment weight (0.25); ema: update the codebook by EMA
    (decay, eps) instead of the codebook loss (then the codebook is a buffer and only beta *
    commitment is in the loss); kmeans_init: fit the codebook on the first training batch
    (kmeans_iters Lloyd steps); dead_threshold: in training, restart codes whose EMA count (kept
    in both modes, decay ``decay``) falls below it with random vectors of the batch (0 = never).
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
        pick = torch.randint(flat.shape[0], (n_dead,), device=flat.device)
        new = flat[pick].float()
        self.codebook.data[dead] = new
        self.cluster_size[dead] = self.dead_threshold
        self.embed_sum[dead] = new * self.dead_threshold
        return n_dead

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (...,) -> vectors (..., D)."""
        return self.codebook[codes.long()]

    def forward(self, z: torch.Tensor, mask: torch.Tensor | None = None) -> QuantOut:
        """z: (..., D). mask (optional, bool (...,)): vectors that count for losses and updates."""
        _check_vectors(z, "z", self.dim)
        flat = z.reshape(-1, self.dim)                                            # (N, D)
        m = None if mask is None else mask.reshape(-1)                            # (N,)
        active = flat if m is None else flat[m]
        if self.training and not bool(self.initted) and active.shape[0] > 0:
            self._init(active)
        codes = nearest_code(flat, self.codebook)                                 # (N,)
        z_q = self.codebook[codes].to(z.dtype)                                    # raw code (N, D)
        # losses on the raw code, BEFORE the straight-through step (algorithms.md §0.3)
        if m is None:
            cb, commit = vq_losses(flat, z_q)
        else:
            w = m.float()[:, None]
            denom = (w.sum() * self.dim).clamp_min(1)
            cb = ((flat.detach() - z_q).pow(2) * w).sum() / denom
            commit = ((flat - z_q.detach()).pow(2) * w).sum() / denom
        loss = self.beta * commit + (0 if self.ema else cb)
        stats = {"commitment": commit.item()}
        if self.training:
            with torch.no_grad():
                c_act = codes if m is None else codes[m]
                onehot_counts = torch.bincount(c_act, minlength=self.codebook_size).float()
                if self.ema:
                    n, s, e = ema_update(self.cluster_size, self.embed_sum, active, c_act,
                                         self.decay, self.eps)
                    self.cluster_size.copy_(n)
                    self.embed_sum.copy_(s)
                    self.codebook.copy_(e)
                else:   # usage counts only (for monitoring and restarts)
                    self.cluster_size.mul_(self.decay).add_(onehot_counts, alpha=1 - self.decay)
                if self.dead_threshold > 0:
                    stats["restarted"] = self._restart_dead(active.detach())
        z_q_st = straight_through(flat, z_q)                                      # (N, D)
        c_stat = codes if m is None else codes[m]
        stats["perplexity"] = perplexity(c_stat, self.codebook_size)
        stats["usage"] = usage(c_stat, self.codebook_size)
        return QuantOut(z_q_st.reshape(z.shape), codes.reshape(z.shape[:-1]), loss, stats)


class ResidualVQ(nn.Module):
    """Residual VQ with ``n_quantizers`` codebooks (SoundStream Algorithm 1).

    r_0 = z; for i = 1..n_q: q_i = VQ_i(r_{i-1}), r_i = r_{i-1} - sg(q_i); z_hat = z + sg(sum q - z).
    quantizer_dropout: in training, each example (first axis) uses only its first n_q ~ U{1..N}
    levels (SoundStream; EnCodec and Mimi draw one n_q per batch). no_quantization_rate (Mimi): in
    training, each example bypasses the quantizer with this probability (its continuous z goes to
    the decoder and it takes no part in the codebook losses and updates). Other arguments go to
    every :class:`VectorQuantizer` (each level gets its own seed).
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

    def bits_per_vector(self, n_q: int | None = None) -> float:
        return (n_q or self.n_quantizers) * math.log2(self.codebook_size)

    def forward(self, z: torch.Tensor, n_q: int | None = None) -> QuantOut:
        """z: (B, ..., D). n_q: use the first n_q levels (all by default; no dropout then)."""
        _check_vectors(z, "z", self.dim)
        if n_q is not None and not 1 <= n_q <= self.n_quantizers:
            raise ValueError(f"n_q must be in 1..{self.n_quantizers}, got {n_q}")
        lead = z.shape[:-1]
        bypass = None
        if self.training and n_q is None and (self.quantizer_dropout or self.no_quantization_rate > 0):
            if self.quantizer_dropout:
                per_example = torch.randint(1, self.n_quantizers + 1, (z.shape[0],), device=z.device)
            else:
                per_example = torch.full((z.shape[0],), self.n_quantizers, device=z.device)
            if self.no_quantization_rate > 0:
                bypass = torch.rand(z.shape[0], device=z.device) < self.no_quantization_rate   # (B,)
                per_example = per_example.masked_fill(bypass, 0)
            n_active = per_example.view(-1, *([1] * (len(lead) - 1))).expand(lead)   # (B, ...)
            used = self.n_quantizers
        else:
            used = n_q or self.n_quantizers
            n_active = None
        residual, total = z, torch.zeros_like(z)
        codes, loss, stats = [], z.new_zeros(()), {}
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
            stats[f"perplexity_{i}"] = out.stats["perplexity"]
        z_hat = z + (total - z).detach()                                          # STE on the sum
        if bypass is not None:                                                    # Mimi: continuous z
            z_hat = torch.where(bypass.view(-1, *([1] * (z.dim() - 1))), z, z_hat)
        return QuantOut(z_hat, torch.stack(codes, -1), loss, stats)

    @torch.no_grad()
    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (..., L) -> sum of the L levels' vectors (..., D)."""
        return sum(self.levels[i].lookup(codes[..., i]) for i in range(codes.shape[-1]))
