"""An autoregressive normalizing flow on 2-D points: TarFlow at the scale of a spiral (notebook 11, project C).

TarFlow (Zhai et al. 2024, "Normalizing Flows are Capable Generative Models", ICML 2025, arXiv
2412.06329; official code apple/ml-tarflow, ``transformer_flow.py``, read at commit 313120e) stacks B
blocks of MAF-style autoregressive affine flows (Papamakarios et al. 2017, "Masked Autoregressive Flow
for Density Estimation"). A data point is a
sequence of T tokens x_1 .. x_T of D numbers; in each block a causal network reads the tokens and
gives, for token i, raw affine parameters (a_i, b_i) computed from tokens <= i; the outputs are
**shifted right by one** so that token i uses the parameters computed from tokens < i and token 0
gets (0, 0) (``MetaBlock.forward``, L153-181: ``torch.cat([zeros_like(x[:, :1]), x[:, :-1]], dim=1)``).
Then the block's map and its change-of-variables term are

    z_i = (x_i - b_i) * exp(-a_i),        log |det dz/dx| = - sum_i sum_d a_{i,d}

The Jacobian is triangular (z_i depends on x_i and on x_<i only), so the log-determinant is the sum
of the diagonal's logs. Blocks **alternate the token order** (identity, then flip: ``PermutationFlip``),
so that every token is transformed as a function of every other one somewhere in the stack. Training
maximises the likelihood under a standard Gaussian prior (``Model.get_loss``, L314-315):

    NLL per dimension = 0.5 mean(z^2) - mean(logdet) / (T D)        (+ 0.5 log 2 pi, a constant)

The official code takes the log-determinant as the MEAN of -a over tokens and channels (the loss per
dimension directly); :func:`ar_affine_forward` returns the exact per-sample SUM, and :func:`nll`
divides by T D, which is the same loss. To sample, run the blocks backwards, each **token by token**
(``MetaBlock.reverse``, L218-247): x_i = z_i exp(a_i) + b_i, with (a_i, b_i) from the x_<i already recovered,
T sequential passes per block. Two of the paper's three tricks for sample quality are here:
**Gaussian noise augmentation** (train on x + sigma eps, ``train.py``: ``noise_std``) and the
**score-based denoising step** after sampling, x <- x - sigma^2 grad_x NLL(x) (Tweedie's formula,
``evaluate_fid.py``), which pulls a sample of the noised distribution back towards the data.

Direction: a normalizing flow has no time variable; ``forward`` maps data to noise (z), ``reverse``
noise to data. The course's flow-matching convention (t = 0 noise, t = 1 data) does not enter.

What the course simplifies: a 2-D point is T = 2 tokens of D = 1 number (the "patches" of the
paper are single coordinates; the code takes any T dividing the dimension, e.g. T = 1 or 2, but on
2-D data there is nothing more to split); the causal network is a MADE-style masked MLP
(:class:`CausalMLP`, Germain et al. 2015) instead of a causal transformer (the same property, output
i from inputs <= i, without attention); no classifier-free guidance (the data is unconditional) and
no KV cache (each token of the inverse re-runs the small MLP). The last layer starts at zero, so each
block starts as the identity (as ``proj_out`` in the official code).

Usage::

    model = TarFlow(FlowConfig(blocks=4))
    z, logdet = model(x)                      # x (N, 2) -> z (N, 2), logdet (N,)
    loss = nll(model, x + 0.05 * torch.randn_like(x))
    x = denoise(model, model.reverse(torch.randn(N, 2)), sigma=0.05)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from course_lib import checks, data, metrics, runtime, train


# ----------------------------------------------------------------------------- the core step

def _shift_right(h: torch.Tensor) -> torch.Tensor:
    """(N, T, D) -> (N, T, D): token i gets what token i - 1 had, token 0 gets zeros."""
    return torch.cat([torch.zeros_like(h[:, :1]), h[:, :-1]], dim=1)


def _check_params(out, x: torch.Tensor):
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise TypeError(f"params(x) must return a pair (a, b), got {type(out).__name__}")
    for name, t in zip("ab", out):
        checks.tensor(t, f"params(x)'s {name}", floating=True, shape=str(tuple(x.shape)))
        if t.shape != x.shape:
            raise ValueError(f"params(x)'s {name}: expected shape {tuple(x.shape)} like x, got {tuple(t.shape)}")
    return out


def ar_affine_forward(x: torch.Tensor, params: Callable) -> tuple[torch.Tensor, torch.Tensor]:
    """One autoregressive affine flow step, data -> noise (TarFlow's block, ``MetaBlock.forward``).

    x: (N, T, D) tokens. ``params(x) -> (a, b)``, each (N, T, D): the RAW outputs of a causal
    network, token i's computed from tokens <= i. They are shifted right by one token (token i
    uses token i - 1's outputs, token 0 gets a = b = 0), then

        z = (x - b) * exp(-a),     logdet = - sum of a over tokens and dims,  (N,)

    the exact log |det dz/dx| per sample (the official code takes the mean instead: the loss per
    dimension). Returns (z (N, T, D), logdet (N,)), both differentiable in params' parameters.
    """
    checks.tensor(x, "x", ndim=3, floating=True, shape="(N, T, D)")
    a, b = _check_params(params(x), x)                       # (N, T, D) each, raw
    a, b = _shift_right(a), _shift_right(b)                  # token i: from tokens < i
    z = (x - b) * torch.exp(-a)                              # (N, T, D)
    return z, -a.sum(dim=(1, 2))                             # (N,)


# ----------------------------------------------------------------------------- the causal network

class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 mask (MADE, Germain et al. 2015, "MADE:
    Masked Autoencoder for Distribution Estimation")."""

    def __init__(self, n_in: int, n_out: int, mask: torch.Tensor):
        super().__init__(n_in, n_out)
        self.register_buffer("mask", mask.float())           # (n_out, n_in)

    def forward(self, x):
        return nn.functional.linear(x, self.weight * self.mask, self.bias)


class CausalMLP(nn.Module):
    """(N, T, D) tokens -> raw (a, b), each (N, T, D), output token i a function of input tokens <= i.

    MADE's degrees: input token j has degree j; hidden unit k has degree k mod (T - 1) (token T - 1's
    output is dropped by the shift, so no unit serves it alone); a connection goes from degree p to
    degree q only if p <= q. The output layer starts at zero: a = b = 0, the identity flow. The
    log-scale a goes through a soft clip, clip * tanh(a / clip) (STARFlow's ``soft_clip``, which
    apple/ml-starflow applies to the whole output projection, ``get_proj_out``; here to a only): an
    unbounded exp(-a) made the 2-D training diverge within a hundred steps."""

    def __init__(self, tokens: int, dim: int, hidden: int = 64, depth: int = 2, clip: float = 3.0):
        super().__init__()
        self.clip = checks.number(clip, "clip")
        if not self.clip > 0:
            raise ValueError(f"clip: expected a number > 0 (the bound on the log-scale a), got {clip!r}")
        T, D = checks.positive_int(tokens, "tokens"), checks.positive_int(dim, "dim")
        self.T, self.D = T, D
        deg_in = torch.arange(T).repeat_interleave(D)                          # (T D,)
        deg_h = torch.arange(hidden) % max(T - 1, 1)                            # (H,)
        deg_out = torch.arange(T).repeat_interleave(2 * D)                     # (2 T D,) token-major
        layers, prev = [], deg_in
        for _ in range(checks.positive_int(depth, "depth")):
            layers += [MaskedLinear(len(prev), hidden, prev[None, :] <= deg_h[:, None]), nn.SiLU()]
            prev = deg_h
        self.body = nn.Sequential(*layers)
        self.out = MaskedLinear(hidden, 2 * T * D, prev[None, :] <= deg_out[:, None])
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor):
        N = x.shape[0]
        h = self.out(self.body(x.reshape(N, self.T * self.D)))                 # (N, 2 T D)
        a, b = h.view(N, self.T, 2 * self.D).chunk(2, dim=-1)                  # (N, T, D) each
        return self.clip * torch.tanh(a / self.clip), b                         # |a| < clip: a soft clip


