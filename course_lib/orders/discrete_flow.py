"""Discrete flow matching with the masked source: MaskGIT's model, a flow's path and sampler.

Gat, Remez, Shaul, Kreuk, Chen, Synnaeve, Adi & Lipman 2024, "Discrete Flow Matching" (NeurIPS), §2
(factorized mixture paths with a scheduler kappa_t, the probability velocity of a posterior) and §3
(training the posterior by cross-entropy, sampling by Euler steps of the CTMC); official code
facebookresearch/flow_matching, ``flow_matching/path/mixture.py`` (``MixtureDiscreteProbPath``) and
``flow_matching/solver/discrete_solver.py`` (``MixtureDiscreteEulerSolver``). Campbell, Yim, Barzilay,
Rainforth & Jaakkola 2024, "Generative Flows on Discrete State-Spaces" (ICML), build the same flows
from continuous-time Markov chains.

**Convention** (the course's and the paper's): t = 0 is noise, t = 1 is data. The source X_0 is the
all-[MASK] sequence (the paper's "masked source"), and each token moves on its own:

    x_t^i = x_1^i   with probability kappa(t),       kappa(0) = 0, kappa(1) = 1, increasing,
    x_t^i = [MASK]  with probability 1 - kappa(t),   independently for every token i

(``mixture.py``: ``P(X_t = X_0) = sigma_t = 1 - kappa_t``). :func:`mask_path_sample` draws it.

**Training** regresses the posterior p_{1|t}(x_1^i | x_t) with the cross-entropy (the paper's x-prediction
loss):

    L = - E_{t ~ U(0, 1), x_1, x_t} sum_{i : x_t^i = [MASK]} log p_theta(x_1^i | x_t).

A token that is not masked is x_1^i itself (its posterior is a point mass by construction), so only the
masked positions carry a loss: for the masked source the DFM loss is the masked-token cross-entropy, the
loss of MaskGIT and BERT, here with the paper's t ~ U(0, 1) and kappa in place of MaskGIT's gamma(r).
Given x_t the posterior does not depend on t (a token's chance of being masked does not depend on its
value), so the network needs no time input and :class:`course_lib.orders.maskgit.MaskGIT` serves as is.

**Sampling** (``MixtureDiscreteEulerSolver``, no divergence-free term): the probability velocity is
u_t^i = kappa'(t) / (1 - kappa(t)) (p_{1|t}^i - delta_{x_t^i}). From t to t + h every position draws
x_1^i ~ p_{1|t}, and a MASKED position jumps to it with probability 1 - exp(-h kappa'(t) / (1 - kappa(t)))
(h kappa' / (1 - kappa) to first order); the last step takes every remaining draw. A decided token never
changes (its posterior is a point mass at itself).

**Against MaskGIT** (notebook 05): both fill [MASK]s with a bidirectional transformer. MaskGIT decides,
at each step, a scheduled NUMBER of tokens and picks WHICH ones by confidence (the most probable
samples first). Discrete flow matching decides each masked token at random, independently, at the rate
the scheduler sets: how many are decided per step is itself random, and which ones does not depend on
the model's confidence.

What the course simplifies: MaskGIT's small transformer and the shapes' 16 tokens, kappa(t) = t^n
(``PolynomialConvexScheduler``) only, no divergence-free term (no corrector steps), a mean over all
tokens instead of a sum per sequence (a constant factor N).

Usage::

    kappa = Polynomial(1.0)                                            # kappa(t) = t
    x_t = mask_path_sample(x1, t, mask_id, kappa, generator)           # x1 (B, N) int64, t (B,)
    l = loss(model, tokens, prompts, kappa)                             # scalar
    out = generate(model, prompts, steps=8, kappa=kappa)                # out.tokens (B, N)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from course_lib import checks, runtime
from course_lib import train as _train
from course_lib.orders import prompt as prompt_lib
from course_lib.orders.maskgit import Decoded, MaskGIT, MaskGITConfig, gumbel, logits_with_guidance


# ----------------------------------------------------------------------------- the scheduler

@dataclass(frozen=True)
class Polynomial:
    """kappa(t) = t^n (``PolynomialConvexScheduler`` of facebookresearch/flow_matching, its alpha_t):
    the share of tokens already decided at time t. n = 1 decides tokens at an even pace; n > 1 late."""
    n: float = 1.0

    def __post_init__(self):
        if isinstance(self.n, bool) or not isinstance(self.n, (int, float)) or not self.n > 0:
            raise ValueError(f"n: expected a positive exponent (kappa(t) = t^n rises from 0 to 1), got {self.n!r}")

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        return t ** self.n

    def derivative(self, t: torch.Tensor) -> torch.Tensor:
        """d kappa / dt = n t^(n-1)."""
        return self.n * t ** (self.n - 1)


def rate(kappa: Callable, t: float) -> float:
    """kappa'(t) / (1 - kappa(t)): how fast a masked token is decided at time t < 1 (the jump intensity
    of the Euler solver). Uses ``kappa.derivative`` when the scheduler has one, else a central difference."""
    t = checks.number(t, "t", 0.0, 1.0)
    if t == 1.0:
        raise ValueError("t: expected a time in [0, 1): at t = 1 every token is decided and the rate is infinite")
    tt = torch.tensor(t, dtype=torch.float64)
    if hasattr(kappa, "derivative"):
        d = float(kappa.derivative(tt))
    else:
        h = 1e-5
        d = float(kappa(tt + h) - kappa(tt - h)) / (2 * h)
    return d / max(1.0 - float(kappa(tt)), 1e-12)


# ----------------------------------------------------------------------------- the path (the exercise)

def mask_path_sample(x1: torch.Tensor, t: torch.Tensor, mask_id: int, kappa: Callable,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """A draw of x_t from the masked mixture path (Gat et al. 2024, §2; ``MixtureDiscreteProbPath.sample``):
    each token of x1 is kept with probability kappa(t) of its row and replaced by ``mask_id`` otherwise,
    independently for every token.

    x1 (B, N) int64 tokens; t (B,) float times in [0, 1], one per row; kappa: the scheduler, a function
    of a tensor of times; generator: a CPU ``torch.Generator`` (the uniforms are drawn on the CPU and
    moved, so a seed gives the same masks on every device) or None. Returns (B, N) int64; x1 unchanged."""
    checks.tensor(x1, "x1", ndim=2, floating=False, shape="(B, N) int64")
    checks.tensor(t, "t", ndim=1, floating=True, shape=f"({x1.shape[0]},)")
    checks.same_rows(t, "t", x1.shape[0], "x1")
    checks.value_range(t, "t", 0.0, 1.0)                                    # times of the path: 0 noise, 1 data
    checks.positive_int(mask_id, "mask_id", 0)
    if (x1 == mask_id).any():
        raise ValueError(f"mask_id: expected an id outside x1's tokens (the extra token after the codebook), "
                         f"but x1 holds {mask_id}: a kept token and a masked one would look the same")
    checks.generator(generator)
    u = torch.rand(x1.shape, generator=generator).to(x1.device)                              # (B, N) drawn on the CPU
    keep = u < kappa(t)[:, None]                                                             # (B, N) kept w.p. kappa(t)
    return torch.where(keep, x1, torch.full_like(x1, mask_id))                               # (B, N) int64


# ----------------------------------------------------------------------------- training

def loss(model: MaskGIT, tokens: torch.Tensor, prompts: torch.Tensor, kappa: Callable = Polynomial(1.0), *,
         p_null: float = 0.1, generator: torch.Generator | None = None,
         path_fn: Callable = mask_path_sample) -> torch.Tensor:
    """The DFM loss for the masked source (module docstring): t ~ U(0, 1) per row, x_t =
    ``path_fn(tokens, t, mask_id, kappa, generator)`` (default :func:`mask_path_sample`), the prompt
    replaced by the null prompt with probability ``p_null`` (for guidance), and the cross-entropy of the
    model's logits at the masked positions, summed and divided by B N. tokens (B, N) int64 codes,
    prompts (B, 4). Returns a scalar."""
    tokens = model.check_x(tokens, mask_allowed=False)
    checks.same_rows(prompt_lib.check_prompts(prompts), "prompts", tokens.shape[0], "tokens")
    generator = checks.generator(generator)
    t = torch.rand(tokens.shape[0], generator=generator).to(tokens.device)                  # (B,)
    x_t = path_fn(tokens, t, model.cfg.mask_id, kappa, generator)                            # (B, N)
    if not isinstance(x_t, torch.Tensor) or x_t.shape != tokens.shape or x_t.dtype != torch.long:
        raise ValueError(f"path_fn: expected a (B, N) int64 tensor like tokens {tuple(tokens.shape)}, got "
                         f"{getattr(x_t, 'dtype', type(x_t).__name__)} {tuple(getattr(x_t, 'shape', ()))}")
    masked = x_t == model.cfg.mask_id                                                        # (B, N)
    logits = model(x_t, prompt_lib.drop_prompts(prompts, checks.number(p_null, "p_null", 0.0, 1.0), generator))
    ce = F.cross_entropy(logits.flatten(0, 1), tokens.flatten(), reduction="none").view(tokens.shape)  # (B, N)
    return (ce * masked).sum() / tokens.numel()


@dataclass(frozen=True)
class Budget:
    """The demo of notebook 11's second open project in one mode: a MaskGIT-sized transformer trained
    with the DFM loss on the shape tokens."""
    mode: str                 # the course mode this budget is for
    n_train: int              # training token maps
    batch: int                # token maps per step
    d_model: int              # transformer width
    n_layer: int              # its layers
    n_head: int               # attention heads
    steps: int                # training steps
    lr: float                 # AdamW's peak learning rate (cosine decay)
    n_eval: int               # held-out prompts scored
    cfg_scale: float          # guidance scale when sampling


BUDGETS = {
    "quick": Budget("quick", n_train=2048, batch=64, d_model=64, n_layer=2, n_head=4, steps=150, lr=2e-3,
                    n_eval=64, cfg_scale=2.0),
    # lecture: trained once for the shipped weights (the notebook loads them). Prompt accuracy of DFM Euler at
    # 1 / 8 steps, cfg 2, 256 held-out prompts: 3 x 96, 600 steps 0.785 / 0.703 (31 s on a busy 2-core
    # machine); MaskGIT's 4 x 128, 1500 steps 0.934 / 0.926 (87 s)
    "lecture": Budget("lecture", n_train=8192, batch=64, d_model=128, n_layer=4, n_head=4, steps=1500, lr=1.5e-3,
                      n_eval=256, cfg_scale=2.0),
    "full": Budget("full", n_train=32768, batch=128, d_model=256, n_layer=6, n_head=8, steps=12000, lr=5e-4,
                   n_eval=2048, cfg_scale=2.0),
}


def budget(mode: str | None = None) -> Budget:
    """The DFM demo's budget in the current (or given) mode."""
    return runtime.pick(BUDGETS, mode)


