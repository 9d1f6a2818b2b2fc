"""The flow-matching head: a small AdaLN MLP that turns noise into a token, conditioned on z.

NextStep-1 (StepFun 2025, arXiv 2508.10711, §2; ``nextstep/models/modeling_fm_head.py``) and, with a
diffusion loss, MAR (Li et al. 2024, "Autoregressive Image Generation without Vector Quantization",
§3.1-3.2; LTH14/mar ``models/diffloss.py``): the transformer does not output the token, it outputs a
condition z, and a small network v(x_t, t | z) learns the velocity of a flow from noise to the
token. In the course's convention (t = 0 noise, t = 1 data, as NextStep-1's code, where t = 1 is
data too):

    x_t = (1 - t) x_0 + t x,   x_0 ~ N(0, I),   loss = || v(x_t, t | z) - (x - x_0) ||^2,

with t = sigmoid(N(0, 1)) (NextStep-1's sampler of t, SD3's logit-normal) and **several draws of
(t, x_0) per token** (``batch_mul`` = 4, MAR's ``diffusion_batch_mul`` and NextStep-1's
``fm_head_batch_mul``): the transformer ran once for z, and the head is cheap, so it learns from
four noisy versions of every token for the price of one transformer pass. The gradient reaches the
transformer through z.

To sample, integrate dx/dt = v(x, t | z) from x_0 ~ N(0, I) at t = 0 to t = 1 with ``steps`` Euler
steps (:func:`course_lib.flow.integrate`): each step is one pass of the head alone, not of the
transformer. ``temperature`` scales the starting noise (MAR's temperature scales the noise of every
reverse step). Guidance: v = v_u + w (v_c - v_u) on the velocity at every step, z for the
conditional and z_u for the unconditional half, as MAR does on its noise prediction
(``forward_with_cfg``) and NextStep-1 on the velocity.

What was translated: MAR's DiffLoss predicts the noise eps on a 1000-step cosine DDPM schedule
with t = 0 = data, and adds a learned-variance (VLB) term; it samples with 100 DDPM steps. With the
straight path above the two parameterisations convert exactly: eps = x_0 = x_t - t v and
x = x_t + (1 - t) v. The course keeps NextStep-1's flow matching (velocity, no variance term) and a
plain Euler ODE sampler, not NextStep-1's SDE sampler with its final deterministic step.
"""
from __future__ import annotations

import torch

from course_lib import checks, flow
from course_lib.heads.adaln import AdaLNMLP
from course_lib.heads.base import Head


class FlowHead(Head):
    """v(x_t, t | z): an :class:`~course_lib.heads.adaln.AdaLNMLP` of ``depth`` blocks of ``width``.

    token_dim: D, the size of a token; cond_dim: C, the size of z; batch_mul: (t, x_0) draws per token
    in :meth:`loss`; time: ``"logit_normal"`` (NextStep-1) or ``"uniform"``; default_steps: Euler
    steps of :meth:`sample` when none are given.
    """

    def __init__(self, token_dim: int, cond_dim: int, width: int = 128, depth: int = 3, batch_mul: int = 4,
                 time: str = "logit_normal", default_steps: int = 8):
        super().__init__(token_dim, cond_dim)
        self.net = AdaLNMLP(token_dim, cond_dim, width, depth, time=True)
        self.batch_mul = checks.positive_int(batch_mul, "batch_mul")
        self.time = checks.one_of(time, "time", flow.TIME_SAMPLERS)
        self.default_steps = checks.positive_int(default_steps, "default_steps")

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The velocity v(x_t, t | z): x_t (N, D), t (N,), z (N, C) -> (N, D)."""
        return self.net(x_t, z, t)

    def nfe(self, steps: int | None = None) -> int:
        return self.default_steps if steps is None else checks.positive_int(steps, "steps")

    def flat_loss(self, x, z, generator=None):
        """Flow-matching loss with ``batch_mul`` draws of (t, x_0) per token; x (N, D), z (N, C)."""
        z = z.repeat(self.batch_mul, 1)                                      # (M N, C): MAR's batch_mul
        x1 = x.repeat(self.batch_mul, 1)                                     # (M N, D)
        x0 = self._noise(x1.shape[0], self.token_dim, generator, x1)         # (M N, D) noise
        t = flow.sample_time(x1.shape[0], self.time, generator=generator, device=x1.device).to(x1.dtype)
        x_t = (1 - t[:, None]) * x0 + t[:, None] * x1                        # t = 0 noise, t = 1 data
        return (self(x_t, t, z) - (x1 - x0)).pow(2).mean()

    def flat_sample(self, z, steps, generator, z_uncond, cfg_scale, temperature):
        """Euler from noise (t = 0) to a token (t = 1) in ``steps`` head passes."""
        x0 = temperature * self._noise(z.shape[0], self.token_dim, generator, z)   # (N, D)

        def v(x, t):                                                         # (N, D), (N,) -> (N, D)
            if z_uncond is None:
                return self(x, t, z)
            both = self(torch.cat([x, x]), torch.cat([t, t]), torch.cat([z, z_uncond]))   # (2N, D)
            v_c, v_u = both.chunk(2)
            return v_u + cfg_scale * (v_c - v_u)
        return flow.integrate(v, x0, steps, "euler")                         # (N, D)
