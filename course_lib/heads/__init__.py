"""Generation heads on continuous tokens: where the two world lines meet (notebook 09).

A transformer over continuous tokens (:mod:`~course_lib.heads.backbone`, raster or MAR's masked
order) outputs a condition z per token; a small head turns z into the token:

| module | head | training | sampling, per token |
| --- | --- | --- | --- |
| :mod:`~course_lib.heads.mse` | :class:`MSEHead` | squared error (the baseline that averages) | 1 pass, deterministic |
| :mod:`~course_lib.heads.gaussian` | :class:`GaussianHead` | Gaussian likelihood (notebook 07: samples around the mean) | 1 pass |
| :mod:`~course_lib.heads.flow_head` | :class:`FlowHead` | flow matching, 4 (t, noise) draws per token (NextStep-1, MAR) | ``steps`` Euler passes |
| :mod:`~course_lib.heads.energy` | :class:`EnergyHead` | energy score with 2 (SLED) or more samples | 1 pass |
| :mod:`~course_lib.heads.meanflow_head` | :class:`MeanFlowHead` | MeanFlow's average velocity (notebook 11's one-step head) | ``steps`` jumps, default 1 |

All share :class:`~course_lib.heads.base.Head`'s interface (MAR's ``DiffLoss`` shape):
``head.loss(x, z)``, ``head.sample(z, *, steps=, cfg_scale=, z_uncond=, temperature=, generator=)``,
``head.nfe(steps)``; guidance is the head's (:mod:`~course_lib.heads.base`). The flow and energy
heads share the AdaLN MLP of :mod:`~course_lib.heads.adaln` (MAR's ``SimpleMLPAdaLN``). Time convention: t = 0 noise, t = 1 data.

Usage::

    from course_lib import heads
    head = heads.FlowHead(token_dim=8, cond_dim=64)
    loss = head.loss(x, z)                        # x (N, 8) tokens, z (N, 64) from the transformer
    x = head.sample(z, steps=8, generator=g)      # (N, 8)
"""
from course_lib.heads.adaln import AdaLNMLP
from course_lib.heads.base import Head, mix
from course_lib.heads.energy import EnergyHead, energy_score_loss, energy_score_samples
from course_lib.heads.flow_head import FlowHead
from course_lib.heads.gaussian import GaussianHead
from course_lib.heads.meanflow_head import MeanFlowHead
from course_lib.heads.mse import MSEHead

KINDS = {"mse": MSEHead, "flow": FlowHead, "energy": EnergyHead}   # notebook 09's; GaussianHead is 07's


def make(kind: str, token_dim: int, cond_dim: int, **kw) -> Head:
    """A head by name: ``"mse"``, ``"flow"`` or ``"energy"`` (keyword arguments go to its class)."""
    if kind not in KINDS:
        raise ValueError(f"unknown head {kind!r}: expected one of {', '.join(KINDS)}")
    return KINDS[kind](token_dim, cond_dim, **kw)


__all__ = ["Head", "MSEHead", "GaussianHead", "FlowHead", "EnergyHead", "MeanFlowHead", "AdaLNMLP", "energy_score_loss", "energy_score_samples", "mix", "make", "KINDS"]