# ----------------------------------------------------------------------------- the flow

@dataclass(frozen=True)
class FlowConfig:
    """Size of a :class:`TarFlow` on points of ``dim`` numbers."""
    dim: int = 2             # numbers per data point
    tokens: int = 2          # T: tokens per point (dim / tokens numbers each)
    blocks: int = 4          # autoregressive flow blocks, order flipped every other block
    hidden: int = 64         # width of each block's causal MLP
    depth: int = 2           # its hidden layers
    clip: float = 3.0        # soft bound on the log-scale a (exp(-a) within e^-3 .. e^3)


class TarFlow(nn.Module):
    """A stack of autoregressive affine blocks (TarFlow's ``Model``) on (N, dim) points.

    ``forward(x, step=ar_affine_forward)`` -> (z (N, dim), logdet (N,)): data to noise, summed
    log-determinants; ``step`` is the one-block function (a learner's own can be passed in).
    ``reverse(z)``: noise to data, block by block backwards, token by token."""

    def __init__(self, config: FlowConfig = FlowConfig()):
        super().__init__()
        cfg = self.config = config
        if cfg.dim % cfg.tokens:
            raise ValueError(f"tokens must divide dim: got dim {cfg.dim}, tokens {cfg.tokens}")
        self.T, self.D = cfg.tokens, cfg.dim // cfg.tokens
        self.nets = nn.ModuleList(CausalMLP(self.T, self.D, cfg.hidden, cfg.depth, cfg.clip) for _ in range(cfg.blocks))

    def _tokens(self, x: torch.Tensor, name: str) -> torch.Tensor:
        checks.tensor(x, name, ndim=2, dim=self.config.dim, floating=True, shape=f"(N, {self.config.dim})")
        checks.same_place(self, x, name)
        return x.reshape(x.shape[0], self.T, self.D)                            # (N, T, D)

    def forward(self, x: torch.Tensor, step: Callable = ar_affine_forward):
        h = self._tokens(x, "x")
        logdet = h.new_zeros(h.shape[0])                                        # (N,)
        for k, net in enumerate(self.nets):
            flip = k % 2 == 1                                                   # alternate the order
            h = h.flip(1) if flip else h
            h, ld = step(h, net)
            h = h.flip(1) if flip else h
            logdet = logdet + ld
        return h.reshape(x.shape), logdet

    @torch.no_grad()
    def reverse(self, z: torch.Tensor) -> torch.Tensor:
        """Noise (N, dim) -> data: x_i = z_i exp(a_i) + b_i, token by token (T passes per block)."""
        h = self._tokens(z, "z")
        for k in reversed(range(len(self.nets))):
            flip = k % 2 == 1
            h = h.flip(1) if flip else h
            x = h.clone()
            for i in range(self.T):                          # token i needs the final x_<i only
                a, b = self.nets[k](x)
                a, b = _shift_right(a), _shift_right(b)      # (N, T, D)
                x[:, i] = h[:, i] * torch.exp(a[:, i]) + b[:, i]
            h = x.flip(1) if flip else x
        return h.reshape(z.shape)


