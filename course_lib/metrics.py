"""Measures used across the course: distances between point clouds, and signal quality.

* :func:`sliced_wasserstein`: sliced 2-Wasserstein distance between two point clouds (any dim);
* :func:`noise_floor`: the same distance between two independent draws of the data itself;
* :func:`mmd`: maximum mean discrepancy with a sum of RBF kernels (unbiased estimate);
* :func:`psnr` for images, :func:`snr_db` for audio;
* :func:`code_histogram`, :func:`perplexity`, :func:`usage`: how a tokenizer uses its codebook.
"""
from __future__ import annotations

import math

import torch


def _check_cloud(x, name):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2 or x.shape[0] < 2:
        raise ValueError(f"{name} must have shape (N, D) with N >= 2, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor, got {x.dtype}")


def sliced_wasserstein(x: torch.Tensor, y: torch.Tensor, n_projections: int = 256, seed: int = 0) -> float:
    """Sliced 2-Wasserstein distance: sqrt of the mean, over random unit directions, of the squared
    1-D Wasserstein-2 distance between the projections (Rabin et al. 2011; Bonneel et al. 2015).

    x: (N, D), y: (M, D). With N != M the sorted projections are compared at matching quantiles.
    Estimates at small N are noisy: compare against :func:`noise_floor` at the same N.
    """
    _check_cloud(x, "x")
    _check_cloud(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same dimension, got {x.shape[1]} and {y.shape[1]}")
    g = torch.Generator().manual_seed(seed)
    dirs = torch.randn(x.shape[1], n_projections, generator=g, dtype=torch.float64)
    dirs = (dirs / dirs.norm(dim=0, keepdim=True)).to(x.device)                # (D, P)
    px = torch.sort(x.double() @ dirs, dim=0).values                            # (N, P)
    py = torch.sort(y.double().to(x.device) @ dirs, dim=0).values               # (M, P)
    if px.shape[0] != py.shape[0]:
        n = max(px.shape[0], py.shape[0])
        q = (torch.arange(n, device=x.device, dtype=torch.float64) + 0.5) / n
        px = torch.quantile(px, q, dim=0, interpolation="nearest") if px.shape[0] != n else px
        py = torch.quantile(py, q, dim=0, interpolation="nearest") if py.shape[0] != n else py
    return math.sqrt(((px - py) ** 2).mean().item())


def noise_floor(sample_fn, n: int, n_projections: int = 256, seeds=(0, 1, 2)) -> float:
    """Mean SWD between two independent draws of size ``n`` of ``sample_fn(n, seed)``: the value a
    perfect model would score at this sample size."""
    vals = [sliced_wasserstein(sample_fn(n, 1000 + 2 * s), sample_fn(n, 1001 + 2 * s), n_projections, s)
            for s in seeds]
    return sum(vals) / len(vals)


def mmd(x: torch.Tensor, y: torch.Tensor, bandwidths=(0.1, 0.2, 0.5, 1.0, 2.0)) -> float:
    """Squared MMD with a sum of RBF kernels exp(-|a-b|^2 / (2 h^2)), unbiased U-statistic
    (Gretton et al. 2012, eq. 3). x: (N, D), y: (M, D)."""
    _check_cloud(x, "x")
    _check_cloud(y, "y")
    x, y = x.double(), y.double().to(x.device)
    def k(a, b):
        d2 = torch.cdist(a, b).pow(2)
        return sum(torch.exp(-d2 / (2 * h * h)) for h in bandwidths)
    n, m = x.shape[0], y.shape[0]
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return (sxx + syy - 2 * kxy.mean()).item()


def psnr(x: torch.Tensor, y: torch.Tensor, max_value: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB, 10 log10(max^2 / MSE), over all elements."""
    if x.shape != y.shape:
        raise ValueError(f"psnr needs equal shapes, got {tuple(x.shape)} and {tuple(y.shape)}")
    mse = (x.double() - y.double()).pow(2).mean().item()
    return float("inf") if mse == 0 else 10 * math.log10(max_value ** 2 / mse)


def snr_db(reference: torch.Tensor, estimate: torch.Tensor) -> float:
    """Signal-to-noise ratio in dB, 10 log10(|ref|^2 / |ref - est|^2), over all elements."""
    if reference.shape != estimate.shape:
        raise ValueError(f"snr_db needs equal shapes, got {tuple(reference.shape)} and {tuple(estimate.shape)}")
    signal = reference.double().pow(2).sum().item()
    noise = (reference.double() - estimate.double()).pow(2).sum().item()
    return float("inf") if noise == 0 else 10 * math.log10(signal / max(noise, 1e-300))


# ----------------------------------------------------------------------------- codebook usage

def code_histogram(codes: torch.Tensor, codebook_size: int) -> torch.Tensor:
    """Fraction of vectors assigned to each code, (K,) float summing to 1."""
    counts = torch.bincount(codes.reshape(-1).long(), minlength=codebook_size).float()
    return counts / counts.sum().clamp_min(1)


def perplexity(codes: torch.Tensor, codebook_size: int) -> float:
    """exp(entropy of the average code usage): K when all codes are used equally, 1 on collapse."""
    p = code_histogram(codes, codebook_size)
    return math.exp(-(p * torch.log(p.clamp_min(1e-12))).sum().item())


def usage(codes: torch.Tensor, codebook_size: int) -> float:
    """Fraction of the codebook used at least once by ``codes``."""
    return (code_histogram(codes, codebook_size) > 0).float().mean().item()
