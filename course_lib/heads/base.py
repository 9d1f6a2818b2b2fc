"""What every generation head shares: the interface the transformer talks to.

A transformer over continuous tokens outputs one condition vector z per token to generate; a head
turns z into the token. Every head of :mod:`course_lib.heads` is an ``nn.Module`` with

* ``loss(z, x, generator=None)``: z (..., cond_dim), x (..., token_dim) the true tokens (any leading
  dimensions, the same for both: (N, C) rows or (B, T, C) sequences) -> a scalar to minimise, the
  mean over tokens, whose gradient also flows into z (the transformer is trained through its head);
* ``sample(z, steps=None, generator=None, z_uncond=None, cfg_scale=1.0, temperature=1.0)`` -> (...,
  token_dim) tokens; ``steps`` is the head's number of network evaluations per token where it has a
  choice (the flow head), ignored by the one-step heads;
* ``nfe(steps)``: how many times the head's network runs per token for that ``steps``.

Classifier-free guidance: the transformer runs twice (with the prompt and with the null prompt) and
hands both conditions in; each head combines them where its paper does (on the velocity for the flow
head, as NextStep-1 does; on z for the one-step heads, as SLED does).
"""
from __future__ import annotations

import numbers

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
        """Network evaluations per token (without guidance; guidance doubles a flow head's)."""
        return 1

    # the two entry points: check, flatten the leading dimensions, call the head's own rule

    def loss(self, z: torch.Tensor, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The head's training loss for conditions z (..., C) and true tokens x (..., D): a scalar."""
        z = self._z(z)
        checks.tensor(x, "x", floating=True, dim=self.token_dim, shape=f"(..., {self.token_dim})")
        if x.shape[:-1] != z.shape[:-1]:
            raise ValueError(f"x: expected one token per condition, shape {tuple(z.shape[:-1]) + (self.token_dim,)}, "
                             f"got {tuple(x.shape)}")
        checks.same_place(self, x, "x")
        return self.flat_loss(z.reshape(-1, self.cond_dim), x.reshape(-1, self.token_dim), generator)

    @torch.no_grad()
    def sample(self, z: torch.Tensor, steps: int | None = None, generator: torch.Generator | None = None,
               z_uncond: torch.Tensor | None = None, cfg_scale: float = 1.0, temperature: float = 1.0) -> torch.Tensor:
        """Tokens (..., D) for conditions z (..., C); see the module docstring for the arguments."""
        z = self._z(z)
        z_u = self._guidance(z, z_uncond, cfg_scale)
        flat = lambda t: None if t is None else t.reshape(-1, self.cond_dim)     # noqa: E731
        steps = checks.positive_int(steps or self.default_steps, "steps")
        temperature = checks.number(temperature, "temperature", 0.0)
        x = self.flat_sample(flat(z), steps, generator, flat(z_u), float(cfg_scale), temperature)
        return x.reshape(*z.shape[:-1], self.token_dim)                          # (..., D)

    def flat_loss(self, z, x, generator):                                        # z (N, C), x (N, D)
        raise NotImplementedError

    def flat_sample(self, z, steps, generator, z_uncond, cfg_scale, temperature):   # -> (N, D)
        raise NotImplementedError

    def _z(self, z, name: str = "z") -> torch.Tensor:
        checks.tensor(z, name, floating=True, dim=self.cond_dim, shape=f"(..., {self.cond_dim})")
        if z.dim() < 2:
            raise ValueError(f"{name}: expected shape (N, {self.cond_dim}) or (B, T, {self.cond_dim}), got {tuple(z.shape)}")
        return checks.same_place(self, z, name)

    def _guidance(self, z, z_uncond, cfg_scale) -> torch.Tensor | None:
        """Checks the unconditional z and the scale; returns z_uncond (or None when not guiding)."""
        if isinstance(cfg_scale, bool) or not isinstance(cfg_scale, numbers.Real):
            raise TypeError(f"cfg_scale: expected a number, got {type(cfg_scale).__name__} {cfg_scale!r}")
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
