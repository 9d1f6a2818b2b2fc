"""Scalar rounding of continuous tokens: the simplest way to spend a fixed number of bits on a
real-valued latent (notebook 07 compares it with a learned VQ codebook at the same bits per image).

Each number is rounded to one of 2^bits levels placed at the standard normal's quantiles, so that
on normalised (about N(0, 1)) latents every level is used about equally often: the same bits buy
the most information a fixed per-number quantizer can carry (FSQ, Mentzer et al. 2023, uses
uniform levels after a bounding function instead).
"""
from __future__ import annotations

import torch


def round_to_bits(latents: torch.Tensor, bits: int) -> torch.Tensor:
    """Each number of (normalised, about N(0, 1)) latents rounded to the nearest of 2^bits levels
    placed at the standard normal's quantiles (k + 1/2) / 2^bits, k = 0 .. 2^bits - 1: every level
    is used about equally often. Returns a new tensor shaped like ``latents``."""
    if isinstance(bits, bool) or not isinstance(bits, int) or bits < 1:
        raise ValueError(f"bits: expected an int >= 1, got {bits!r}")
    q = (torch.arange(2 ** bits, dtype=torch.float32) + 0.5) / 2 ** bits
    levels = torch.distributions.Normal(0.0, 1.0).icdf(q).to(latents)             # (L,)
    idx = (latents[..., None] - levels).abs().argmin(-1)                             # (..., ) nearest level
    return levels[idx]
