"""What every generation head shares: the interface the transformer talks to.

A transformer over continuous tokens outputs one condition vector z per token to generate; a head
turns z into the token. The shape is MAR's ``DiffLoss`` (LTH14/mar ``models/diffloss.py``:
``forward(target, z)`` is the loss, ``sample(z, temperature, cfg)`` the tokens), split like
facebookresearch/flow_matching's ``ModelWrapper`` (the network) and ``Solver`` (how it is run).
Every head of :mod:`course_lib.heads` is an ``nn.Module`` with

* ``loss(x, z, *, generator=None)``: x (..., token_dim) the true tokens, z (..., cond_dim) their
  conditions (any leading dimensions, the same for both: (N, C) rows or (B, T, C) sequences) -> a
  scalar to minimise, the mean over tokens, whose gradient also flows into z (the transformer is
  trained through its head);
* ``sample(z, *, steps=None, cfg_scale=1.0, z_uncond=None, temperature=1.0, generator=None)`` ->
  (..., token_dim) tokens; ``steps`` is the head's number of network evaluations per token where it
  has a choice (the flow head; None: its default), ignored by the one-step heads;
* ``nfe(steps)``: how many times the head's network runs per token for that ``steps``.

Classifier-free guidance goes one way in the course: the transformer runs twice (with the prompt
and with the null prompt) and hands both conditions to the head, ``sample(z, z_uncond=z_u,
cfg_scale=w)``; the transformer never mixes them itself. Each head combines them where its paper
does: an iterative head on its network's output at every step, out = out_u + w (out_c - out_u),
with z for the conditional and z_u for the unconditional half (MAR's ``forward_with_cfg`` on the
noise prediction, NextStep-1 on the velocity: :class:`~course_lib.heads.flow_head.FlowHead`); a
one-step head on the condition, z_u + w (z - z_u) (SLED's ``sample``: the energy, MSE and Gaussian
heads, :func:`mix`).
"""
from __future__ import annotations

import torch
from torch import nn

from course_lib import checks


class Head(nn.Module):
    """Base class: checks of z and x, and the defaults of the interface (see the module docstring)."""
    default_steps = 1

    def __init__(self, token_dim: int, cond_dim: int):
        super().__init__()
        self.token_dim = checks.positive_int(token_dim, "token_dim")
        self.cond_dim = checks.positive_int(cond_dim, "cond_dim")

    def nfe(self, steps: int | None = None) -> int:
        """Network evaluations per token (without guidance; guidance doubles a flow head's). A one-step
        head ignores ``steps``, but a count below 1 is still a mistake to name."""
        if steps is not None:
            checks.positive_int(steps, "steps")
        return 1

    # the two entry points: check, flatten the leading dimensions, call the head's own rule

    def loss(self, x: torch.Tensor, z: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """The head's training loss for true tokens x (..., D) and their conditions z (..., C): a scalar."""
        checks.tensor(x, "x", floating=True, dim=self.token_dim, shape=f"(..., {self.token_dim})")
        z = self._z(z)
        if x.shape[:-1] != z.shape[:-1]:
            raise ValueError(f"x: expected one token per condition, shape {tuple(z.shape[:-1]) + (self.token_dim,)} "
                             f"(z is {tuple(z.shape)}), got {tuple(x.shape)}")
        checks.same_place(self, x, "x")
        checks.finite(x, "x")
        return self.flat_loss(x.reshape(-1, self.token_dim), z.reshape(-1, self.cond_dim), checks.generator(generator))

    @torch.no_grad()
    def sample(self, z: torch.Tensor, *, steps: int | None = None, cfg_scale: float = 1.0,
               z_uncond: torch.Tensor | None = None, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Tokens (..., D) for conditions z (..., C); see the module docstring for the arguments."""
        z = self._z(z)
        cfg_scale, temperature, steps, generator = checks.sampling(
            cfg_scale=cfg_scale, temperature=temperature, steps=steps, generator=generator)
        z_u = self._guidance(z, z_uncond, cfg_scale)
        flat = lambda t: None if t is None else t.reshape(-1, self.cond_dim)     # noqa: E731
        steps = self.default_steps if steps is None else steps
        x = self.flat_sample(flat(z), steps, generator, flat(z_u), cfg_scale, temperature)
        return x.reshape(*z.shape[:-1], self.token_dim)                          # (..., D)

    def flat_loss(self, x, z, generator):                                        # x (N, D), z (N, C)
        raise NotImplementedError

    def flat_sample(self, z, steps, generator, z_uncond, cfg_scale, temperature):   # -> (N, D)
        raise NotImplementedError

    def _z(self, z, name: str = "z") -> torch.Tensor:
        checks.tensor(z, name, floating=True, shape=f"(N, {self.cond_dim}) or (B, T, {self.cond_dim})")
        if z.dim() < 2 or z.shape[-1] != self.cond_dim:
            raise ValueError(f"{name}: expected shape (N, {self.cond_dim}) or (B, T, {self.cond_dim}) (this head's "
                             f"cond_dim is {self.cond_dim}: the transformer's d_model must match), got {tuple(z.shape)}")
        checks.rows(z, name)
        return checks.same_place(self, z, name)

    def _guidance(self, z, z_uncond, cfg_scale) -> torch.Tensor | None:
        """Checks the unconditional z and the scale; returns z_uncond (or None when not guiding)."""
        if z_uncond is None:
            if cfg_scale != 1.0:
                raise ValueError("cfg_scale != 1 needs z_uncond, the transformer's output for the null prompt")
            return None
        z_uncond = self._z(z_uncond, "z_uncond")
        if z_uncond.shape != z.shape:
            raise ValueError(f"z_uncond: expected the shape of z {tuple(z.shape)}, got {tuple(z_uncond.shape)}")
        return z_uncond

    def _noise(self, n: int, dim: int, generator, like: torch.Tensor) -> torch.Tensor:
        """(n, dim) standard normal noise on z's device and dtype, from ``generator`` (a CPU generator:
        the same numbers on every device) or the global stream."""
        if generator is None:
            return torch.randn(n, dim, device=like.device, dtype=like.dtype)
        return torch.randn(n, dim, generator=generator).to(like.device, like.dtype)


def mix(z: torch.Tensor, z_uncond: torch.Tensor | None, cfg_scale: float) -> torch.Tensor:
    """Guidance on the condition, as SLED's sampler does (sled/energy_distance.py ``sample``:
    z = cfg z_c + (1 - cfg) z_u): z_u + w (z_c - z_u)."""
    return z if z_uncond is None else z_uncond + cfg_scale * (z - z_uncond)
