"""Wrong and correct answers to notebook 10's exercises (MeanFlow): each wrong one is caught with a
message that names its mistake; each correct one, written otherwise than the reference, passes.
tests/test_homework.py runs them."""
import torch


# ----------------------------------------------------------------------------- mf_target

def _jvp(u, z, a, b, tz, ta, tb):
    return torch.func.jvp(u, (z, a, b), (tz, ta, tb))


def target_swapped_tangent(u, z, a, b, v):
    u_pred, du = _jvp(u, z, a, b, v, torch.zeros_like(a), torch.ones_like(b))
    return u_pred, (v + (b - a)[:, None] * du).detach()


def target_no_v_tangent(u, z, a, b, v):
    u_pred, du = _jvp(u, z, a, b, torch.zeros_like(z), torch.ones_like(a), torch.zeros_like(b))
    return u_pred, (v + (b - a)[:, None] * du).detach()


def target_paper_sign(u, z, a, b, v):
    u_pred, du = _jvp(u, z, a, b, v, torch.ones_like(a), torch.zeros_like(b))
    return u_pred, (v - (b - a)[:, None] * du).detach()


def target_no_interval(u, z, a, b, v):
    u_pred, du = _jvp(u, z, a, b, v, torch.ones_like(a), torch.zeros_like(b))
    return u_pred, (v + du).detach()


def target_not_detached(u, z, a, b, v):
    u_pred, du = _jvp(u, z, a, b, v, torch.ones_like(a), torch.zeros_like(b))
    return u_pred, v + (b - a)[:, None] * du


def target_no_grad(u, z, a, b, v):
    with torch.no_grad():
        u_pred, du = _jvp(u, z, a, b, v, torch.ones_like(a), torch.zeros_like(b))
    return u_pred, v + (b - a)[:, None] * du


def target_unbroadcast(u, z, a, b, v):
    u_pred, du = _jvp(u, z, a, b, v, torch.ones_like(a), torch.zeros_like(b))
    return u_pred, (v + (b - a) * du).detach()


def target_cpu_ones(u, z, a, b, v):
    ones = torch.ones(a.shape[0], dtype=a.dtype)                             # made on the CPU
    u_pred, du = _jvp(u, z, a, b, v, ones, torch.zeros_like(b))
    return u_pred, (v + (b - a)[:, None] * du).detach()


# ----------------------------------------------------------------------------- adaptive_loss

def loss_mean_over_dims(u_pred, u_tgt, p=1.0, c=1e-3):
    d2 = (u_pred - u_tgt.detach()).pow(2).mean(1)
    return (d2 / (d2.detach() + c).pow(p)).mean()


def loss_weight_with_gradient(u_pred, u_tgt, p=1.0, c=1e-3):
    d2 = (u_pred - u_tgt.detach()).pow(2).sum(1)
    return (d2 / (d2 + c).pow(p)).mean()


def loss_target_with_gradient(u_pred, u_tgt, p=1.0, c=1e-3):
    d2 = (u_pred - u_tgt).pow(2).sum(1)
    return (d2 / (d2.detach() + c).pow(p)).mean()


def loss_power_one(u_pred, u_tgt, p=1.0, c=1e-3):
    d2 = (u_pred - u_tgt.detach()).pow(2).sum(1)
    return (d2 / (d2.detach() + c)).mean()


def loss_no_c(u_pred, u_tgt, p=1.0, c=1e-3):
    d2 = (u_pred - u_tgt.detach()).pow(2).sum(1)
    return (d2 / d2.detach().pow(p)).mean()


def loss_summed_over_batch(u_pred, u_tgt, p=1.0, c=1e-3):
    d2 = (u_pred - u_tgt.detach()).pow(2).sum(1)
    return (d2 / (d2.detach() + c).pow(p)).sum()


def loss_item(u_pred, u_tgt, p=1.0, c=1e-3):
    d2 = (u_pred - u_tgt.detach()).pow(2).sum(1)
    return (d2 / (d2.detach() + c).pow(p)).mean().item()


def loss_plain_l2(u_pred, u_tgt, p=1.0, c=1e-3):
    return (u_pred - u_tgt.detach()).pow(2).sum(1).mean()


# ----------------------------------------------------------------------------- mf_sample

def _grid_sample(u, x0, steps, rule):
    z = x0
    for k in range(steps):
        ta, tb = rule(k, steps)
        a = torch.full((z.shape[0],), ta, dtype=z.dtype, device=z.device)
        b = torch.full((z.shape[0],), tb, dtype=z.dtype, device=z.device)
        z = z + (tb - ta) * u(z, a, b)
    return z


def sample_anchor_at_b(u, x0, steps):
    return _grid_sample(u, x0, steps, lambda k, s: ((k + 1) / s, k / s))


def sample_backwards(u, x0, steps):
    return _grid_sample(u, x0, steps, lambda k, s: (1 - k / s, 1 - (k + 1) / s))


