"""Exercises of notebook 07 (the limit of tokens and the MSE trap); see course_lib.course.homework.

* limits.round_to_bits: round each number of normalised latents to the nearest of 2^bits levels at
  the standard normal's quantiles (k + 1/2) / 2^bits: continuous tokens at a given bit budget;
* limits.mse_best_guess: the one prediction with the least expected squared error when several
  answers are right: their weighted mean (the running dog's blurred average);
* limits.gaussian_nll: the Gaussian negative log-likelihood a Gaussian head is trained with.

Every check calls the learner's function through :func:`~course_lib.course.checking.call` (inputs
changed in place, time limit, the reference handed in), on sizes that change from call to call (up to
the notebook's and beyond), on a float64 case, and on another device (the GPU, or without one PyTorch's
meta device). Each exercise lists its known mistakes once (:class:`~course_lib.course.checking.Mistake`);
a check names one only when it reproduces the learner's values (and, for the loss, gradients).
"""
from __future__ import annotations

import math

import torch

from course_lib.course.checking import (Exercise, Mismatch, Mistake, call, expect_close, expect_loss,
                                        expect_on_another_device, expect_tensor, generator, gradients, naming)
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


def _levels(bits: int, q=lambda k, L: (k + 0.5) / L, n_levels=lambda bits: 2 ** bits) -> torch.Tensor:
    """The N(0, 1) quantiles q(k, L), k = 0 .. L - 1, L = 2^bits levels, in float64."""
    L = n_levels(bits)
    return torch.distributions.Normal(0.0, 1.0).icdf(q(torch.arange(L, dtype=torch.float64), L))


# ----------------------------------------------------------------------------- round_to_bits

def _rounding(levels=_levels, pick="nearest"):
    """round_to_bits with one part swapped for a known mistake's: the levels (levels(bits) -> (L,)),
    or what is returned (the level below, or the nearest level's index)."""
    def rounded(latents, bits):
        lv = levels(bits).to(latents)                                                # (L,)
        if pick == "below":
            return lv[(torch.bucketize(latents, lv) - 1).clamp(0, len(lv) - 1)]
        if pick == "cdf_bin":               # the bin of equal probability Phi(x) falls in, not the nearest level
            k = (torch.special.ndtr(latents.double()) * len(lv)).floor().clamp(0, len(lv) - 1).long()
            return lv[k.to(lv.device)]
        idx = (latents[..., None] - lv).abs().argmin(-1)                              # (...,)
        return idx if pick == "index" else lv[idx]
    return rounded


def _ties_up(latents, bits):                # an alternative: an exact tie goes to the upper level
    lv = _levels(bits).to(latents)
    return lv.flip(0)[(latents[..., None] - lv.flip(0)).abs().argmin(-1)]


ROUND_MISTAKES = (
    Mistake("two_b_levels", _rounding(levels=lambda b: _levels(b, n_levels=lambda bits: 2 * bits)),
            "that uses 2 * bits levels; b bits name 2 ** bits levels"),
    Mistake("edges", _rounding(levels=lambda b: _levels(b, lambda k, L: k / L)),
            "the levels are at the quantiles (k + 1/2) / 2^bits; with k / 2^bits the first one is the quantile of "
            "0, -inf, and one level is lost"),
    Mistake("k_plus_one", _rounding(levels=lambda b: _levels(b, lambda k, L: (k + 1) / (L + 1))),
            "the levels are at the quantiles (k + 1/2) / 2^bits, k = 0 .. 2^bits - 1, not (k + 1) / (2^bits + 1)"),
    Mistake("uniform", _rounding(levels=lambda b: torch.linspace(-1, 1, 2 ** b, dtype=torch.float64)),
            "those are evenly spaced levels in [-1, 1]; place them at the standard normal's quantiles "
            "(torch.distributions.Normal(0, 1).icdf)"),
    Mistake("uniform_3", _rounding(levels=lambda b: torch.linspace(-3, 3, 2 ** b, dtype=torch.float64)),
            "those are evenly spaced levels in [-3, 3]; place them at the standard normal's quantiles"),
    Mistake("below", _rounding(pick="below"), "that rounds DOWN to the level below; take the NEAREST level"),
    Mistake("cdf_bin", _rounding(pick="cdf_bin"),
            "that is the level of the equal-probability bin Phi(x) falls in (floor(Phi(x) 2^bits)); the bins' "
            "edges are not halfway between the levels: take the NEAREST level, argmin |x - level|"),
    Mistake("index", _rounding(pick="index"), "that is the index of the nearest level; return the level's value"),
)


