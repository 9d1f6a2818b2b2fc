"""Chaining continuous tokens: a causal transformer over [prompt; latent tokens] (notebooks 07, 09).

The GPT of notebook 04 (:mod:`course_lib.orders.gpt`) reads token ids and ends in a softmax over K
codes. Over continuous tokens (:mod:`course_lib.recipes.shape_latents`: 16 vectors of D numbers)
the input is a linear projection of each vector instead of an embedding lookup, and the model's
output at position i is a **condition vector** z_i, not a distribution: both are the same
:class:`~course_lib.orders.prompt.PromptedCausal`. What turns z_i into the token x_i is a **head**
of :mod:`course_lib.heads` (MAR's ``DiffLoss`` shape: ``head.loss(x, z)`` and ``head.sample(z,
...)``); notebook 07 shows the two simplest failing,

* ``heads.MSEHead`` with ``hidden=0``: x_i = W z_i, trained with the squared error. Its optimum is
  the conditional MEAN E[x_i | prompt, x_<i]: when several tokens are right (the shape on the left
  or on the right), it predicts their average, which is none of them ("the running dog" of the
  lecture); :func:`best_mse_guess` is that average;
* ``heads.GaussianHead``: x_i ~ N(mu(z_i), diag sigma(z_i)^2), trained with :func:`gaussian_nll`
  (the mixture-free case of Graves 2013, "Generating Sequences With Recurrent Neural Networks",
  §4). It samples, but around the same mean: one bump cannot sit on two answers.

Generative heads that do not average (flow matching as in NextStep-1, diffusion as in MAR, Li et
al. 2024, "Autoregressive Image Generation without Vector Quantization", §3; an energy-distance
head as in SLED) take the same z_i and live in notebook 09.

The sequence, as in the GPT of notebook 04::

    [p_shape, p_color, p_position, p_size, x_1, ..., x_15]   ->   z_1, ..., z_16

``ContinuousAR.forward(latents (B, T, D), prompts (B, 4)) -> z (B, T, d_model)``: z[:, i] sees the
prompt and latents[:, :i] only (causal mask), and is the condition for latents[:, i].

Guidance (:func:`generate` with cfg_scale != 1): the transformer runs the prompted and the
null-prompted rows together and hands both conditions to the head, ``head.sample(z, z_uncond=,
cfg_scale=)``; the head combines them where its paper does (:mod:`course_lib.heads.base`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from course_lib import checks
from course_lib.orders import prompt as P


@dataclass
class ContinuousConfig:
    latent_dim: int = 4             # D numbers per token
    n_tokens: int = 16              # tokens per image (4 x 4)
    d_model: int = 128
    n_layer: int = 4
    n_head: int = 4


class ContinuousAR(P.PromptedCausal):
    """Prompt embedding + Linear(D, d_model) on each latent + learned positions -> causal
    :class:`Transformer` -> one condition vector per token
    (:class:`~course_lib.orders.prompt.PromptedCausal` with an ``nn.Linear`` for the tokens)."""

    def __init__(self, cfg: ContinuousConfig = ContinuousConfig()):
        super().__init__(cfg.d_model, cfg.n_tokens, cfg.n_layer, cfg.n_head,
                         input_layer=lambda: nn.Linear(cfg.latent_dim, cfg.d_model))
        self.cfg = cfg
        nn.init.normal_(self.pos, std=0.02)

    def check_x(self, latents, name: str = "latents") -> torch.Tensor:
        c = self.cfg
        checks.tensor(latents, name, ndim=3, floating=True, shape=f"(B, T <= {c.n_tokens}, {c.latent_dim})")
        if latents.shape[2] != c.latent_dim or latents.shape[1] > c.n_tokens:
            raise ValueError(f"{name}: expected shape (B, T <= {c.n_tokens}, {c.latent_dim}), got {tuple(latents.shape)}")
        checks.rows(latents, name)
        checks.finite(latents, name)
        return checks.same_place(self, latents, name)

    def forward(self, latents: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
        return self.hidden(latents, prompts)                                    # (B, T, d): z_i for x_i


def check_head(model: nn.Module, head: nn.Module, name: str = "head") -> nn.Module:
    """``head`` must be a head of :mod:`course_lib.heads` (``loss(x, z)``, ``sample(z, ...)``) made
    for this model: tokens of the model's ``latent_dim``, conditions of its ``d_model``."""
    c = model.cfg
    if not hasattr(head, "sample"):
        raise TypeError(f"{name}: expected a head with loss(x, z) and sample(z, ...) (course_lib.heads), "
                        f"got {type(head).__name__}")
    got = (getattr(head, "token_dim", None), getattr(head, "cond_dim", None))
    if got != (c.latent_dim, c.d_model):
        raise ValueError(f"{name}: expected a head for tokens of {c.latent_dim} numbers and conditions of "
                         f"{c.d_model} (the model's latent_dim, d_model), got token_dim {got[0]}, cond_dim {got[1]}")
    return head