def sample_instantaneous(u, x0, steps):
    z = x0
    for k in range(steps):
        a = torch.full((z.shape[0],), k / steps, dtype=z.dtype)
        z = z + u(z, a, a) / steps
    return z


def sample_whole_interval(u, x0, steps):
    z = x0
    for k in range(steps):
        a = torch.zeros(z.shape[0], dtype=z.dtype)
        b = torch.ones(z.shape[0], dtype=z.dtype)
        z = z + u(z, a, b) / steps
    return z


def sample_no_step_length(u, x0, steps):
    z = x0
    for k in range(steps):
        a = torch.full((z.shape[0],), k / steps, dtype=z.dtype)
        b = torch.full((z.shape[0],), (k + 1) / steps, dtype=z.dtype)
        z = z + u(z, a, b)
    return z


def sample_in_place(u, x0, steps):
    for k in range(steps):
        a = torch.full((x0.shape[0],), k / steps, dtype=x0.dtype)
        b = torch.full((x0.shape[0],), (k + 1) / steps, dtype=x0.dtype)
        x0 += (1 / steps) * u(x0, a, b)
    return x0


def sample_cpu_times(u, x0, steps):
    z = x0
    for k in range(steps):
        a = torch.full((z.shape[0],), k / steps, dtype=z.dtype)               # on the CPU
        b = torch.full((z.shape[0],), (k + 1) / steps, dtype=z.dtype)
        z = z + (1 / steps) * u(z, a, b)
    return z


def sample_off_by_one(u, x0, steps):
    z = x0
    for k in range(steps - 1):
        a = torch.full((z.shape[0],), k / steps, dtype=z.dtype, device=z.device)
        b = torch.full((z.shape[0],), (k + 1) / steps, dtype=z.dtype, device=z.device)
        z = z + (1 / steps) * u(z, a, b)
    return z


WRONG = {
    "meanflow.mf_target": [
        (target_swapped_tangent, "tangents are swapped"),
        (target_no_v_tangent, "tangent of z is missing"),
        (target_paper_sign, "the paper's form"),
        (target_no_interval, "factor (b - a)"),
        (target_not_detached, "stop-gradient"),
        (target_no_grad, "no gradient to the network's parameters"),
        (target_unbroadcast, ("trailing axis", "expected shape")),
        (target_cpu_ones, ("made on another device", "returned a tensor on cpu")),
    ],
    "meanflow.adaptive_loss": [
        (loss_mean_over_dims, "SUM of squares"),
        (loss_weight_with_gradient, "carries no gradient"),
        (loss_target_with_gradient, "gradient with respect to u_tgt"),
        (loss_power_one, "power is p"),
        (loss_no_c, "constant c"),
        (loss_summed_over_batch, ("average the weighted errors", "a sum where a mean")),
        (loss_item, ("0-d torch.Tensor", ".item()")),
        (loss_plain_l2, "adaptive weight"),
    ],
    "meanflow.mf_sample": [
        (sample_anchor_at_b, "anchored at the wrong end"),
        (sample_backwards, "from noise (t = 0) to data"),
        (sample_instantaneous, "instantaneous"),
        (sample_whole_interval, "its own interval"),
        (sample_no_step_length, "step's length"),
        (sample_in_place, "in place"),
        (sample_cpu_times, ("made on another device", "returned a tensor on cpu")),
        (sample_off_by_one, ("network evaluations", "expected")),
    ],
}
WRONG_ANSWERS = {name: [fn for fn, _ in pairs] for name, pairs in WRONG.items()}


def target_with_forward_ad(u, z, a, b, v):
    import torch.autograd.forward_ad as fwAD
    with fwAD.dual_level():
        out = u(fwAD.make_dual(z, v), fwAD.make_dual(a, torch.ones_like(a)), b)
        u_pred, du = fwAD.unpack_dual(out)
    return u_pred, (v + (b - a).unsqueeze(1) * du).detach()


def loss_by_hand(u_pred, u_tgt, p=1.0, c=1e-3):
    err = u_pred - u_tgt.detach()
    d2 = (err * err).sum(dim=-1)
    w = torch.pow(d2.detach() + c, p)
    return torch.mean(d2 / w)


def sample_with_linspace(u, x0, steps):
    ts = torch.linspace(0, 1, steps + 1, dtype=x0.dtype, device=x0.device)
    z = x0.clone()
    for t0, t1 in zip(ts[:-1], ts[1:]):
        z = z + (t1 - t0) * u(z, t0.expand(z.shape[0]), t1.expand(z.shape[0]))
    return z


CORRECT_ANSWERS = {
    "meanflow.mf_target": [target_with_forward_ad],
    "meanflow.adaptive_loss": [loss_by_hand],
    "meanflow.mf_sample": [sample_with_linspace],
}
