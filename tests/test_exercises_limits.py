"""Wrong and correct answers to notebook 07's exercises (the limit of tokens and the MSE trap): each
wrong one is caught with a message that names its mistake; each correct one, written otherwise than
the reference, passes. tests/test_homework.py runs them."""
import math

import torch

N01 = torch.distributions.Normal(0.0, 1.0)


# ----------------------------------------------------------------------------- round_to_bits

def _nearest(x, levels):
    return levels[(x[..., None] - levels).abs().argmin(-1)]


def round_edges(latents, bits):                       # quantiles k / 2^b: the first level is -inf
    levels = N01.icdf(torch.arange(2 ** bits) / 2 ** bits).to(latents)
    return _nearest(latents, levels)


def round_2b_levels(latents, bits):                   # 2 * bits levels instead of 2 ** bits
    levels = N01.icdf((torch.arange(2 * bits) + 0.5) / (2 * bits)).to(latents)
    return _nearest(latents, levels)


def round_uniform(latents, bits):                     # evenly spaced levels in [-1, 1]
    levels = torch.linspace(-1, 1, 2 ** bits).to(latents)
    return _nearest(latents, levels)


def round_down(latents, bits):                        # the level below, not the nearest
    levels = N01.icdf((torch.arange(2 ** bits) + 0.5) / 2 ** bits).to(latents)
    idx = (torch.bucketize(latents, levels) - 1).clamp(0, 2 ** bits - 1)
    return levels[idx]


def round_index(latents, bits):                       # the index of the level, not its value
    levels = N01.icdf((torch.arange(2 ** bits) + 0.5) / 2 ** bits).to(latents)
    return (latents[..., None] - levels).abs().argmin(-1)


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

def guess_plain_mean(answers, weights):
    return answers.mean(1)


def guess_unnormalised(answers, weights):
    return (weights[..., None] * answers).sum(1)


def guess_batch_normalised(answers, weights):
    return (weights[..., None] * answers).sum(1) / weights.sum()


def guess_most_likely(answers, weights):
    return answers[torch.arange(len(answers)), weights.argmax(1)]


def guess_mean_of_weighted(answers, weights):
    w = weights / weights.sum(1, keepdim=True)
    return (w[..., None] * answers).mean(1)


def guess_over_dims(answers, weights):                # averages the D numbers of each answer
    w = weights / weights.sum(1, keepdim=True)
    return (w * answers.mean(2))


def guess_float32(answers, weights):
    w = (weights / weights.sum(1, keepdim=True)).float()
    return (w[..., None] * answers.float()).sum(1)


def guess_in_place(answers, weights):
    weights /= weights.sum(1, keepdim=True)
    return (weights[..., None] * answers).sum(1)


# ----------------------------------------------------------------------------- gaussian_nll

C = 0.5 * math.log(2 * math.pi)


def nll_no_constant(mu, log_sigma, x):
    return (0.5 * ((x - mu) / log_sigma.exp()) ** 2 + log_sigma).mean()


def nll_no_half(mu, log_sigma, x):
    return (((x - mu) / log_sigma.exp()) ** 2 + log_sigma + C).mean()


def nll_sigma_not_squared(mu, log_sigma, x):
    return (0.5 * (x - mu) ** 2 / log_sigma.exp() + log_sigma + C).mean()


def nll_no_log_sigma(mu, log_sigma, x):
    return (0.5 * ((x - mu) / log_sigma.exp()) ** 2 + C).mean()


def nll_sum(mu, log_sigma, x):
    return (0.5 * ((x - mu) / log_sigma.exp()) ** 2 + log_sigma + C).sum()


def nll_sign(mu, log_sigma, x):
    return -(0.5 * ((x - mu) / log_sigma.exp()) ** 2 + log_sigma + C).mean()


def nll_item(mu, log_sigma, x):
    return (0.5 * ((x - mu) / log_sigma.exp()) ** 2 + log_sigma + C).mean().item()


def nll_detached_sigma(mu, log_sigma, x):
    ls = log_sigma.detach()
    return (0.5 * ((x - mu) / ls.exp()) ** 2 + ls + C).mean()


WRONG = {
    "limits.round_to_bits": [
        (round_edges, "quantile of 0, -inf"),
        (round_2b_levels, "2 ** bits"),
        (round_uniform, "evenly spaced levels"),
        (round_down, "NEAREST level"),
        (round_index, "return the level's value"),
        (round_float32, "expected torch.float64"),
        (round_cpu, ("another device", "returned a tensor on cpu")),
        (round_in_place, "changed its input `latents` in place"),
    ],
    "limits.mse_best_guess": [
        (guess_plain_mean, "weigh each by its probability"),
        (guess_unnormalised, "not normalised"),
        (guess_batch_normalised, "not over the whole batch"),
        (guess_most_likely, "the weighted MEAN"),
        (guess_mean_of_weighted, "SUM over the K answers"),
        (guess_over_dims, "expected shape (4, 5)"),
        (guess_float32, "expected torch.float64"),
        (guess_in_place, "changed its input `weights` in place"),
    ],
    "limits.gaussian_nll": [
        (nll_no_constant, "log(2 pi) / 2 is missing"),
        (nll_no_half, "a factor 1/2 is missing"),
        (nll_sigma_not_squared, "sigma SQUARED"),
        (nll_no_log_sigma, "the log sigma term is missing"),
        (nll_sum, "take the mean"),
        (nll_sign, "NEGATIVE"),
        (nll_item, "did you call .item()"),
        (nll_detached_sigma, "gradient with respect to log_sigma"),
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