def loss(model: ContinuousAR, head: nn.Module, latents: torch.Tensor, prompts: torch.Tensor, *,
         p_null: float = 0.1, generator: torch.Generator | None = None) -> torch.Tensor:
    """The head's loss on (B, 16, D) latents, the prompt replaced by the null prompt with
    probability ``p_null`` per image (classifier-free guidance training, as the GPT of 04)."""
    check_head(model, head)
    latents = model.check_x(latents)
    if latents.shape[1] != model.cfg.n_tokens:                 # a prefix is for generation, not training
        raise ValueError(f"latents: expected whole images, shape (B, {model.cfg.n_tokens}, {model.cfg.latent_dim}), "
                         f"got {tuple(latents.shape)}")
    checks.same_rows(P.check_prompts(prompts), "prompts", latents.shape[0], "latents")
    checks.number(p_null, "p_null", 0.0, 1.0)
    prompts = P.drop_prompts(prompts, p_null, checks.generator(generator))
    z = model(latents, prompts)                                                 # (B, 16, d)
    return head.loss(latents, z, generator=generator)                           # its noise and times from the caller's stream


@torch.no_grad()
def generate(model: ContinuousAR, head: nn.Module, prompts: torch.Tensor, *, cfg_scale: float = 1.0,
             temperature: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw (B, n_tokens, D) latents in raster order for ``prompts`` (B, 4): one forward pass per
    token with the KV cache, each z_i handed to ``head.sample``. With cfg_scale != 1 the prompted
    and the null-prompted rows run together and the head gets both conditions, ``head.sample(z,
    z_uncond=, cfg_scale=)``: the head guides where its paper does (:mod:`course_lib.heads.base`)."""
    prompts = P.check_prompts(prompts)
    checks.same_device(model, prompts, "prompts")
    check_head(model, head)
    scale, temperature, _, generator = checks.sampling(cfg_scale=cfg_scale, temperature=temperature,
                                                       generator=generator)
    B, guided = prompts.shape[0], scale != 1.0

    def draw(i, z):                                                             # z (R, d) -> (B, D)
        z_uncond = z[B:] if guided else None
        return head.sample(z[:B], z_uncond=z_uncond, cfg_scale=scale, temperature=temperature,
                           generator=generator)

    empty = torch.zeros(2 * B if guided else B, 0, model.cfg.latent_dim, device=prompts.device)
    return model.autoregress(prompts, empty, draw, guided=guided)              # (B, 16, D)


def gaussian_nll(mu: torch.Tensor, log_sigma: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of x under N(mu, sigma^2), per number (nats), averaged over all of
    them: (x - mu)^2 / (2 sigma^2) + log sigma + log(2 pi) / 2. All three tensors the same shape.
    The loss of ``heads.GaussianHead``."""
    nll = 0.5 * ((x - mu) * torch.exp(-log_sigma)).pow(2) + log_sigma + 0.5 * math.log(2 * math.pi)
    return nll.mean()


def best_mse_guess(answers: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The single prediction with the least expected squared error when the right answer is
    answers[:, k] with probability proportional to weights[:, k]: their weighted mean.
    answers (B, K, D), weights (B, K) >= 0 -> (B, D)."""
    w = weights / weights.sum(1, keepdim=True)                                        # (B, K), rows sum to 1
    return (w[..., None] * answers).sum(1)                                            # (B, D)
