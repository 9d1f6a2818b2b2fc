"""Notebook 07's exercises (the limit of tokens and the MSE trap): each known mistake
(Exercise.mistakes, in course_lib/course/exercises/limits.py) is caught with its own message and each
correct alternative passes (tests/mistakes.py); the wrong answers below are not named mistakes but kinds
the checks must catch (a dtype, a device, a shape, an input changed in place, no gradient); the correct
ones, written otherwise than the reference, pass. tests/test_homework.py runs WRONG and CORRECT_ANSWERS."""
import math

import torch

from course_lib.course.exercises import limits as topic
from tests.mistakes import known_mistake_tests

test_known_mistake_named, test_correct_alternative_passes = known_mistake_tests(topic)

N01 = torch.distributions.Normal(0.0, 1.0)


# ----------------------------------------------------------------------------- round_to_bits

def _nearest(x, levels):
    return levels[(x[..., None] - levels).abs().argmin(-1)]


def round_float32(latents, bits):                     # levels in a fixed dtype
    levels = N01.icdf((torch.arange(2 ** bits) + 0.5) / 2 ** bits).to(latents.device)
    return _nearest(latents.float(), levels)


def round_cpu(latents, bits):                         # levels on a fixed device
    levels = N01.icdf((torch.arange(2 ** bits) + 0.5) / 2 ** bits).to(latents.dtype)
    return levels[(latents[..., None] - levels).abs().argmin(-1).cpu()]


def round_in_place(latents, bits):
    levels = N01.icdf((torch.arange(2 ** bits) + 0.5) / 2 ** bits).to(latents)
    latents.copy_(_nearest(latents, levels))
    return latents


# ----------------------------------------------------------------------------- mse_best_guess

def guess_over_dims(answers, weights):                # averages the D numbers of each answer
    w = weights / weights.sum(1, keepdim=True)
    return (w * answers.mean(2))


def guess_float32(answers, weights):
    w = (weights / weights.sum(1, keepdim=True)).float()
    return (w[..., None] * answers.float()).sum(1)


def guess_float32_inside(answers, weights):   # float32 inside, cast back: right only to float32 precision
    w = (weights / weights.sum(1, keepdim=True)).float()
    return (w[..., None] * answers.float()).sum(1).to(answers.dtype)


def guess_in_place(answers, weights):
    weights /= weights.sum(1, keepdim=True)
    return (weights[..., None] * answers).sum(1)


# ----------------------------------------------------------------------------- gaussian_nll

C = 0.5 * math.log(2 * math.pi)


def nll_item(mu, log_sigma, x):
    return (0.5 * ((x - mu) / log_sigma.exp()) ** 2 + log_sigma + C).mean().item()


WRONG = {
    "limits.round_to_bits": [
        (round_float32, "expected torch.float64"),
        (round_cpu, ("another device", "returned a tensor on cpu")),
        (round_in_place, "changed its input `latents` in place"),
    ],
    "limits.mse_best_guess": [
        (guess_over_dims, "expected shape (4, 5)"),
        (guess_float32, "expected torch.float64"),
        (guess_in_place, "changed its input `weights` in place"),
        (guess_float32_inside, "only to float32 precision"),
    ],
    "limits.gaussian_nll": [
        (nll_item, "did you call .item()"),
    ],
}
WRONG_ANSWERS = {name: [fn for fn, _ in pairs] for name, pairs in WRONG.items()}


def round_by_bucketize(latents, bits):
    L = 2 ** bits
    levels = N01.icdf((torch.arange(L, dtype=torch.float64) + 0.5) / L)
    edges = (levels[1:] + levels[:-1]) / 2                                   # midpoints between levels
    idx = torch.bucketize(latents.detach().double().cpu(), edges)
    return levels[idx].to(dtype=latents.dtype, device=latents.device)


def guess_by_einsum(answers, weights):
    return torch.einsum("bk,bkd->bd", weights, answers) / weights.sum(1)[:, None]


def nll_with_distributions(mu, log_sigma, x):
    return -torch.distributions.Normal(mu, log_sigma.exp()).log_prob(x).mean()


CORRECT_ANSWERS = {
    "limits.round_to_bits": [round_by_bucketize],
    "limits.mse_best_guess": [guess_by_einsum],
    "limits.gaussian_nll": [nll_with_distributions],
}
