"""Exercises of notebook 07 (the limit of tokens and the MSE trap); see course_lib.course.homework.

* limits.round_to_bits: round each number of normalised latents to the nearest of 2^bits levels at
  the standard normal's quantiles (k + 1/2) / 2^bits: continuous tokens at a given bit budget;
* limits.mse_best_guess: the one prediction with the least expected squared error when several
  answers are right: their weighted mean (the running dog's blurred average);
* limits.gaussian_nll: the Gaussian negative log-likelihood a Gaussian head is trained with.

Every check calls the learner's function through :func:`~course_lib.course.checking.call` (inputs
changed in place, time limit, the reference handed in), on sizes that change from call to call, on
a float64 case, and on another device (the GPU, or without one PyTorch's meta device).
"""
from __future__ import annotations

import math

import torch

from course_lib.course.checking import (Exercise, Mismatch, call, expect_loss, expect_on_another_device,
                                        expect_tensor)
from course_lib.orders import continuous
from course_lib.tokens.rounding import round_to_bits as _round_to_bits


# ----------------------------------------------------------------------------- references

def round_to_bits(latents: torch.Tensor, bits: int) -> torch.Tensor:
    """Each number rounded to the nearest of 2^bits levels at the N(0, 1) quantiles (k + 1/2) / 2^bits."""
    return _round_to_bits(latents, bits)