def nll(model: TarFlow, x: torch.Tensor, step: Callable = ar_affine_forward) -> torch.Tensor:
    """Negative log-likelihood per dimension under N(0, I), without the constant 0.5 log 2 pi:
    0.5 mean(z^2) - mean(logdet) / dim (``Model.get_loss``). A 0-d tensor."""
    z, logdet = model(x, step)
    return 0.5 * z.pow(2).mean() - logdet.mean() / x.shape[1]


def denoise(model: TarFlow, x: torch.Tensor, sigma: float) -> torch.Tensor:
    """One score step (Tweedie): x - sigma^2 grad_x [-log p(x)], the model's density being that of
    the noised data; ``evaluate_fid.py``'s denoising, with the theoretical step sigma^2."""
    checks.tensor(x, "x", ndim=2, floating=True, shape=f"(N, {model.config.dim})")
    sigma = checks.number(sigma, "sigma", 0.0)
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        z, logdet = model(x)
        neg_log_p = (0.5 * z.pow(2).sum(1) - logdet).sum()                     # summed over the batch
        (grad,) = torch.autograd.grad(neg_log_p, x)
    return (x - sigma ** 2 * grad).detach()


# ----------------------------------------------------------------------------- the starter demo

@dataclass(frozen=True)
class Budget:
    """Project C's budget in one mode."""
    mode: str               # the course mode this budget is for
    blocks: int             # autoregressive blocks
    hidden: int             # width of each block's causal MLP
    steps: int              # training steps
    batch: int              # points per step
    lr: float               # AdamW's peak learning rate (cosine decay)
    sigma: float            # std of the Gaussian noise added to the data (noise augmentation)
    n_eval: int             # samples per sliced-Wasserstein estimate
    n_tv: int               # samples per grid-TV estimate (notebook 08's sizes)


