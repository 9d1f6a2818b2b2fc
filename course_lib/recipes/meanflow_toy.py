"""The exactly solvable flow of notebook 10 (sections 1, 2 and 8, and tests/test_meanflow.py): noise
N(0, I) to data N(mu, diag(sig^2)), where the instantaneous and the average velocity are known in
closed form, and a small MeanFlow network trained on it.

Usage::

    gf = GaussianFlow((2.0, -1.0), (0.5, 1.5))
    u = toy_net();  train_toy(u, gf, 1500);  one_step_error(u, gf)   # RMS error of u(z, 0, 1)
    u = trained_toy(gf, 1500, "swapped tangent", mode="lecture")      # the same through the model cache

The pitfalls of section 9 (:data:`PITFALLS`): each trains without an error and without a NaN, and
learns the wrong map. :func:`trained_toy` trains (or loads: the course ships their lecture-mode
weights) the small network with one of them.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from course_lib import checks, nets, runtime, train
from course_lib.flow import meanflow as mf


class GaussianFlow:
    """Noise N(0, I) to data N(mu, diag(sig^2)) with independent pairs, x_t = (1 - t) x_0 + t x_1: a flow
    whose instantaneous AND average velocities are known in closed form. The marginal at t is
    N(t mu, s_t^2) per coordinate, s_t = sqrt((1 - t)^2 + t^2 sig^2), and the marginal flow moves every
    point by the affine map z_b = b mu + (s_b / s_a)(z_a - a mu), so

        v(z, t)    = mu + (s_t' / s_t)(z - t mu),
        u(z, a, b) = (z_b - z) / (b - a)      (and v(z, a) at b = a).

    The trajectories bend (s_t is not linear in t, and differently per coordinate), so v and u differ.
    z (N, D); t, a, b (N,); any float dtype."""

    def __init__(self, mu=(2.0, -1.0), sig=(0.5, 1.5)):
        self.mu = torch.as_tensor(mu, dtype=torch.float64)
        self.sig = torch.as_tensor(sig, dtype=torch.float64)

    def _s(self, t, like):
        sig = self.sig.to(like)
        return ((1 - t) ** 2 + t ** 2 * sig ** 2).sqrt()

    def v(self, z, t):
        t = t[:, None]                                                       # (N, 1)
        ds = (-(1 - t) + t * self.sig.to(z) ** 2) / self._s(t, z)            # d s_t / d t, (N, D)
        return self.mu.to(z) + ds / self._s(t, z) * (z - t * self.mu.to(z))

    def u(self, z, a, b):
        a_, b_ = a[:, None], b[:, None]                                      # (N, 1)
        h = b_ - a_
        z_b = b_ * self.mu.to(z) + self._s(b_, z) / self._s(a_, z) * (z - a_ * self.mu.to(z))
        far = h.abs() > 1e-12
        return torch.where(far, (z_b - z) / torch.where(far, h, torch.ones_like(h)), self.v(z, a))

    def data(self, n: int, generator: torch.Generator | None = None, dtype=torch.float32):
        """n samples of the data N(mu, diag(sig^2)), (n, D)."""
        x = torch.randn(n, len(self.mu), generator=generator, dtype=torch.float64)
        return (self.mu + self.sig * x).to(dtype)


def toy_net(seed: int = 1, max_freq: float = 3.0) -> mf.MeanFlowNet:
    """The small MeanFlow network of the Gaussian flow (3 x 64, time features up to ``max_freq``)."""
    runtime.seed_everything(seed)
    return mf.MeanFlowNet(nets.MLPConfig(dim=2, hidden=64, depth=3, time_inputs=2, max_freq=max_freq)).to(runtime.device())


def train_toy(u, gflow: GaussianFlow, steps: int, target: Callable | None = None, progress: bool = False):
    """Train ``u`` on the Gaussian flow: batches of 256, times logit-normal(0, 2) with half at b = a,
    adaptive loss p = 0.5 (tests/test_meanflow.py's learning test), ``target`` as in
    :func:`course_lib.flow.meanflow.loss`. Returns the History."""
    def loss_fn(step):
        g = torch.Generator().manual_seed(step)
        x1 = gflow.data(256, g).to(checks.model_device(u))
        return mf.loss(u, x1, share_equal=0.5, mean=0.0, std=2.0, p=0.5, generator=g, target=target)
    return train.train(u, loss_fn, steps, lr=3e-3, schedule="cosine", progress=progress, desc="MeanFlow on Gaussians")


def one_step_error(u, gflow: GaussianFlow, n: int = 4096) -> float:
    """RMS error of the learned u(z, 0, 1) against the exact one on n noise points (seed 9)."""
    dev = checks.model_device(u)
    z = torch.randn(n, 2, generator=torch.Generator().manual_seed(9)).to(dev)
    zeros, ones = torch.zeros(n, device=dev), torch.ones(n, device=dev)
    with torch.no_grad():
        got = u(z, zeros, ones)
    want = gflow.u(z.double(), zeros.double(), ones.double()).float()
    return float((got - want).pow(2).sum(1).mean().sqrt())


# ----------------------------------------------------------------------------- the pitfalls, each broken once

def _broken(u, z, a, b, v, tangents, sign: float = 1.0):
    u_pred, du = torch.func.jvp(u, (z, a, b), tangents)                    # (B, D) each
    return u_pred, (v + sign * (b - a)[:, None] * du).detach()


def swapped_tangent(u, z, a, b, v):
    """MeanFlow's target with the tangents (v, 0, 1) for (z, a, b): the derivative along the end b
    instead of the anchor a."""
    return _broken(u, z, a, b, v, (v, torch.zeros_like(a), torch.ones_like(b)))


def paper_sign(u, z, a, b, v):
    """MeanFlow's target with the paper's minus sign left unconverted: v - (b - a) du/da."""
    return _broken(u, z, a, b, v, (v, torch.ones_like(a), torch.zeros_like(b)), sign=-1.0)


def no_z_tangent(u, z, a, b, v):
    """MeanFlow's target with the tangents (0, 1, 0): the partial d_a u, not the total derivative."""
    return _broken(u, z, a, b, v, (torch.zeros_like(z), torch.ones_like(a), torch.zeros_like(b)))


class RoundedTime(nn.Module):
    """A time embedding fed t rounded to 1/1000 (what a lookup table or int(t * 1000) does): the same
    features, and a derivative in t of zero."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, t):
        return self.inner(torch.round(t * 1000) / 1000)


def round_time(u: mf.MeanFlowNet) -> mf.MeanFlowNet:
    """``u`` with both its time embeddings seeing a rounded time (:class:`RoundedTime`), in place."""
    emb = u.net.time_embed
    emb[0], emb[1] = RoundedTime(emb[0]), RoundedTime(emb[1])
    return u


# name -> (the target rule, None: MeanFlow's own; whether the network's time is rounded)
PITFALLS = {"correct": (None, False), "rounded time": (None, True), "swapped tangent": (swapped_tangent, False),
            "paper's sign": (paper_sign, False), "no tangent on z": (no_z_tangent, False)}


def toy_name(pitfall: str) -> str:
    """The model cache's name of the toy network trained with ``pitfall``: "meanflow-toy-swapped-tangent"."""
    return "meanflow-toy-" + "".join(c if c.isalnum() else "-" for c in pitfall.replace("'", ""))


def trained_toy(gflow: GaussianFlow, steps: int, pitfall: str = "correct", target: Callable | None = None, *,
                mode: str) -> mf.MeanFlowNet:
    """:func:`toy_net` (time rounded for "rounded time") trained :func:`train_toy` ``steps`` steps with
    the target of ``pitfall`` (:data:`PITFALLS`), through the model cache as ``meanflow-toy-<pitfall>``
    (``mode``: the budget's mode, for the manifest). For "correct" and "rounded time" ``target`` may
    be the learner's own MeanFlow target (None: the library's :func:`~course_lib.flow.meanflow.jvp_target`):
    then the model is trained with it and written nowhere, or the course's weights are loaded."""
    checks.one_of(pitfall, "pitfall", tuple(PITFALLS))
    steps = checks.positive_int(steps, "steps")
    rule, rounded = PITFALLS[pitfall]
    if target is not None and rule is not None:
        raise ValueError(f"target: the pitfall {pitfall!r} trains with its own broken target; pass target only "
                         "for 'correct' or 'rounded time'")
    name = toy_name(pitfall)
    config = {"mode": mode, "steps": steps, "mu": gflow.mu.tolist(), "sig": gflow.sig.tolist()}
    model = train.cached(name, config, lambda: round_time(toy_net()) if rounded else toy_net(),
                         lambda u: train_toy(u, gflow, steps, target=target or rule), share=target is None)
    note_course_model(model, target is not None, "MeanFlow target")
    return model


def note_course_model(model, learners: bool, what: str) -> None:
    """Print, for a model meant to train with the learner's ``what`` that was loaded instead, that it is
    the course's model (trained with the course's function)."""
    if learners and getattr(model, "shipped", None) is not None:
        print(f"  this is the course's model, trained with the course's {what}; WEIGHTS = \"train\" trains it "
              "with yours")