def mse_best_guess(answers: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """answers (B, K, D), weights (B, K) >= 0 -> (B, D): the weighted mean of the K answers."""
    return continuous.best_mse_guess(answers, weights)


def gaussian_nll(mu: torch.Tensor, log_sigma: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean over all numbers of (x - mu)^2 / (2 sigma^2) + log sigma + log(2 pi) / 2."""
    return continuous.gaussian_nll(mu, log_sigma, x)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _normal_levels(q: torch.Tensor) -> torch.Tensor:
    return torch.distributions.Normal(0.0, 1.0).icdf(q)


def _nearest(x: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    levels = levels.to(x)
    return levels[(x[..., None] - levels).abs().argmin(-1)]


# ----------------------------------------------------------------------------- round_to_bits

def _round_hint(got: torch.Tensor, x: torch.Tensor, bits: int) -> str:
    if not isinstance(got, torch.Tensor) or got.shape != x.shape or got.device.type == "meta":
        return ""
    g = got.detach().cpu().double()
    L = 2 ** bits
    if not torch.isfinite(g).all():
        return ("a level is infinite: the quantiles are (k + 1/2) / 2^bits, which stay inside (0, 1); "
                "k / 2^bits starts at 0, whose normal quantile is -inf")
    xs = x.detach().cpu().double()
    alternatives = [
        (_nearest(xs, _normal_levels((torch.arange(2 * bits, dtype=torch.float64) + 0.5) / (2 * bits))),
         f"that uses 2 * bits = {2 * bits} levels; b bits name 2 ** bits = {L} levels"),
        (_nearest(xs, _normal_levels(torch.arange(L, dtype=torch.float64) / L)),
         "the levels are at the quantiles (k + 1/2) / 2^bits; with k / 2^bits the first one is the "
         "quantile of 0, -inf, and one level is lost"),
        (_nearest(xs, _normal_levels((torch.arange(L, dtype=torch.float64) + 1) / (L + 1))),
         "the levels are at the quantiles (k + 1/2) / 2^bits, k = 0 .. 2^bits - 1, not (k + 1) / (2^bits + 1)"),
        (_nearest(xs, torch.linspace(-1, 1, L, dtype=torch.float64)),
         "those are evenly spaced levels in [-1, 1]; place them at the standard normal's quantiles "
         "(torch.distributions.Normal(0, 1).icdf)"),
        (_nearest(xs, torch.linspace(-3, 3, L, dtype=torch.float64)),
         "those are evenly spaced levels in [-3, 3]; place them at the standard normal's quantiles"),
    ]
    levels = _normal_levels((torch.arange(L, dtype=torch.float64) + 0.5) / L)
    idx_floor = (torch.bucketize(xs, levels) - 1).clamp(0, L - 1)
    alternatives.append((levels[idx_floor], "that rounds DOWN to the level below; take the NEAREST level"))
    for value, text in alternatives:
        if value.shape == g.shape and torch.allclose(g, value, atol=1e-5, rtol=1e-4):
            return text
    if not got.is_floating_point() and torch.equal(got.cpu().long(),
                                                    (xs[..., None] - levels).abs().argmin(-1)):
        return "that is the index of the nearest level; return the level's value"
    return ""


def check_round_to_bits(candidate):
    """The reference's values, shape, dtype and device on (B, 16, D) latents with 1, 2, 3 and 4
    bits, values far in the tails (they go to the outermost level), a 1-D input, a float64 input,
    and one case on another device; the input unchanged."""
    g = _gen(7)
    cases = [("latents (4, 16, 4), bits=2 (the notebook's 128 bits per image)", torch.randn(4, 16, 4, generator=g), 2),
             ("latents (3, 16, 4), bits=1", torch.randn(3, 16, 4, generator=g), 1),
             ("latents (2, 5, 3), bits=3", torch.randn(2, 5, 3, generator=g), 3),
             ("latents (6, 7), bits=4", 1.5 * torch.randn(6, 7, generator=g), 4),
             ("latents (2, 4, 2) far in the tails (|x| up to 8), bits=2", 8 * torch.rand(2, 4, 2, generator=g) - 4, 2),
             ("a 1-D tensor of 9 numbers, bits=3", torch.linspace(-2.2, 2.3, 9), 3),
             ("float64 latents (3, 6, 2), bits=3", torch.randn(3, 6, 2, generator=g, dtype=torch.float64), 3)]
    for desc, x, bits in cases:
        want = round_to_bits(x, bits)
        got = call(candidate, x.clone(), bits, case=desc)
        if isinstance(got, torch.Tensor) and got.shape == want.shape and not got.is_floating_point():
            hint = _round_hint(got, x, bits)
            raise Mismatch(f"on {desc}: returned dtype {got.dtype}; expected the levels' values in the input's "
                           f"dtype {want.dtype}" + (f" ({hint})" if hint else ""))
        try:
            expect_tensor(got, want, f"on {desc}")
        except Mismatch as e:
            hint = _round_hint(got, x, bits)
            raise Mismatch(f"{e} ({hint})" if hint else str(e)) from None
    x = torch.randn(2, 16, 4, generator=g)
    expect_on_another_device(candidate, (x, 2), round_to_bits(x, 2), "latents (2, 16, 4), bits=2")


# ----------------------------------------------------------------------------- mse_best_guess

def _guess_hint(got, answers, weights) -> str:
    if not isinstance(got, torch.Tensor) or got.device.type == "meta":
        return ""
    g = got.detach().cpu().double()
    a, w = answers.detach().cpu().double(), weights.detach().cpu().double()
    wn = w / w.sum(1, keepdim=True)
    alternatives = [
        (a.mean(1), "that is the plain mean of the answers: weigh each by its probability"),
        ((w[..., None] * a).sum(1), "the weights are not normalised: divide by their sum over the K answers"),
        ((w[..., None] * a).sum(1) / w.sum(), "normalise the weights of each row (sum over K), not over "
                                              "the whole batch"),
        (a[torch.arange(len(a)), w.argmax(1)], "that is the most likely answer; under the squared error "
                                               "the best guess is the weighted MEAN, which is none of them"),
        ((wn[..., None] * a).mean(1), "that is the mean of the weighted answers: with normalised weights, "
                                      "SUM over the K answers"),
        (a.median(1).values, "that is the median; the squared error is minimised by the mean"),
    ]
    for value, text in alternatives:
        if value.shape == g.shape and torch.allclose(g, value, atol=1e-5, rtol=1e-4):
            return text
    return ""


def check_mse_best_guess(candidate):
    """The weighted mean (B, D), in the input's dtype and on its device: weights that do not sum
    to 1 (counts), unequal weights per row, one answer, two answers (the running dog), a batch of
    one, a float64 case, and one on another device; the inputs unchanged."""
    g = _gen(11)
    cases = [("answers (4, 3, 5), weights (4, 3) that are counts (they do not sum to 1)",
              torch.randn(4, 3, 5, generator=g), torch.randint(1, 6, (4, 3), generator=g).float()),
             ("answers (2, 2, 8), two answers with weights 0.5 and 0.5 (left or right)",
              torch.randn(2, 2, 8, generator=g), torch.full((2, 2), 0.5)),
             ("answers (3, 4, 2), unequal probabilities, a different row sum per row",
              torch.randn(3, 4, 2, generator=g), torch.rand(3, 4, generator=g) * torch.tensor([[1.], [3.], [0.2]])),
             ("answers (5, 1, 3), one answer", torch.randn(5, 1, 3, generator=g), torch.rand(5, 1, generator=g) + 0.1),
             ("answers (1, 6, 7), a batch of one", torch.randn(1, 6, 7, generator=g), torch.rand(1, 6, generator=g) + 0.1),
             ("float64 answers (3, 5, 4)", torch.randn(3, 5, 4, generator=g, dtype=torch.float64),
              torch.rand(3, 5, generator=g, dtype=torch.float64) + 0.1)]
    for desc, a, w in cases:
        want = mse_best_guess(a, w)
        got = call(candidate, a.clone(), w.clone(), case=desc)
        try:
            expect_tensor(got, want, f"on {desc}")
        except Mismatch as e:
            hint = _guess_hint(got, a, w)
            raise Mismatch(f"{e} ({hint})" if hint else str(e)) from None
    a, w = torch.randn(2, 3, 4, generator=g), torch.rand(2, 3, generator=g) + 0.1
    expect_on_another_device(candidate, (a, w), mse_best_guess(a, w), "answers (2, 3, 4)")


# ----------------------------------------------------------------------------- gaussian_nll

def _nll_hint(value, mu, log_sigma, x) -> str:
    m, ls, xx = mu.detach().double(), log_sigma.detach().double(), x.detach().double()
    s = ls.exp()
    c = 0.5 * math.log(2 * math.pi)
    z2 = ((xx - m) / s).pow(2)
    alternatives = [
        ((0.5 * z2 + ls).mean().item(), "the constant log(2 pi) / 2 is missing: it does not change the "
                                        "gradients, but the value is a likelihood in nats only with it"),
        ((z2 + ls + c).mean().item(), "the squared term is (x - mu)^2 / (2 sigma^2): a factor 1/2 is missing"),
        ((0.5 * (xx - m).pow(2) / s + ls + c).mean().item(), "divide by sigma SQUARED (the variance), "
                                                             "exp(2 log_sigma), not by sigma"),
        ((0.5 * z2 + c).mean().item(), "the log sigma term is missing: without it the model makes sigma "
                                       "as large as it can"),
        ((0.5 * z2 + ls + c).sum().item(), "that is a sum over all the numbers; take the mean"),
        (-(0.5 * z2 + ls + c).mean().item(), "that is the log-likelihood; the loss is its NEGATIVE"),
        ((0.5 * ((xx - m) / ls).pow(2) + ls.abs().log() + c).mean().item(),
         "log_sigma is the LOG of sigma: sigma = exp(log_sigma)"),
    ]
    for alt, text in alternatives:
        if math.isfinite(alt) and math.isclose(value, alt, rel_tol=1e-6, abs_tol=1e-9):
            return text
    return ""


def check_gaussian_nll(candidate):
    """A 0-d loss attached to the graph, with the reference's value and its gradients with respect
    to mu and log_sigma: (B, T, D) tokens, sigma below and above 1, a float64 case, and one on
    another device; the inputs unchanged."""
    g = _gen(13)
    cases = [("mu, log_sigma, x of shape (8, 16, 4), sigma between 0.4 and 2.7", (8, 16, 4), (-1.0, 1.0), torch.float32),
             ("shape (3, 5), small sigma (log_sigma from -3 to -1)", (3, 5), (-3.0, -1.0), torch.float32),
             ("shape (2, 3, 2), sigma = 1 everywhere (log_sigma = 0)", (2, 3, 2), (0.0, 0.0), torch.float32),
             ("float64, shape (4, 6, 3)", (4, 6, 3), (-0.5, 1.5), torch.float64)]
    for desc, shape, (lo, hi), dtype in cases:
        mu = torch.randn(*shape, generator=g, dtype=dtype).requires_grad_(True)
        log_sigma = (lo + (hi - lo) * torch.rand(*shape, generator=g, dtype=dtype)).requires_grad_(True)
        x = mu.detach() + 1.5 * torch.randn(*shape, generator=g, dtype=dtype)
        want = gaussian_nll(mu, log_sigma, x)
        got = call(candidate, mu, log_sigma, x, case=desc)
        atol, rtol = (1e-10, 1e-9) if dtype == torch.float64 else (1e-5, 1e-4)
        try:
            expect_loss(got, want, f"on {desc}, the loss", {"mu": mu, "log_sigma": log_sigma}, atol=atol, rtol=rtol)
        except Mismatch as e:
            if isinstance(got, torch.Tensor) and got.dim() == 0:
                hint = _nll_hint(float(got.detach()), mu, log_sigma, x)
                if hint:
                    raise Mismatch(f"{e} ({hint})") from None
            raise
    mu, log_sigma, x = torch.randn(2, 16, 4, generator=g), torch.zeros(2, 16, 4), torch.randn(2, 16, 4, generator=g)
    expect_on_another_device(candidate, (mu, log_sigma, x), gaussian_nll(mu, log_sigma, x), "tensors (2, 16, 4)")


# the exercises of this topic, in notebook order
EXERCISES = [
    Exercise("limits.round_to_bits", reference=round_to_bits, checker=check_round_to_bits,
             description=check_round_to_bits.__doc__),
    Exercise("limits.mse_best_guess", reference=mse_best_guess, checker=check_mse_best_guess,
             description=check_mse_best_guess.__doc__),
    Exercise("limits.gaussian_nll", reference=gaussian_nll, checker=check_gaussian_nll,
             description=check_gaussian_nll.__doc__),
]