BUDGETS = {      # measured (busy 2-core machine, 1 thread, CPU time of training): quick 5 s
    "quick": Budget("quick", blocks=8, hidden=64, steps=700, batch=512, lr=2e-3, sigma=0.05, n_eval=2048,
                    n_tv=4096),
    # lecture: trained once for the shipped weights (the notebook loads them). Grid TV after the denoising step
    # (10000 points, floor 0.118) / SWD / training on a busy 2-core machine: 12 blocks x 64, 3000 steps 0.170 /
    # 0.042 / 38 s (the inner arms smeared into a disk); 24 x 64, 3000: 0.158 / 0.056 / 48 s; 12 x 128, 6000:
    # 0.143 / 0.123 (a few far outliers) / 88 s; 12 x 192, 6000: 0.169 / 0.133 / 159 s; 16 x 128, 8000: 0.139 /
    # 0.051 / 186 s, every arm drawn
    "lecture": Budget("lecture", blocks=16, hidden=128, steps=8000, batch=512, lr=2e-3, sigma=0.05, n_eval=4096,
                      n_tv=10000),
    "full": Budget("full", blocks=16, hidden=256, steps=20000, batch=2048, lr=1e-3, sigma=0.05, n_eval=16384,
                   n_tv=50000),
}


def budget(mode: str | None = None) -> Budget:
    """Project C's budget in the current (or given) mode."""
    return runtime.pick(BUDGETS, mode)


def spirals(n: int, seed: int) -> torch.Tensor:
    """n points of notebook 08's spirals, (n, 2)."""
    return data.toy_2d("spirals", n, seed=seed)


def build(B: Budget, *, seed: int = 0) -> TarFlow:
    """Seed and build the :class:`TarFlow` of budget ``B`` (``B.blocks`` blocks of width ``B.hidden``) on the
    course's device."""
    runtime.seed_everything(seed)
    return TarFlow(FlowConfig(blocks=B.blocks, hidden=B.hidden)).to(runtime.device())


def fit_spirals(model: TarFlow, B: Budget, step: Callable = ar_affine_forward, *, progress: bool = True):
    """Train ``model`` ``B.steps`` steps by NLL on spirals with Gaussian noise augmentation (x + B.sigma eps,
    fresh batches, data seed = step), each block's affine step done by ``step`` (the learner's
    :func:`ar_affine_forward`). Returns the History."""
    def loss(i):
        x = spirals(B.batch, i)                                                 # (batch, 2)
        g = torch.Generator().manual_seed(10_000 + i)
        x = x + B.sigma * torch.randn(x.shape, generator=g).to(x.device)       # noise augmentation
        return nll(model, x, step)
    return train.train(model, loss, B.steps, lr=B.lr, schedule="cosine", progress=progress, desc="TarFlow")


def train_spirals(B: Budget, step: Callable = ar_affine_forward, *, seed: int = 0, progress: bool = True):
    """:func:`build` then :func:`fit_spirals`. Not cached (notebook 11 goes through
    :func:`course_lib.recipes.capstone_projects.trained_tarflow`, which is). Returns (model, History)."""
    model = build(B, seed=seed)
    return model, fit_spirals(model, B, step, progress=progress)


def sample(model: TarFlow, n: int, seed: int = 0, sigma: float | None = None) -> torch.Tensor:
    """n samples from seeded noise, (n, 2); with ``sigma`` (the training noise) one denoising step."""
    n, seed = checks.positive_int(n, "n"), checks.positive_int(seed, "seed", 0)
    if sigma is not None:
        sigma = checks.number(sigma, "sigma", 0.0)
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, model.config.dim, generator=g).to(runtime.device())
    x = model.reverse(z)
    return x if sigma is None else denoise(model, x, sigma)


def swd(model: TarFlow, n: int, seeds=(0,), sigma: float | None = None) -> float:
    """Sliced Wasserstein distance of the samples (noise seed 100 + s) to held-out spirals
    (:func:`course_lib.metrics.swd_to_data`)."""
    return metrics.swd_to_data(lambda m, s: sample(model, m, 100 + s, sigma), spirals, n, seeds)


def tv(model: TarFlow, n: int, seeds=(0,), sigma: float | None = None) -> float:
    """Grid total variation of the same samples to held-out spirals (:func:`course_lib.metrics.grid_tv_to_data`):
    the SWD barely sees a spiral whose arms are smeared into a disk; this does."""
    return metrics.grid_tv_to_data(lambda m, s: sample(model, m, 100 + s, sigma), spirals, n, seeds)
