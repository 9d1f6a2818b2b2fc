"""The energy-distance head: a generator trained with the energy score, one step per token.

SLED (Ma et al. 2025, "Efficient Speech Language Modeling via Energy Distance in Continuous Latent
Space", arXiv 2505.13181, §3; ictnlp/SLED-TTS ``sled/energy_distance.py``, ``ScoreLossZ``). The head
is an implicit generator x = g(eps | z): noise eps ~ N(0, I) in, a token out, one network pass. It
is trained without any likelihood or time, with the **energy score** (Gneiting & Raftery 2007), a
strictly proper scoring rule for beta in (0, 2): for two independent samples x', x'' from the head
given the same z and the true token y,

    loss = || x' - y ||^beta + || x'' - y ||^beta - || x' - x'' ||^beta,      beta = 1,

averaged over tokens. The first two terms pull samples toward the data; the third pushes the two
samples apart, so the head cannot collapse onto the mean: with it, the expected loss is minimised
only by the true conditional distribution. Without it (one sample, or beta = 2, where the score only
sees the mean) the head would be the MSE head again. That is why two samples per condition are
needed, and they must share z.

Deviation (optional, default off): ``n_samples`` = m > 2 draws m samples per condition and uses
:func:`energy_score_samples`, the same unbiased estimate of the energy score averaged over all
m (m - 1) / 2 pairs: less variance per step, for m network passes per token in training (sampling
stays one pass). SLED uses m = 2; notebook 09 uses m = 8, as the flow head learns from 4 noise draws
per token.

Sampling is one pass: x = g(eps | z). Guidance mixes the conditions, z = z_u + w (z_c - z_u), as
SLED's ``sample`` does. SLED's own network lets the noise modulate a residual stream that carries
z; the course's :class:`~course_lib.heads.adaln.AdaLNMLP` does it the other way round (z modulates,
noise flows), the same as the flow head's, so the two heads differ only in their training.
"""
from __future__ import annotations

import torch

from course_lib import checks
from course_lib.heads.adaln import AdaLNMLP
from course_lib.heads.base import Head, mix


def energy_score_samples(xs: torch.Tensor, y: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """The energy-score loss from m >= 2 samples per condition, on SLED's scale, mean over rows:

        (2 / m) sum_i ||x_i - y||^b  -  (2 / (m (m - 1))) sum_{i<j} ||x_i - x_j||^b,

    an unbiased estimate of 2 (E||X - y||^b - E||X - X'||^b / 2) like the two-sample loss (which it
    equals at m = 2), with less variance for larger m. xs: (m, N, D), y: (N, D). Returns a scalar.
    """
    m = xs.shape[0]
    to_data = torch.linalg.vector_norm(xs - y, dim=-1).pow(beta)            # (m, N)
    # the m (m - 1) / 2 pairs one by one: gathering them with index tensors made the backward pass
    # accumulate in a thread-dependent order, and two identical trainings drifted apart
    spread = sum(torch.linalg.vector_norm(xs[i] - xs[j], dim=-1).pow(beta)
                 for i in range(m) for j in range(i + 1, m))                # (N,)
    return (2 / m) * to_data.sum(0).mean() - (2 / (m * (m - 1))) * spread.mean()


def energy_score_loss(x1: torch.Tensor, x2: torch.Tensor, y: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """The two-sample energy-score loss, mean over rows: ||x1 - y||^b + ||x2 - y||^b - ||x1 - x2||^b.

    x1, x2: (N, D) two samples for the same conditions; y: (N, D) the true tokens. Returns a scalar.
    """
    d1 = torch.linalg.vector_norm(x1 - y, dim=-1).pow(beta)                 # (N,)
    d2 = torch.linalg.vector_norm(x2 - y, dim=-1).pow(beta)                 # (N,)
    spread = torch.linalg.vector_norm(x1 - x2, dim=-1).pow(beta)            # (N,)
    return (d1 + d2 - spread).mean()


class EnergyHead(Head):
    """x = g(eps | z): an :class:`~course_lib.heads.adaln.AdaLNMLP` without time, noise of
    ``noise_dim`` (default token_dim) in; trained with :func:`energy_score_loss` (beta = 1)."""

    def __init__(self, token_dim: int, cond_dim: int, width: int = 128, depth: int = 3,
                 noise_dim: int | None = None, beta: float = 1.0, n_samples: int = 2):
        super().__init__(token_dim, cond_dim)
        self.n_samples = checks.positive_int(n_samples, "n_samples")
        if self.n_samples < 2:
            raise ValueError(f"n_samples: the energy score needs at least 2 samples per condition, got {n_samples}")
        self.noise_dim = checks.positive_int(noise_dim or token_dim, "noise_dim")
        self.beta = checks.number(beta, "beta", 0.0, 2.0)
        self.net = AdaLNMLP(self.noise_dim, cond_dim, width, depth, out_dim=token_dim, time=False)

    def forward(self, eps: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """g(eps | z): eps (N, noise_dim), z (N, C) -> (N, D)."""
        return self.net(eps, z)

    def flat_loss(self, x, z, generator=None):
        """Energy score with ``n_samples`` samples per condition (all from the same z); x (N, D), z (N, C)."""
        m = self.n_samples
        eps = self._noise(m * z.shape[0], self.noise_dim, generator, z)     # (m N, E)
        xs = self(eps, z.repeat(m, 1)).unflatten(0, (m, z.shape[0]))        # (m, N, D), one batch
        if m == 2:
            return energy_score_loss(xs[0], xs[1], x, self.beta)
        return energy_score_samples(xs, x, self.beta)

    def flat_sample(self, z, steps, generator, z_uncond, cfg_scale, temperature):
        z = mix(z, z_uncond, cfg_scale)
        eps = temperature * self._noise(z.shape[0], self.noise_dim, generator, z)   # (N, E)
        return self(eps, z)                                                  # (N, D)
