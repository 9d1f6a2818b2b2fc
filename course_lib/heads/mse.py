"""The MSE head: regress the token on z (the failing baseline of notebook 09).

    loss = || f(z) - x ||^2  (mean over tokens and dimensions),     sample = f(z)

Regression is what a continuous-token model trained like a language model would do if it swapped
cross-entropy for a squared error. The minimiser of the expected squared error is the conditional
MEAN E[x | z]: when several tokens are possible after the same context (the shape a little to the
left or to the right, this colour or that one), the head outputs their average, a token that may
belong to none of them (notebook 07's "MSE trap"). MAR (Li et al. 2024, §3) and NextStep-1 replace it
by a generative head for exactly this reason; here it is the baseline they beat.

It is deterministic: ``generator`` and ``temperature`` change nothing, ``steps`` is ignored.
Guidance mixes the conditions (:func:`~course_lib.heads.base.mix`).

``hidden`` sets the depth: 2 hidden SiLU layers of ``width`` (notebook 09's baseline), or 0, a
single linear map x = W z + b (notebook 07's ``MSEHead``: "x_hat_i = Linear(z_i)").
"""
from __future__ import annotations

import torch
from torch import nn

from course_lib import checks
from course_lib.heads.base import Head, mix


class MSEHead(Head):
    """An MLP z -> x (``hidden`` SiLU layers of ``width``; 0: one linear layer), trained with the
    squared error."""

    def __init__(self, token_dim: int, cond_dim: int, width: int = 128, hidden: int = 2):
        super().__init__(token_dim, cond_dim)
        width, hidden = checks.positive_int(width, "width"), checks.positive_int(hidden, "hidden", 0)
        sizes = [cond_dim] + [width] * hidden + [token_dim]
        layers = []
        for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
            layers += [nn.Linear(a, b)] + ([nn.SiLU()] if i < hidden else [])
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self._z(z))                                          # (..., token_dim)

    def flat_loss(self, x, z, generator=None):
        return (self.net(z) - x).pow(2).mean()                               # mean over tokens and dims

    def flat_sample(self, z, steps, generator, z_uncond, cfg_scale, temperature):
        return self.net(mix(z, z_uncond, cfg_scale))                          # (N, token_dim)
