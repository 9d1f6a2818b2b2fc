"""Measures used across the course: distances between point clouds, and signal quality.

* :func:`sliced_wasserstein`: the sliced 2-Wasserstein distance between two point clouds (any dim),
  along given or random directions (the reference of notebook 08's exercise);
* :func:`swd_to_data`: the distance of a sampler's output to held-out data, averaged over seeds,
  and :func:`noise_floor`: the same for the data itself (the best a perfect model can score);
* :func:`grid_tv`: total variation between 2-D histograms, and :func:`grid_tv_floor`: its value for
  two draws of the data (an SWD is blind to a shape that keeps every 1-D projection; this is not);
* :func:`mmd`: maximum mean discrepancy with a sum of RBF kernels (unbiased estimate);
* :func:`frechet_distance`: the Fréchet distance between Gaussians fitted to two sets of features
  (FID's formula; the course's feature extractor is :mod:`course_lib.evaluator`);
* :func:`psnr` for images, :func:`snr_db` for audio;
* :func:`code_histogram`, :func:`perplexity`, :func:`usage`: how a tokenizer uses its codebook.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from course_lib import checks

# seeds of the draws the distances compare against, far from any training seed
HELD_OUT_SEED = 20_000      # the reference draw of the data for evaluation seed s: HELD_OUT_SEED + s
FLOOR_SEED = 50_000         # the second, independent draw that measures the noise floor


# ----------------------------------------------------------------------------- point clouds

def random_directions(dim: int, n: int, seed: int = 0) -> torch.Tensor:
    """n random directions in R^dim, (dim, n) float64, drawn on the CPU from ``seed`` (not yet of
    unit length: :func:`sliced_wasserstein` normalises them)."""
    return torch.randn(checks.positive_int(dim, "dim"), checks.positive_int(n, "n"),
                       generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def sliced_wasserstein(x: torch.Tensor, y: torch.Tensor, directions: torch.Tensor | int = 256,
                       seed: int = 0) -> torch.Tensor:
    """Sliced 2-Wasserstein distance (Rabin et al. 2011, "Wasserstein Barycenter and its Application
    to Texture Mixing", §3; Bonneel et al. 2015, "Sliced and Radon Wasserstein Barycenters of
    Measures", eq. 2):

        SW(x, y) = sqrt( mean_p  W2^2(<x, d_p>, <y, d_p>) ),   d_p = directions[:, p] / |directions[:, p]|,
        W2^2 of two 1-D sets of equal size N = mean_i (sorted_a_i - sorted_b_i)^2.

    Along a line, optimal transport matches the sorted values, so each slice costs one sort.
    For sizes N != M it matches quantiles: W2^2 = int_0^1 (F_a^-1(u) - F_b^-1(u))^2 du, exactly,
    both empirical quantile functions being constant between the merged breakpoints i/N and j/M
    (Peyré & Cuturi 2019, "Computational Optimal Transport", ch. 2, the 1-D case;
    :func:`_unequal_w2`). A set against itself repeated twice is at distance 0.

    x: (N, D), y: (M, D). ``directions``: a (D, P) tensor (normalised here), or a count P of
    :func:`random_directions` drawn from ``seed`` (then x and y are compared in float64). With
    N != M the sorted projections are compared by their exact quantile functions. Returns a 0-d tensor
    (``float(...)`` for a number). Estimates at small N are noisy: read them against
    :func:`noise_floor` at the same N.
    """
    checks.tensor(x, "x", ndim=2, floating=True, shape="(N, D)")
    checks.tensor(y, "y", ndim=2, floating=True, shape="(M, D)")
    checks.rows(x, "x")
    checks.rows(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same dimension, got {x.shape[1]} and {y.shape[1]}")
    if not isinstance(directions, torch.Tensor):
        checks.positive_int(directions, "directions")
        directions = random_directions(x.shape[1], directions, seed)            # (D, P) float64
    checks.tensor(directions, "directions", ndim=2, floating=True, shape=f"({x.shape[1]}, P)")
    if directions.shape[0] != x.shape[1]:
        raise ValueError(f"directions: expected shape ({x.shape[1]}, P), got {tuple(directions.shape)}")
    dt = torch.promote_types(torch.promote_types(x.dtype, y.dtype), directions.dtype)
    d = directions.to(x.device, dt)
    d = d / d.norm(dim=0, keepdim=True)                                         # (D, P) unit columns
    px = torch.sort(x.to(dt) @ d, dim=0).values                                 # (N, P)
    py = torch.sort(y.to(x.device, dt) @ d, dim=0).values                       # (M, P)
    if px.shape[0] != py.shape[0]:
        return _unequal_w2(px, py).mean().sqrt()
    return (px - py).pow(2).mean().sqrt()


def _unequal_w2(px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    """Exact W2^2 between the empirical measures of sorted columns px (N, P) and py (M, P), (P,).

    The quantile function of N sorted values is px[ceil(u N) - 1] on u in (0, 1]. On the merged
    grid of breakpoints i/N and j/M (written as the integers i M and j N over N M, so no rounding
    decides which value an interval takes) both are constant, and the integral is a weighted sum.
    """
    n, m = px.shape[0], py.shape[0]
    dev = px.device
    ends = torch.unique(torch.cat([torch.arange(1, n + 1, device=dev) * m,
                                   torch.arange(1, m + 1, device=dev) * n]))         # (K,) sorted, last N M
    starts = torch.cat([ends.new_zeros(1), ends[:-1]])                               # (K,)
    ix = (ends + m - 1) // m - 1                                                    # ceil(end / M) - 1
    iy = (ends + n - 1) // n - 1                                                    # ceil(end / N) - 1
    w = ((ends - starts).to(px.dtype) / (n * m))[:, None]                           # (K, 1), sums to 1
    return (w * (px[ix] - py[iy]).pow(2)).sum(0)                                    # (P,)


def swd_to_data(sample_fn: Callable, data_fn: Callable, n: int, seeds=(0,), n_projections: int = 256,
                distance: Callable = sliced_wasserstein) -> float:
    """How far a sampler's output is from the data: the mean over evaluation seeds s of

        distance(sample_fn(n, s), data_fn(n, HELD_OUT_SEED + s), random_directions(D, n_projections, s)),

    both clouds in float64. ``sample_fn(n, seed) -> (n, D)`` (a model's samples from seeded noise,
    or the data itself for :func:`noise_floor`); ``data_fn(n, seed) -> (n, D)`` draws the data.
    ``distance`` is :func:`sliced_wasserstein` or a function with its signature (a learner's own).
    """
    checks.positive_int(n, "n")
    seeds = tuple(seeds)
    if not seeds:
        raise ValueError("seeds: expected at least one evaluation seed, got none")
    vals = []
    for s in seeds:
        x = sample_fn(n, s)                                                     # (n, D)
        ref = data_fn(n, HELD_OUT_SEED + s)                                     # (n, D) held-out data
        dirs = random_directions(x.shape[1], n_projections, s).to(x.device)     # (D, P)
        vals.append(float(distance(x.double(), ref.double().to(x.device), dirs)))
    return sum(vals) / len(vals)


def noise_floor(data_fn: Callable, n: int, seeds=(0, 1, 2), n_projections: int = 256,
                distance: Callable = sliced_wasserstein) -> float:
    """The score of a perfect model at this sample size: :func:`swd_to_data` of a second,
    independent draw of the data (``data_fn(n, FLOOR_SEED + s)``). Two finite draws of the same
    distribution are never at distance 0; a model within the floor cannot be told from the data."""
    return swd_to_data(lambda m, s: data_fn(m, FLOOR_SEED + s), data_fn, n, seeds, n_projections, distance)


def grid_tv(x: torch.Tensor, y: torch.Tensor, bins: int = 32, lim: float = 4.0) -> float:
    """Total variation distance between the 2-D histograms of x (N, 2) and y (M, 2):

        TV = 1/2 sum_cells | p_cell - q_cell |,   p, q: fractions of points per cell,

    on a ``bins`` x ``bins`` grid over [-lim, lim]^2, plus one cell for every point outside it (so
    mass is never lost). 0 for equal histograms, 1 for disjoint ones. It sees the *shape* of a
    distribution at the grid's scale (8 / 32 = 0.25 by default): a filled disk and a spiral with the
    same radial profile have nearly the same 1-D projections, hence nearly the same sliced
    Wasserstein distance, but not the same cells. Estimates are biased upwards by sampling noise:
    read them against :func:`grid_tv_floor` at the same N (only meaningful in low dimension: the
    number of cells grows like bins^D).
    """
    checks.tensor(x, "x", ndim=2, floating=True, shape="(N, 2)")
    checks.tensor(y, "y", ndim=2, floating=True, shape="(M, 2)")
    checks.rows(x, "x")
    checks.rows(y, "y")
    if x.shape[1] != 2 or y.shape[1] != 2:
        raise ValueError(f"grid_tv compares 2-D points: got dimensions {x.shape[1]} and {y.shape[1]}")
    checks.positive_int(bins, "bins")
    if not lim > 0:
        raise ValueError(f"lim must be > 0, got {lim!r}")

    def hist(p):
        p = p.detach().double().cpu()
        idx = torch.floor((p + lim) / (2 * lim) * bins).long()                  # (N, 2) cell per axis
        inside = ((idx >= 0) & (idx < bins)).all(1)                             # (N,)
        flat = torch.where(inside, idx[:, 0] * bins + idx[:, 1], bins * bins)   # outside -> last cell
        return torch.bincount(flat, minlength=bins * bins + 1).double() / max(p.shape[0], 1)
    return 0.5 * (hist(x) - hist(y)).abs().sum().item()


def grid_tv_to_data(sample_fn: Callable, data_fn: Callable, n: int, seeds=(0,), bins: int = 32,
                    lim: float = 4.0) -> float:
    """:func:`grid_tv` of a sampler's output to held-out data, averaged over evaluation seeds s:
    ``grid_tv(sample_fn(n, s), data_fn(n, HELD_OUT_SEED + s))`` (the same draws as
    :func:`swd_to_data`)."""
    checks.positive_int(n, "n")
    seeds = tuple(seeds)
    if not seeds:
        raise ValueError("seeds: expected at least one evaluation seed, got none")
    return sum(grid_tv(sample_fn(n, s), data_fn(n, HELD_OUT_SEED + s), bins, lim) for s in seeds) / len(seeds)


def grid_tv_floor(data_fn: Callable, n: int, seeds=(0,), bins: int = 32, lim: float = 4.0) -> float:
    """The grid TV of a perfect model at n points: data (``data_fn(n, FLOOR_SEED + s)``) against a
    fresh draw of the data, as :func:`noise_floor` does for the SWD."""
    return grid_tv_to_data(lambda m, s: data_fn(m, FLOOR_SEED + s), data_fn, n, seeds, bins, lim)


def mmd(x: torch.Tensor, y: torch.Tensor, bandwidths=(0.1, 0.2, 0.5, 1.0, 2.0)) -> float:
    """Squared MMD with a sum of RBF kernels exp(-|a-b|^2 / (2 h^2)), unbiased U-statistic
    (Gretton et al. 2012, eq. 3). x: (N, D), y: (M, D)."""
    checks.tensor(x, "x", ndim=2, floating=True, shape="(N, D)")
    checks.tensor(y, "y", ndim=2, floating=True, shape="(M, D)")
    checks.rows(x, "x", 2)                                   # the U-statistic divides by n (n - 1)
    checks.rows(y, "y", 2)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same dimension, got {x.shape[1]} and {y.shape[1]}")
    for h in bandwidths:
        checks.number(h, "bandwidths", 1e-12)                # a bandwidth of 0 divides by 0
    x, y = x.double(), y.double().to(x.device)
    def k(a, b):
        d2 = torch.cdist(a, b).pow(2)
        return sum(torch.exp(-d2 / (2 * h * h)) for h in bandwidths)
    n, m = x.shape[0], y.shape[0]
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return (sxx + syy - 2 * kxy.mean()).item()


# ----------------------------------------------------------------------------- signal quality

def frechet_distance(feats_a: torch.Tensor, feats_b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (Heusel et al. 2017, "GANs
    Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium", §"Fréchet
    Inception Distance"; the formula of Dowson & Landau 1982):

        d^2 = |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))

    feats_a (N, F), feats_b (M, F), each with at least 2 rows. Computed in float64, with
    tr((S_a S_b)^(1/2)) = sum sqrt(eig(S_a^(1/2) S_b S_a^(1/2))), a symmetric PSD matrix (no complex
    square root, unlike scipy.linalg.sqrtm). Returns d^2 (as FID reports it). With few samples the
    estimate is biased upwards: compare it to two draws of real data at the same N."""
    checks.tensor(feats_a, "feats_a", ndim=2, floating=True, shape="(N, F)")
    checks.tensor(feats_b, "feats_b", ndim=2, floating=True, shape="(M, F)")
    if feats_a.shape[1] != feats_b.shape[1]:
        raise ValueError(f"feats_a and feats_b must have the same feature size, got {feats_a.shape[1]} "
                         f"and {feats_b.shape[1]}")
    checks.rows(feats_a, "feats_a", 2)                       # a covariance needs 2 rows
    checks.rows(feats_b, "feats_b", 2)
    a, b = feats_a.detach().double().cpu(), feats_b.detach().double().cpu()
    mu_a, mu_b = a.mean(0), b.mean(0)                                        # (F,)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)                            # (F, F)
    ev, vecs = torch.linalg.eigh(cov_a)
    root_a = vecs @ torch.diag(ev.clamp(min=0).sqrt()) @ vecs.T              # S_a^(1/2)
    mid = root_a @ cov_b @ root_a
    tr_sqrt = torch.linalg.eigvalsh((mid + mid.T) / 2).clamp(min=0).sqrt().sum()
    d2 = (mu_a - mu_b).pow(2).sum() + torch.trace(cov_a) + torch.trace(cov_b) - 2 * tr_sqrt
    return max(float(d2), 0.0)


def psnr(x: torch.Tensor, y: torch.Tensor, max_value: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB, 10 log10(max^2 / MSE), over all elements. Values far above
    ``max_value`` (images in [0, 255] scored with max_value = 1) are refused, naming max_value."""
    checks.tensor(x, "x")
    checks.tensor(y, "y")
    checks.number(max_value, "max_value", 1e-12)
    if x.numel() and max(float(x.abs().max()), float(y.abs().max())) > 2 * max_value:
        raise ValueError(f"max_value: the values reach {max(float(x.abs().max()), float(y.abs().max())):.4g}, far "
                         f"above max_value = {max_value:g}: pass the images' range (e.g. max_value=255) or scale them")
    if x.shape != y.shape:
        raise ValueError(f"y: expected the shape of x, {tuple(x.shape)} (psnr needs equal shapes), "
                         f"got {tuple(y.shape)}")
    mse = (x.double() - y.double()).pow(2).mean().item()
    return float("inf") if mse == 0 else 10 * math.log10(max_value ** 2 / mse)


def snr_db(reference: torch.Tensor, estimate: torch.Tensor) -> float:
    """Signal-to-noise ratio in dB, 10 log10(|ref|^2 / |ref - est|^2), over all elements."""
    checks.tensor(reference, "reference")
    checks.tensor(estimate, "estimate")
    if reference.numel() == 0:
        raise ValueError("reference: expected at least one sample, got an empty tensor")
    if reference.shape != estimate.shape:
        raise ValueError(f"estimate: expected the shape of reference, {tuple(reference.shape)} (snr_db needs "
                         f"equal shapes), got {tuple(estimate.shape)}")
    signal = reference.double().pow(2).sum().item()
    noise = (reference.double() - estimate.double()).pow(2).sum().item()
    return float("inf") if noise == 0 else 10 * math.log10(signal / max(noise, 1e-300))


# ----------------------------------------------------------------------------- codebook usage

def code_histogram(codes: torch.Tensor, codebook_size: int) -> torch.Tensor:
    """Fraction of vectors assigned to each code, (K,) float summing to 1. ``codes``: integer ids in
    [0, codebook_size) (at least one)."""
    checks.positive_int(codebook_size, "codebook_size")
    checks.index_range(codes, "codes", codebook_size)
    if codes.numel() == 0:
        raise ValueError("codes: expected at least one code, got an empty tensor")
    counts = torch.bincount(codes.reshape(-1).long(), minlength=codebook_size).float()
    return counts / counts.sum().clamp_min(1)


def perplexity(codes: torch.Tensor, codebook_size: int) -> float:
    """exp(entropy of the average code usage): K when all codes are used equally, 1 on collapse."""
    p = code_histogram(codes, codebook_size)
    return math.exp(-(p * torch.log(p.clamp_min(1e-12))).sum().item())


def usage(codes: torch.Tensor, codebook_size: int) -> float:
    """Fraction of the codebook used at least once by ``codes``."""
    return (code_histogram(codes, codebook_size) > 0).float().mean().item()