def _ties_either_way(got, x, want, bits):
    """``want``, except where x lies (within 1e-5) halfway between two levels and ``got`` is the other
    one: the docstring promises the nearest level, and either of two equally near ones is that."""
    if not (isinstance(got, torch.Tensor) and got.shape == x.shape and got.dtype == x.dtype and x.device.type != "meta"):
        return want
    lv, g = _levels(bits), got.detach().cpu().double()
    d = (x.detach().cpu().double()[..., None] - lv).abs()                             # (..., L)
    tied = (d <= d.min(-1, keepdim=True).values + 1e-5) & ((g[..., None] - lv).abs() <= 1e-5)
    return torch.where(tied.any(-1).to(want.device), got.detach(), want)


def check_round_to_bits(candidate):
    """The reference's values, shape, dtype and device on (B, 16, D) latents with 1, 2, 3, 4, 6 and 8
    bits (the notebook rounds with up to 6, on 2000 images), values far in the tails (they go to the
    outermost level), numbers exactly halfway between two levels (either level is accepted), a 1-D
    input, a float64 input, and one case on another device; the input unchanged."""
    g = generator(7)
    halfway = (_levels(2)[1:] + _levels(2)[:-1]) / 2                                   # incl. 0 exactly
    cases = [("latents (4, 16, 4), bits=2 (the notebook's 128 bits per image)", torch.randn(4, 16, 4, generator=g), 2),
             ("latents (3, 16, 4), bits=1", torch.randn(3, 16, 4, generator=g), 1),
             ("latents (2, 5, 3), bits=3", torch.randn(2, 5, 3, generator=g), 3),
             ("latents (6, 7), bits=4", 1.5 * torch.randn(6, 7, generator=g), 4),
             ("latents (2, 4, 2) far in the tails (|x| up to 8), bits=2", 8 * torch.rand(2, 4, 2, generator=g) - 4, 2),
             ("a 1-D tensor of 9 numbers, bits=3", torch.linspace(-2.2, 2.3, 9), 3),
             ("float64 latents (3, 6, 2), bits=3", torch.randn(3, 6, 2, generator=g, dtype=torch.float64), 3),
             ("numbers exactly halfway between two levels, bits=2", torch.cat([halfway, -halfway]).float(), 2),
             ("the notebook's latents (2000, 16, 4), bits=6", torch.randn(2000, 16, 4, generator=g), 6),
             ("latents (300, 16, 4), bits=8", torch.randn(300, 16, 4, generator=g), 8)]
    for desc, x, bits in cases:
        got = call(candidate, x.clone(), bits, case=desc)
        want = _ties_either_way(got, x, round_to_bits(x, bits), bits)
        with naming(ROUND_MISTAKES, got, x, bits):
            if isinstance(got, torch.Tensor) and got.shape == want.shape and not got.is_floating_point():
                raise Mismatch(f"on {desc}: returned dtype {got.dtype}; expected the levels' values in the input's "
                               f"dtype {want.dtype}")
            expect_tensor(got, want, f"on {desc}")
    x = torch.randn(2, 16, 4, generator=g)
    expect_on_another_device(candidate, (x, 2), round_to_bits(x, 2), "latents (2, 16, 4), bits=2")


# ----------------------------------------------------------------------------- mse_best_guess

def _normalised(w):
    return w / w.sum(1, keepdim=True)


