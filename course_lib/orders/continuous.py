"""Chaining continuous tokens: a causal transformer over [prompt; latent tokens] (notebooks 07, 09).

The GPT of notebook 04 (:mod:`course_lib.orders.gpt`) reads token ids and ends in a softmax over K
codes. Over continuous tokens (:mod:`course_lib.recipes.shape_latents`: 16 vectors of D numbers)
the input is a linear projection of each vector instead of an embedding lookup, and the model's
output at position i is a **condition vector** z_i, not a distribution. What turns z_i into the
token x_i is a **head**: this module has the two simplest ones, which notebook 07 shows failing,

* :class:`MSEHead`: x_i = W z_i, trained with the squared error. Its optimum is the conditional
  MEAN E[x_i | prompt, x_<i]: when several tokens are right (the shape on the left or on the
  right), it predicts their average, which is none of them ("the running dog" of the lecture);
* :class:`GaussianHead`: x_i ~ N(mu(z_i), diag sigma(z_i)^2), trained with the Gaussian negative
  log-likelihood (the mixture-free case of Graves 2013, "Generating Sequences With Recurrent
  Neural Networks", §4). It samples, but around the same mean: one bump cannot sit on two answers.

Generative heads that do not average (flow matching as in NextStep-1, diffusion as in MAR, Li et
al. 2024, "Autoregressive Image Generation without Vector Quantization", §3; an energy-distance
head as in SLED) take the same z_i and live in notebook 09; any module with ``loss(z, x)`` and
``sample(z, generator, temperature)`` plugs into :func:`loss` and :func:`generate`.

The sequence, as in the GPT of notebook 04::

    [p_shape, p_color, p_position, p_size, x_1, ..., x_15]   ->   z_1, ..., z_16

``ContinuousAR.forward(latents (B, T, D), prompts (B, 4)) -> z (B, T, d_model)``: z[:, i] sees the
prompt and latents[:, :i] only (causal mask), and is the condition for latents[:, i].
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib import checks
from course_lib.nets.transformer import Config, KVCache, Transformer, make_mask
from course_lib.orders import prompt as P


@dataclass
class ContinuousConfig:
    latent_dim: int = 4             # D numbers per token
    n_tokens: int = 16              # tokens per image (4 x 4)
    d_model: int = 128
    n_layer: int = 4
    n_head: int = 4


class ContinuousAR(nn.Module):
    """Prompt embedding + Linear(D, d_model) on each latent + learned positions -> causal
    :class:`Transformer` -> one condition vector per token."""

    def __init__(self, cfg: ContinuousConfig = ContinuousConfig()):
        super().__init__()
        self.cfg = cfg
        self.prompt = P.PromptEmbedding(cfg.d_model)
        self.proj = nn.Linear(cfg.latent_dim, cfg.d_model)
        self.pos = nn.Parameter(torch.zeros(1, P.N_PROMPT + cfg.n_tokens, cfg.d_model))
        self.body = Transformer(Config(d_model=cfg.d_model, n_layer=cfg.n_layer, n_head=cfg.n_head))
        nn.init.normal_(self.pos, std=0.02)

    def check_latents(self, latents, name: str = "latents") -> torch.Tensor:
        c = self.cfg
        checks.tensor(latents, name, ndim=3, floating=True, shape=f"(B, T <= {c.n_tokens}, {c.latent_dim})")
        if latents.shape[2] != c.latent_dim or latents.shape[1] > c.n_tokens:
            raise ValueError(f"{name}: expected shape (B, T <= {c.n_tokens}, {c.latent_dim}), got {tuple(latents.shape)}")
        return checks.same_place(self, latents, name)

    def embed(self, prompts: torch.Tensor, latents: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Prompt tokens (if ``start == 0``) then projected latents, positions from ``start`` on:
        (B, 4 + T, d_model), or (B, T, d_model) when start > 0 (a cached step)."""
        prompt = self.prompt(prompts) if start == 0 else None                  # (B, 4, d)
        return P.sequence(prompt, self.proj(latents), self.pos, start)          # (B, 4 + T, d) or (B, T, d)

    def forward(self, latents: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
        latents = self.check_latents(latents)
        prompts = P.check_prompts(prompts)
        if prompts.shape[0] != latents.shape[0]:
            raise ValueError(f"latents and prompts must have the same batch size, got {latents.shape[0]} "
                             f"and {prompts.shape[0]}")
        T = latents.shape[1]
        x = self.embed(prompts, latents[:, :-1])                                # (B, 4 + T - 1, d)
        h = self.body(x, make_mask("causal", x.shape[1], device=x.device))     # (B, 3 + T, d)
        return h[:, P.N_PROMPT - 1:P.N_PROMPT - 1 + T]                          # (B, T, d): z_i for x_i


class MSEHead(nn.Module):
    """x_hat = Linear(z): a regression. ``sample`` returns the prediction itself (there is nothing
    to draw: the MSE optimum is the conditional mean)."""

    def __init__(self, d_model: int, latent_dim: int):
        super().__init__()
        self.out = nn.Linear(d_model, latent_dim)

    def loss(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Mean squared error between Linear(z) (..., D) and the tokens x (..., D)."""
        return F.mse_loss(self.out(z), x)

    def sample(self, z: torch.Tensor, generator: torch.Generator | None = None,
               temperature: float = 1.0) -> torch.Tensor:
        return self.out(z)                                                      # (..., D)


def gaussian_nll(mu: torch.Tensor, log_sigma: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of x under N(mu, sigma^2), per number (nats), averaged over all of
    them: (x - mu)^2 / (2 sigma^2) + log sigma + log(2 pi) / 2. All three tensors the same shape."""
    nll = 0.5 * ((x - mu) * torch.exp(-log_sigma)).pow(2) + log_sigma + 0.5 * math.log(2 * math.pi)
    return nll.mean()


class GaussianHead(nn.Module):
    """A diagonal Gaussian per token: Linear(z) -> (mu, log sigma), each (..., D); log sigma is
    clamped to [-7, 2] so that the likelihood cannot blow up on a dimension with no spread."""

    def __init__(self, d_model: int, latent_dim: int):
        super().__init__()
        self.out = nn.Linear(d_model, 2 * latent_dim)

    def params(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, log_sigma = self.out(z).chunk(2, dim=-1)                            # 2 x (..., D)
        return mu, log_sigma.clamp(-7.0, 2.0)

    def loss(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """:func:`gaussian_nll` of the tokens x (..., D) under the head's Gaussians."""
        return gaussian_nll(*self.params(z), x)

    def sample(self, z: torch.Tensor, generator: torch.Generator | None = None,
               temperature: float = 1.0) -> torch.Tensor:
        """mu + temperature * sigma * eps, eps ~ N(0, I) drawn on the CPU from ``generator``."""
        mu, log_sigma = self.params(z)
        eps = torch.randn(mu.shape, generator=generator).to(mu)
        return mu + temperature * log_sigma.exp() * eps                         # (..., D)


def loss(model: ContinuousAR, head: nn.Module, latents: torch.Tensor, prompts: torch.Tensor,
         p_null: float = 0.1, generator: torch.Generator | None = None) -> torch.Tensor:
    """The head's loss on (B, 16, D) latents, the prompt replaced by the null prompt with
    probability ``p_null`` per image (classifier-free guidance training, as the GPT of 04)."""
    prompts = P.drop_prompts(prompts, p_null, generator)
    z = model(latents, prompts)                                                 # (B, 16, d)
    return head.loss(z, latents)


@torch.no_grad()
def generate(model: ContinuousAR, head: nn.Module, prompts: torch.Tensor, *, cfg_scale: float = 1.0,
             temperature: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw (B, n_tokens, D) latents in raster order for ``prompts`` (B, 4): one forward pass per
    token with the KV cache, each z_i handed to ``head.sample``. With cfg_scale != 1 the prompted
    and the null-prompted rows run together and the condition is guided as in SLED (Ma et al.
    2025): z = z_null + cfg_scale * (z_prompt - z_null)."""
    cfg = model.cfg
    prompts = P.check_prompts(prompts)
    checks.same_device(model, prompts, "prompts")
    scale = checks.number(cfg_scale, "cfg_scale")
    B, dev = prompts.shape[0], prompts.device
    guided = scale != 1.0
    rows = torch.cat([prompts, P.null_prompts(B, dev)]) if guided else prompts  # (R, 4)
    was = model.training
    model.eval()
    cache = KVCache()
    none = torch.zeros(len(rows), 0, cfg.latent_dim, device=dev)                 # no token yet
    h = model.body(model.embed(rows, none), cache=cache)                        # (R, 4, d): the prompt
    out = []
    for i in range(cfg.n_tokens):
        z = h[:, -1]                                                            # (R, d)
        if guided:
            z = z[B:] + scale * (z[:B] - z[B:])                                 # (B, d)
        x = head.sample(z, generator=generator, temperature=temperature)        # (B, D)
        out.append(x)
        if i + 1 < cfg.n_tokens:
            seq = x.repeat(2, 1) if guided else x                               # (R, D)
            h = model.body(model.embed(rows, seq[:, None], start=P.N_PROMPT + i), cache=cache)
    model.train(was)
    return torch.stack(out, dim=1)                                              # (B, 16, D)


def n_params(*modules: nn.Module) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())


def best_mse_guess(answers: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The single prediction with the least expected squared error when the right answer is
    answers[:, k] with probability proportional to weights[:, k]: their weighted mean.
    answers (B, K, D), weights (B, K) >= 0 -> (B, D)."""
    w = weights / weights.sum(1, keepdim=True)                                        # (B, K), rows sum to 1
    return (w[..., None] * answers).sum(1)                                            # (B, D)
