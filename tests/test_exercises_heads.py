"""Wrong and correct answers to notebook 09's exercises (generation heads): each wrong one is caught
with a message that names its mistake; each correct one, written otherwise than the reference,
passes. tests/test_homework.py runs them."""
import torch


# ----------------------------------------------------------------------------- flow_head_loss

def _parts(z, x, t, interleave=False):
    m = t.shape[0] // x.shape[0]
    rep = (lambda a: a.repeat_interleave(m, 0)) if interleave else (lambda a: a.repeat(m, 1))
    return rep(x), rep(z), t[:, None]


def fm_flipped_time(velocity, z, x, x0, t):
    x1, zz, tt = _parts(z, x, t)
    return (velocity(tt * x0 + (1 - tt) * x1, t, zz) - (x1 - x0)).pow(2).mean()


def fm_sd3_convention(velocity, z, x, x0, t):
    x1, zz, tt = _parts(z, x, t)
    return (velocity(tt * x0 + (1 - tt) * x1, t, zz) - (x0 - x1)).pow(2).mean()


def fm_target_sign(velocity, z, x, x0, t):
    x1, zz, tt = _parts(z, x, t)
    return (velocity((1 - tt) * x0 + tt * x1, t, zz) - (x0 - x1)).pow(2).mean()


def fm_target_is_data(velocity, z, x, x0, t):
    x1, zz, tt = _parts(z, x, t)
    return (velocity((1 - tt) * x0 + tt * x1, t, zz) - x1).pow(2).mean()


def fm_sum(velocity, z, x, x0, t):
    x1, zz, tt = _parts(z, x, t)
    return (velocity((1 - tt) * x0 + tt * x1, t, zz) - (x1 - x0)).pow(2).sum()


def fm_sum_over_dims(velocity, z, x, x0, t):
    x1, zz, tt = _parts(z, x, t)
    return (velocity((1 - tt) * x0 + tt * x1, t, zz) - (x1 - x0)).pow(2).sum(1).mean()


def fm_interleave(velocity, z, x, x0, t):
    x1, zz, tt = _parts(z, x, t, interleave=True)
    return (velocity((1 - tt) * x0 + tt * x1, t, zz) - (x1 - x0)).pow(2).mean()


def fm_fixed_four(velocity, z, x, x0, t):
    x1, zz, tt = x.repeat(4, 1), z.repeat(4, 1), t[:, None]
    return (velocity((1 - tt) * x0 + tt * x1, t, zz) - (x1 - x0)).pow(2).mean()


def fm_detached_z(velocity, z, x, x0, t):
    x1, zz, tt = _parts(z.detach(), x, t)
    return (velocity((1 - tt) * x0 + tt * x1, t, zz) - (x1 - x0)).pow(2).mean()


def fm_item(velocity, z, x, x0, t):
    x1, zz, tt = _parts(z, x, t)
    return (velocity((1 - tt) * x0 + tt * x1, t, zz) - (x1 - x0)).pow(2).mean().item()


def fm_in_place(velocity, z, x, x0, t):
    x1, zz, tt = _parts(z, x, t)
    x0.mul_(1 - tt)
    return (velocity(x0 + tt * x1, t, zz) - (x1 - x0 / (1 - tt))).pow(2).mean()


# ----------------------------------------------------------------------------- energy_score

def _n(a):
    return torch.linalg.vector_norm(a, dim=-1)


def es_no_repulsion(x1, x2, y):
    return (_n(x1 - y) + _n(x2 - y)).mean()


def es_plus_spread(x1, x2, y):
    return (_n(x1 - y) + _n(x2 - y) + _n(x1 - x2)).mean()


def es_squared(x1, x2, y):
    return ((x1 - y).pow(2).sum(-1) + (x2 - y).pow(2).sum(-1) - (x1 - x2).pow(2).sum(-1)).mean()


def es_half_spread(x1, x2, y):
    return (_n(x1 - y) + _n(x2 - y) - 0.5 * _n(x1 - x2)).mean()


def es_sum(x1, x2, y):
    return (_n(x1 - y) + _n(x2 - y) - _n(x1 - x2)).sum()


def es_norm_over_batch(x1, x2, y):
    n = lambda a: torch.linalg.vector_norm(a, dim=0)                     # noqa: E731
    return (n(x1 - y).sum() + n(x2 - y).sum() - n(x1 - x2).sum()) / x1.shape[0]


def es_one_sample_twice(x1, x2, y):
    return (2 * _n(x1 - y) - _n(x1 - x2)).mean()


def es_detached_second(x1, x2, y):
    x2 = x2.detach()
    return (_n(x1 - y) + _n(x2 - y) - _n(x1 - x2)).mean()


def es_item(x1, x2, y):
    return (_n(x1 - y) + _n(x2 - y) - _n(x1 - x2)).mean().item()


def es_cpu_accumulator(x1, x2, y):
    per_row = torch.zeros(x1.shape[0])                                  # made on the CPU
    return (per_row + _n(x1 - y) + _n(x2 - y) - _n(x1 - x2)).mean()


WRONG = {
    "heads.flow_head_loss": [
        (fm_flipped_time, "t = 0 is noise"),
        (fm_sd3_convention, "other convention"),
        (fm_target_sign, "not x0 - x"),
        (fm_target_is_data, "not the token x itself"),
        (fm_sum, ("that is a sum", "times the expected")),
        (fm_sum_over_dims, ("sums over the D dimensions", "times the expected")),
        (fm_interleave, "repeat_interleave"),
        (fm_fixed_four, ("raised", "expected shape")),
        (fm_detached_z, "gradient with respect to z"),
        (fm_item, "did you call .item()"),
        (fm_in_place, "in place"),
    ],
    "heads.energy_score": [
        (es_no_repulsion, "third term is missing"),
        (es_plus_spread, "SUBTRACTED"),
        (es_squared, "not their squares"),
        (es_half_spread, "weight 1"),
        (es_sum, ("sum over the rows", "times the expected")),
        (es_norm_over_batch, "not over the batch"),
        (es_one_sample_twice, "use both samples"),
        (es_detached_second, "gradient with respect to x2"),
        (es_item, "did you call .item()"),
        (es_cpu_accumulator, ("another device", "on cpu")),
    ],
}
WRONG_ANSWERS = {name: [fn for fn, _ in pairs] for name, pairs in WRONG.items()}


def fm_by_hand(velocity, z, x, x0, t):
    n, d = x.shape
    m = len(t) // n
    rows = [velocity((1 - t[k * n:(k + 1) * n, None]) * x0[k * n:(k + 1) * n] + t[k * n:(k + 1) * n, None] * x,
                     t[k * n:(k + 1) * n], z) - (x - x0[k * n:(k + 1) * n]) for k in range(m)]
    return torch.cat(rows).square().sum() / (m * n * d)


def es_by_hand(x1, x2, y):
    d = lambda a, b: ((a - b) ** 2).sum(dim=1).sqrt()                    # noqa: E731
    return torch.mean(d(x1, y) + d(x2, y) - d(x1, x2))


CORRECT_ANSWERS = {
    "heads.flow_head_loss": [fm_by_hand],
    "heads.energy_score": [es_by_hand],
}