GUESS_MISTAKES = (
    Mistake("plain_mean", lambda a, w: a.mean(1), "that is the plain mean of the answers: weigh each by its probability"),
    Mistake("unnormalised", lambda a, w: (w[..., None] * a).sum(1),
            "the weights are not normalised: divide by their sum over the K answers"),
    Mistake("batch_normalised", lambda a, w: (w[..., None] * a).sum(1) / w.sum(),
            "normalise the weights of each row (sum over K), not over the whole batch"),
    Mistake("most_likely", lambda a, w: a[torch.arange(len(a)), w.argmax(1)],
            "that is the most likely answer; under the squared error the best guess is the weighted MEAN, which "
            "is none of them"),
    Mistake("mean_of_weighted", lambda a, w: (_normalised(w)[..., None] * a).mean(1),
            "that is the mean of the weighted answers: with normalised weights, SUM over the K answers"),
    Mistake("median", lambda a, w: a.median(1).values, "that is the median; the squared error is minimised by the mean"),
)


def check_mse_best_guess(candidate):
    """The weighted mean (B, D), in the input's dtype and on its device: weights that do not sum
    to 1 (counts), unequal weights per row, one answer, two answers (the running dog), a batch of
    one, the notebook's 9 images of 768 numbers and beyond, a float64 case, and one on another device;
    the inputs unchanged."""
    g = generator(11)
    cases = [("answers (4, 3, 5), weights (4, 3) that are counts (they do not sum to 1)",
              torch.randn(4, 3, 5, generator=g), torch.randint(1, 6, (4, 3), generator=g).float()),
             ("answers (2, 2, 8), two answers with weights 0.5 and 0.5 (left or right)",
              torch.randn(2, 2, 8, generator=g), torch.full((2, 2), 0.5)),
             ("answers (3, 4, 2), unequal probabilities, a different row sum per row",
              torch.randn(3, 4, 2, generator=g), torch.rand(3, 4, generator=g) * torch.tensor([[1.], [3.], [0.2]])),
             ("answers (5, 1, 3), one answer", torch.randn(5, 1, 3, generator=g), torch.rand(5, 1, generator=g) + 0.1),
             ("answers (1, 6, 7), a batch of one", torch.randn(1, 6, 7, generator=g), torch.rand(1, 6, generator=g) + 0.1),
             ("the notebook's answers (1, 9, 768) (nine images of 3 x 16 x 16)", torch.rand(1, 9, 768, generator=g),
              torch.ones(1, 9)),
             ("answers (3, 12, 1024)", torch.randn(3, 12, 1024, generator=g), torch.rand(3, 12, generator=g) + 0.1),
             ("float64 answers (3, 5, 4)", torch.randn(3, 5, 4, generator=g, dtype=torch.float64),
              torch.rand(3, 5, generator=g, dtype=torch.float64) + 0.1)]
    for desc, a, w in cases:
        got = call(candidate, a.clone(), w.clone(), case=desc)
        with naming(GUESS_MISTAKES, got, a, w):
            expect_close(got, mse_best_guess(a, w), f"on {desc}")
    a, w = torch.randn(2, 3, 4, generator=g), torch.rand(2, 3, generator=g) + 0.1
    expect_on_another_device(candidate, (a, w), mse_best_guess(a, w), "answers (2, 3, 4)")


# ----------------------------------------------------------------------------- gaussian_nll

C = 0.5 * math.log(2 * math.pi)


def _nll(sigma=torch.exp, square=True, half=0.5, log_term=lambda ls: ls, const=C, sign=1.0, reduce=torch.mean):
    """The Gaussian NLL with one part swapped for a known mistake's (see NLL_MISTAKES)."""
    def nll(mu, log_sigma, x):
        s = sigma(log_sigma)
        err = (x - mu).pow(2) / (s.pow(2) if square else s)
        return sign * reduce(half * err + log_term(log_sigma) + const)
    return nll


