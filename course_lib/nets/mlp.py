"""Small networks shared by the flow notebooks: a velocity MLP with a smooth time embedding.

The network is v_theta(x, t [, r], y) -> R^D, the velocity field of a flow (notebook 08), the
flow-matching head of notebook 09 and the average-velocity field u(z, r, t) of MeanFlow (notebook
10). Three design rules follow from that reuse:

* **time is a float, embedded with Fourier features** (Tancik et al. 2020; the sinusoidal
  embedding of Vaswani et al. 2017 §3.5 applied to a continuous t): phi(t) = [sin(w_k t), cos(w_k t)]
  with log-spaced angular frequencies w_k. It is smooth in t, so d v / d t exists and
  ``torch.func.jvp`` can push a tangent through it (MeanFlow's target, arXiv 2505.13447 eq. 8).
  There is no integer lookup table anywhere.
* **more than one time input** is a config switch: ``time_inputs=2`` embeds a second scalar ``r``
  with its own Fourier features (MeanFlow feeds (t, r) or (t, t - r)).
* **optional Fourier features of x** (``space_features``, random frequencies as in Tancik et al.
  2020): an MLP on raw 2-D coordinates is slow to learn fine detail; notebook 08 uses them so that
  its spiral keeps its inner coils within the lecture's step budget.
* **an optional class label with a null class** for classifier-free guidance (Ho & Salimans 2022):
  labels 0..n_classes-1 are classes, ``n_classes`` (= ``model.null_class``) means "no label", and
  ``y=None`` gives the unconditional velocity.

Usage::

    cfg = MLPConfig(dim=2, hidden=256, depth=4)                 # 2-D points, unconditional
    model = VelocityMLP(cfg).to(runtime.device())
    v = model(x, t)                                             # x (B, 2), t (B,) or float -> (B, 2)
    cond = VelocityMLP(MLPConfig(dim=2, n_classes=8))
    v_c, v_u = cond(x, t, y), cond(x, t)                        # y (B,) int64; None = null class
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from course_lib import checks


@dataclass
class MLPConfig:
    """Size of a :class:`VelocityMLP`. The defaults are the 2-D model of notebook 08."""
    dim: int = 2                # D: size of a data point (2 for the toys, 64 for 8x8 digits)
    hidden: int = 256           # width of every hidden layer
    depth: int = 4              # number of hidden layers (Linear + SiLU)
    time_features: int = 32     # Fourier features per time input (even: half sin, half cos)
    max_freq: float = 200.0     # largest angular frequency w_k (radians per unit of t); smallest is 1
    time_inputs: int = 1        # 1: v(x, t); 2: u(x, t, r) for MeanFlow
    n_classes: int = 0          # 0: unconditional; else labels 0..n_classes-1 plus a null class
    class_dim: int = 32         # size of the learned class embedding
    out_dim: int | None = None  # output size; None means dim (a velocity)
    space_features: int = 0     # Fourier features of x (even; 0: x enters as it is, the default)
    space_scale: float = 1.0    # std of their frequencies (cycles per unit of x)

    def __post_init__(self):
        if isinstance(self.space_features, bool) or not isinstance(self.space_features, int) \
                or self.space_features < 0 or self.space_features % 2:
            raise ValueError(f"MLPConfig.space_features must be an even int >= 0, got {self.space_features!r}")
        if not self.space_scale > 0:
            raise ValueError(f"MLPConfig.space_scale must be > 0, got {self.space_scale!r}")
        for name in ("dim", "hidden", "depth", "time_features", "class_dim"):
            val = getattr(self, name)
            if isinstance(val, bool) or not isinstance(val, int) or val <= 0:
                raise ValueError(f"MLPConfig.{name} must be a positive int, got {val!r}")
        if self.time_features % 2:
            raise ValueError(f"MLPConfig.time_features must be even (sin and cos pairs), got {self.time_features}")
        if self.time_inputs not in (1, 2):
            raise ValueError(f"MLPConfig.time_inputs must be 1 or 2, got {self.time_inputs!r}")
        if isinstance(self.n_classes, bool) or not isinstance(self.n_classes, int) or self.n_classes < 0:
            raise ValueError(f"MLPConfig.n_classes must be an int >= 0, got {self.n_classes!r}")
        if not self.max_freq >= 1.0:
            raise ValueError(f"MLPConfig.max_freq must be >= 1, got {self.max_freq!r}")


class FourierTime(nn.Module):
    """phi(t) = [sin(w_1 t) .. sin(w_K t), cos(w_1 t) .. cos(w_K t)], w_k log-spaced in [1, max_freq].

    Differentiable in t everywhere (d phi / d t = [w cos(w t), -w sin(w t)]). The frequencies are a
    fixed buffer, not parameters. t: (B,) float -> (B, n_features).
    """

    def __init__(self, n_features: int = 32, max_freq: float = 200.0):
        super().__init__()
        half = n_features // 2
        self.register_buffer("freqs", torch.exp(torch.linspace(0.0, math.log(max_freq), half)))  # (K,)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        angles = t[:, None] * self.freqs[None, :]                                # (B, K)
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)         # (B, 2K)


class FourierSpace(nn.Module):
    """Random Fourier features of a point (Tancik et al. 2020, "Fourier Features Let Networks Learn
    High Frequency Functions in Low Dimensional Domains", §5): gamma(x) = [sin(2 pi x W), cos(2 pi x W)]
    with W (D, K) drawn once from N(0, scale^2) by a generator of its own (seed 0), so building the
    network draws nothing from the global random stream. An MLP on raw coordinates learns
    high-frequency detail (the tight inner coils of a spiral) slowly; with these features it does not.
    x: (B, D) -> (B, 2K).
    """

    def __init__(self, dim: int, n_features: int, scale: float = 1.0):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer("W", torch.randn(dim, n_features // 2, generator=g) * scale)    # (D, K)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        angles = 2 * math.pi * x @ self.W.to(x.dtype)                           # (B, K)
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)         # (B, 2K)


def _as_time(t, batch: int, ref: torch.Tensor, name: str) -> torch.Tensor:
    """A float time (python number, 0-d or (B,) tensor) as a (B,) tensor on ref's device/dtype."""
    if isinstance(t, (int, float)) and not isinstance(t, bool):
        return torch.full((batch,), float(t), device=ref.device, dtype=ref.dtype)
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a float or a tensor of shape ({batch},), got {type(t).__name__}")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor (time is continuous), got {t.dtype}")
    if t.dim() == 0:
        return t.to(ref.dtype).expand(batch)
    if t.dim() == 2 and t.shape[1] == 1:
        t = t[:, 0]                                                              # (B, 1) -> (B,)
    if t.dim() != 1 or t.shape[0] != batch:
        raise ValueError(f"{name} must have shape ({batch},) (one time per point), got {tuple(t.shape)}")
    return t.to(ref.dtype)