def build(B: Budget, codebook_size: int, n_tokens: int, seed: int = 0) -> MaskGIT:
    """A MaskGIT-architecture transformer of budget ``B`` (weights seeded) on the course's device."""
    torch.manual_seed(seed)
    cfg = MaskGITConfig(codebook_size=codebook_size, n_tokens=n_tokens, d_model=B.d_model, n_layer=B.n_layer,
                        n_head=B.n_head)
    return MaskGIT(cfg).to(runtime.device())


def fit(model: MaskGIT, tokens: torch.Tensor, prompts: torch.Tensor, B: Budget, kappa: Callable = Polynomial(1.0), *,
        path_fn: Callable = mask_path_sample, seed: int = 0, progress: bool = True) -> _train.History:
    """Train ``model`` B.steps steps (AdamW, cosine learning rate, a short warm-up) on random batches of
    (tokens (n, N), prompts (n, 4)) with :func:`loss` (``path_fn`` draws x_t). Returns the History."""
    dev = checks.model_device(model)
    tokens, prompts = tokens.to(dev), prompts.to(dev)
    checks.same_rows(prompts, "prompts", tokens.shape[0], "tokens")
    g = torch.Generator().manual_seed(seed)

    def loss_fn(step):
        idx = torch.randint(len(tokens), (B.batch,), generator=g).to(dev)                  # (batch,)
        return loss(model, tokens[idx], prompts[idx], kappa, generator=g, path_fn=path_fn)
    return _train.train(model, loss_fn, B.steps, lr=B.lr, schedule="cosine", warmup=min(100, B.steps // 10),
                        progress=progress, desc="discrete flow matching")


# ----------------------------------------------------------------------------- sampling

@torch.no_grad()
def generate(model: MaskGIT, prompts: torch.Tensor, *, steps: int = 8, kappa: Callable = Polynomial(1.0),
             cfg_scale: float = 1.0, temperature: float = 1.0,
             generator: torch.Generator | None = None) -> Decoded:
    """Sample tokens for ``prompts`` (B, 4) with ``steps`` Euler steps of the discrete solver
    (``MixtureDiscreteEulerSolver``; module docstring), t_k = k / steps, from all-[MASK] at t = 0:

    1. logits at every position (with guidance ``cfg_scale``), divided by ``temperature``;
       x_1 ~ softmax at every position (Gumbel-max on CPU noise from ``generator``);
    2. every MASKED position jumps to its draw with probability 1 - exp(-h kappa'(t) / (1 - kappa(t)));
       the last step takes all remaining draws; decided tokens never change.

    Returns a :class:`~course_lib.orders.maskgit.Decoded`: tokens (B, N), order (the step at which each
    position was decided), guesses (each step's draws, decided tokens kept), masked (mean masked
    tokens per image before each step and after the last, rounded), nfe = steps."""
    prompts = prompt_lib.check_prompts(prompts)
    checks.same_device(model, prompts, "prompts")
    cfg_scale, temperature, steps, generator = checks.sampling(
        cfg_scale=cfg_scale, temperature=temperature, steps=steps, generator=generator)
    checks.number(temperature, "temperature", low=1e-6)
    with runtime.evaluating(model):
        B, N, dev, mask_id = prompts.shape[0], model.cfg.n_tokens, prompts.device, model.cfg.mask_id
        x = torch.full((B, N), mask_id, dtype=torch.long, device=dev)                       # (B, N) all masked
        order = torch.full((B, N), -1, dtype=torch.long, device=dev)
        guesses, masked, h = [], [N], 1.0 / steps
        for k in range(steps):
            logits = logits_with_guidance(model, x, prompts, cfg_scale=cfg_scale) / temperature    # (B, N, K)
            logp = F.log_softmax(logits.float(), -1)                                        # (B, N, K)
            draw = (logp + gumbel(logp.shape, generator, dev)).argmax(-1)                   # (B, N) x_1 ~ p_1|t
            unknown = x == mask_id                                                          # (B, N)
            if k == steps - 1:
                jump = unknown                                                              # the last step decides all
            else:
                p = 1.0 - math.exp(-h * rate(kappa, k * h))                                 # jump probability
                u = torch.rand((B, N), generator=generator).to(dev)                         # (B, N)
                jump = unknown & (u < p)
            x = torch.where(jump, draw, x)
            order = torch.where(jump, torch.full_like(order, k), order)
            guesses.append(torch.where(unknown, draw, x))
            masked.append(round(float((x == mask_id).sum(1).float().mean())))
        return Decoded(x, order, torch.stack(guesses), masked, steps)