NLL_MISTAKES = (
    Mistake("no_constant", _nll(const=0.0),
            "the constant log(2 pi) / 2 is missing: it does not change the gradients, but the value is a "
            "likelihood in nats only with it"),
    Mistake("no_half", _nll(half=1.0), "the squared term is (x - mu)^2 / (2 sigma^2): a factor 1/2 is missing"),
    Mistake("sigma_not_squared", _nll(square=False),
            "divide by sigma SQUARED (the variance), exp(2 log_sigma), not by sigma"),
    Mistake("no_log_sigma", _nll(log_term=lambda ls: 0.0),
            "the log sigma term is missing: without it the model makes sigma as large as it can"),
    Mistake("sum", _nll(reduce=torch.sum), "that is a sum over all the numbers; take the mean"),
    Mistake("log_likelihood", _nll(sign=-1.0), "that is the log-likelihood; the loss is its NEGATIVE"),
    Mistake("log_sigma_as_sigma", _nll(sigma=lambda ls: ls, log_term=lambda ls: ls.abs().log()),
            "log_sigma is the LOG of sigma: sigma = exp(log_sigma)"),
    Mistake("sigma_detached", _nll(sigma=lambda ls: ls.detach().exp(), log_term=lambda ls: ls.detach()),
            "log_sigma was detached: the loss must train sigma too (no .detach() on log_sigma)"),
)


def check_gaussian_nll(candidate):
    """A 0-d loss attached to the graph, with the reference's value and its gradients with respect
    to mu and log_sigma: (B, T, D) tokens (up to the notebook's 2000 x 16 x 4, and beyond), sigma below
    and above 1, a float64 case, and one on another device; the inputs unchanged. A known mistake is
    named only when the learner's value AND gradients are that mistake's."""
    g = generator(13)
    cases = [("mu, log_sigma, x of shape (8, 16, 4), sigma between 0.4 and 2.7", (8, 16, 4), (-1.0, 1.0), torch.float32),
             ("shape (3, 5), small sigma (log_sigma from -3 to -1)", (3, 5), (-3.0, -1.0), torch.float32),
             ("shape (2, 3, 2), sigma = 1 everywhere (log_sigma = 0)", (2, 3, 2), (0.0, 0.0), torch.float32),
             ("float64, shape (4, 6, 3)", (4, 6, 3), (-0.5, 1.5), torch.float64),
             ("shape (2100, 16, 4)", (2100, 16, 4), (-1.0, 1.0), torch.float32)]
    for desc, shape, (lo, hi), dtype in cases:
        mu = torch.randn(*shape, generator=g, dtype=dtype).requires_grad_(True)
        log_sigma = (lo + (hi - lo) * torch.rand(*shape, generator=g, dtype=dtype)).requires_grad_(True)
        x = mu.detach() + 1.5 * torch.randn(*shape, generator=g, dtype=dtype)
        got = call(candidate, mu, log_sigma, x, case=desc)
        atol, rtol = (1e-10, 1e-9) if dtype == torch.float64 else (1e-5, 1e-4)
        with naming(NLL_MISTAKES, (got, gradients(got, [mu, log_sigma])), mu, log_sigma, x, wrt=(0, 1)):
            expect_loss(got, gaussian_nll(mu, log_sigma, x), f"on {desc}, the loss", {"mu": mu, "log_sigma": log_sigma},
                        atol=atol, rtol=rtol)
    mu, log_sigma, x = torch.randn(2, 16, 4, generator=g), torch.zeros(2, 16, 4), torch.randn(2, 16, 4, generator=g)
    expect_on_another_device(candidate, (mu, log_sigma, x), gaussian_nll(mu, log_sigma, x), "tensors (2, 16, 4)")


# the exercises of this topic, in notebook order
EXERCISES = [
    Exercise("limits.round_to_bits", reference=round_to_bits, checker=check_round_to_bits,
             description=check_round_to_bits.__doc__, mistakes=ROUND_MISTAKES, alternatives=(_ties_up,)),
    Exercise("limits.mse_best_guess", reference=mse_best_guess, checker=check_mse_best_guess,
             description=check_mse_best_guess.__doc__, mistakes=GUESS_MISTAKES),
    Exercise("limits.gaussian_nll", reference=gaussian_nll, checker=check_gaussian_nll,
             description=check_gaussian_nll.__doc__, mistakes=NLL_MISTAKES),
]