class VelocityMLP(nn.Module):
    """v_theta(x, t [, r] [, y]): an MLP on [x, phi(t) (, phi(r)) (, e(y))], SiLU activations.

    x: (B, D) float; t: (B,) float or a number; r: like t, only with ``time_inputs=2``;
    y: (B,) int64 class labels in 0..n_classes (n_classes = the null class) or None (all null).
    x and y must be on the model's device, x in its dtype (else an error naming them).
    Returns (B, out_dim). The last layer starts at zero, so an untrained model predicts v = 0.
    """

    def __init__(self, config: MLPConfig | None = None, **overrides):
        super().__init__()
        if config is None:
            config = MLPConfig(**overrides)
        elif overrides:
            raise TypeError("pass either an MLPConfig or keyword overrides, not both")
        self.config = cfg = config
        self.time_embed = nn.ModuleList(FourierTime(cfg.time_features, cfg.max_freq)
                                        for _ in range(cfg.time_inputs))
        self.class_embed = nn.Embedding(cfg.n_classes + 1, cfg.class_dim) if cfg.n_classes else None
        self.space_embed = (FourierSpace(cfg.dim, cfg.space_features, cfg.space_scale)
                            if cfg.space_features else None)
        width_in = cfg.dim + cfg.space_features + cfg.time_inputs * cfg.time_features + (cfg.class_dim if cfg.n_classes else 0)
        layers, width = [], width_in
        for _ in range(cfg.depth):
            layers += [nn.Linear(width, cfg.hidden), nn.SiLU()]
            width = cfg.hidden
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(width, cfg.out_dim or cfg.dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    @property
    def null_class(self) -> int | None:
        """The label meaning "no condition" (n_classes), or None for an unconditional model."""
        return self.config.n_classes if self.config.n_classes else None

    def forward(self, x: torch.Tensor, t, y: torch.Tensor | None = None, r=None) -> torch.Tensor:
        cfg = self.config
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"x must be a floating tensor of shape (B, {cfg.dim}), got "
                            f"{getattr(x, 'dtype', type(x).__name__)}")
        if x.dim() != 2 or x.shape[1] != cfg.dim:
            raise ValueError(f"x must have shape (B, {cfg.dim}), got {tuple(x.shape)}")
        checks.same_place(self, x, "x")
        B = x.shape[0]
        feats = [x, self.time_embed[0](_as_time(t, B, x, "t"))]                 # (B, D), (B, F)
        if self.space_embed is not None:
            feats.append(self.space_embed(x))                                    # (B, S)
        if cfg.time_inputs == 2:
            if r is None:
                raise ValueError("this model has time_inputs=2: pass r as well as t")
            feats.append(self.time_embed[1](_as_time(r, B, x, "r")))            # (B, F)
        elif r is not None:
            raise ValueError("this model has time_inputs=1: it takes no second time r")
        if self.class_embed is not None:
            feats.append(self.class_embed(self._labels(y, B, x.device)))        # (B, E)
        elif y is not None:
            raise ValueError("this model is unconditional (n_classes=0): it takes no labels y")
        h = self.body(torch.cat(feats, dim=1))                                   # (B, hidden)
        return self.out(h)                                                       # (B, out_dim)

    def _labels(self, y, batch: int, device) -> torch.Tensor:
        null = self.config.n_classes
        if y is None:
            return torch.full((batch,), null, dtype=torch.long, device=device)
        if not isinstance(y, torch.Tensor) or y.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"y must be an int64 tensor of shape ({batch},), got "
                            f"{getattr(y, 'dtype', type(y).__name__)}")
        if y.dim() == 0:
            y = y.expand(batch)
        if y.shape != (batch,):
            raise ValueError(f"y must have shape ({batch},), got {tuple(y.shape)}")
        checks.same_device(self, y, "y")
        if y.numel() and (int(y.min()) < 0 or int(y.max()) > null):
            raise ValueError(f"labels must be in 0..{null} ({null} = no label), got "
                             f"{int(y.min())}..{int(y.max())}")
        return y.long()


def count_parameters(*modules: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of one or more modules (e.g. a backbone and its head), each shared
    tensor counted once. All parameters by default, so a cached model loaded with its gradients
    switched off counts the same as when it trained; ``trainable_only=True`` counts only those with
    ``requires_grad``."""
    if not modules:
        raise TypeError("count_parameters: expected at least one nn.Module, got none")
    for i, m in enumerate(modules):
        if not isinstance(m, nn.Module):
            raise TypeError(f"modules[{i}]: expected an nn.Module, got {type(m).__name__}")
    unique = {id(p): p for m in modules for p in m.parameters()}
    return sum(p.numel() for p in unique.values() if p.requires_grad or not trainable_only)
