"""The small network inside every generation head: an MLP whose blocks are modulated by a condition
(adaptive LayerNorm), as MAR's ``SimpleMLPAdaLN`` (Li et al. 2024, "Autoregressive Image Generation
without Vector Quantization", §3 and LTH14/mar ``models/diffloss.py``), reused unchanged by
NextStep-1's flow-matching head (arXiv 2508.10711, ``nextstep/models/modeling_fm_head.py``) and, with
noise in place of x_t and no time, by SLED's generator (arXiv 2505.13181, ``sled/energy_distance.py``).

    c   = cond(z) [+ phi(t)]                        # the condition: the transformer's output z (and t)
    h   = input_proj(x)                             # x: the noisy token (flow head) or a noise vector (energy head)
    h   = h + gate(c) * MLP(LN(h) * (1 + scale(c)) + shift(c))     # x depth residual blocks
    out = Linear(LN(h) * (1 + scale(c)) + shift(c))

The condition does not enter by concatenation: it sets a shift, a scale and a gate of every block
(DiT's adaLN-Zero, Peebles & Xie 2023, §3.2). The modulations and the output layer start at zero,
so an untrained head outputs 0 and every block starts as the identity, as in MAR. As in MAR's code
(``SimpleMLPAdaLN.initialize_weights``, ``ResBlock.in_ln``), every other Linear starts Xavier-uniform
with zero bias, and the LayerNorm inside each block has its own learned scale and bias (the final
one has none).

What differs from MAR's code, deliberately: the time embedding. MAR (and NextStep-1) embed t with
DiT's 256 sinusoids of periods up to 10000 (``TimestepEmbedder``; MAR on its integer DDPM steps
0..999, NextStep-1 on t in [0, 1], where most of those frequencies barely move); the course's heads
take t in [0, 1] and embed it with :class:`~course_lib.nets.mlp.FourierTime` (64 features,
frequencies 1..100), the embedding of every other velocity network of the course.

Usage::

    net = AdaLNMLP(in_dim=8, cond_dim=64, width=128, depth=3, time=True)
    out = net(x, z, t)                  # x (N, 8), z (N, 64), t (N,) -> (N, 8)
"""
from __future__ import annotations

import torch
from torch import nn

from course_lib import checks
from course_lib.nets.mlp import FourierTime


def modulate(h: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return h * (1 + scale) + shift


class ResBlock(nn.Module):
    """LN -> modulate -> Linear -> SiLU -> Linear, added back with a gate; shift, scale and gate come
    from the condition c (MAR's ``ResBlock``)."""

    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width, eps=1e-6)                           # affine, as MAR's in_ln
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 3 * width))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:   # h, c: (N, W)
        shift, scale, gate = self.ada(c).chunk(3, dim=-1)                   # 3 x (N, W)
        return h + gate * self.mlp(modulate(self.norm(h), shift, scale))


class AdaLNMLP(nn.Module):
    """out = f(x | z [, t]): ``depth`` AdaLN residual blocks of width ``width``.

    in_dim: size of x; cond_dim: size of the condition z; out_dim: output size (default in_dim);
    time: whether a time t in [0, 1] is embedded (Fourier features) and added to the condition.
    """

    def __init__(self, in_dim: int, cond_dim: int, width: int = 128, depth: int = 3, out_dim: int | None = None,
                 time: bool = True, time_features: int = 64, max_freq: float = 100.0):
        super().__init__()
        self.in_dim, self.cond_dim = checks.positive_int(in_dim, "in_dim"), checks.positive_int(cond_dim, "cond_dim")
        self.out_dim = checks.positive_int(out_dim or in_dim, "out_dim")
        width, depth = checks.positive_int(width, "width"), checks.positive_int(depth, "depth")
        self.input_proj = nn.Linear(in_dim, width)
        self.cond_proj = nn.Linear(cond_dim, width)
        self.time_embed = (nn.Sequential(FourierTime(time_features, max_freq), nn.Linear(time_features, width),
                                         nn.SiLU(), nn.Linear(width, width)) if time else None)
        self.blocks = nn.ModuleList(ResBlock(width) for _ in range(depth))
        self.final_norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.final_ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))
        self.out = nn.Linear(width, self.out_dim)
        for m in self.modules():                                             # MAR's _basic_init
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        for block in self.blocks:                                            # adaLN-Zero: start at 0
            nn.init.zeros_(block.ada[1].weight)
            nn.init.zeros_(block.ada[1].bias)
        if self.time_embed is not None:                                      # MAR: N(0, 0.02) time MLP
            nn.init.normal_(self.time_embed[1].weight, std=0.02)
            nn.init.normal_(self.time_embed[3].weight, std=0.02)
        for layer in (self.final_ada[1], self.out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor, z: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        checks.tensor(x, "x", ndim=2, dim=self.in_dim, floating=True, shape=f"(N, {self.in_dim})")
        checks.tensor(z, "z", ndim=2, dim=self.cond_dim, floating=True, shape=f"(N, {self.cond_dim})")
        if z.shape[0] != x.shape[0]:
            raise ValueError(f"z: expected one condition per row of x ({x.shape[0]}), got {z.shape[0]}")
        checks.same_place(self, x, "x")
        c = self.cond_proj(z)                                                # (N, W)
        if self.time_embed is not None:
            if t is None:
                raise ValueError("this network embeds a time: pass t, shape (N,)")
            checks.tensor(t, "t", ndim=1, floating=True, shape=f"({x.shape[0]},)")
            c = c + self.time_embed(t.to(x.dtype))                           # (N, W)
        elif t is not None:
            raise ValueError("this network has time=False: it takes no t")
        h = self.input_proj(x)                                               # (N, W)
        for block in self.blocks:
            h = block(h, c)
        shift, scale = self.final_ada(c).chunk(2, dim=-1)
        return self.out(modulate(self.final_norm(h), shift, scale))          # (N, out_dim)
