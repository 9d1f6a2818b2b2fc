"""The Gaussian head: one diagonal Gaussian per token (notebook 07's second failing head).

    (mu, log sigma) = Linear(z),   loss = -log N(x; mu, diag sigma^2)  (:func:`~course_lib.orders.continuous.gaussian_nll`),
    sample = mu + temperature * sigma * eps,   eps ~ N(0, I)

The mixture-free case of Graves 2013 ("Generating Sequences With Recurrent Neural Networks", §4,
mixture density outputs with one component). It samples, unlike the MSE head, but around the same
conditional mean: one bump cannot sit on two answers. log sigma is clamped to [-7, 2], so the
likelihood cannot blow up on a dimension with no spread. One network pass per token; guidance
mixes the conditions (:func:`~course_lib.heads.base.mix`), as the other one-step heads.
"""
from __future__ import annotations

import torch
from torch import nn

from course_lib.heads.base import Head, mix
from course_lib.orders.continuous import gaussian_nll


class GaussianHead(Head):
    """x ~ N(mu(z), diag sigma(z)^2) with Linear(z) -> (mu, log sigma), each (..., D)."""

    def __init__(self, token_dim: int, cond_dim: int):
        super().__init__(token_dim, cond_dim)
        self.out = nn.Linear(cond_dim, 2 * token_dim)

    def params(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, log sigma), each (..., D), for conditions z (..., C)."""
        mu, log_sigma = self.out(self._z(z)).chunk(2, dim=-1)                  # 2 x (..., D)
        return mu, log_sigma.clamp(-7.0, 2.0)

    def flat_loss(self, x, z, generator=None):
        return gaussian_nll(*self.params(z), x)                                # x (N, D), z (N, C)

    def flat_sample(self, z, steps, generator, z_uncond, cfg_scale, temperature):
        mu, log_sigma = self.params(mix(z, z_uncond, cfg_scale))               # (N, D) each
        eps = self._noise(mu.shape[0], self.token_dim, generator, mu)          # (N, D)
        return mu + temperature * log_sigma.exp() * eps
