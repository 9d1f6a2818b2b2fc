"""Notebook 10's exercises (MeanFlow): each known mistake (Exercise.mistakes, in
course_lib/course/exercises/meanflow.py) is caught with its own message and each correct alternative
passes (tests/mistakes.py); the wrong answers below are not named mistakes but kinds the checks must
catch (no stop-gradient, no gradient, a shape, a device, a dtype, a float, an input changed in place,
a step too few); the correct ones, written otherwise than the reference, pass. tests/test_homework.py
runs WRONG and CORRECT_ANSWERS."""
import torch

from course_lib.course.exercises import meanflow as topic
from tests.mistakes import known_mistake_tests

test_known_mistake_named, test_correct_alternative_passes = known_mistake_tests(topic)


# ----------------------------------------------------------------------------- mf_target

def _jvp(u, z, a, b, tz, ta, tb):
    return torch.func.jvp(u, (z, a, b), (tz, ta, tb))


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

def loss_target_with_gradient(u_pred, u_tgt, p=1.0, c=1e-3):
    d2 = (u_pred - u_tgt).pow(2).sum(1)
    return (d2 / (d2.detach() + c).pow(p)).mean()


def loss_item(u_pred, u_tgt, p=1.0, c=1e-3):
    d2 = (u_pred - u_tgt.detach()).pow(2).sum(1)
    return (d2 / (d2.detach() + c).pow(p)).mean().item()


# ----------------------------------------------------------------------------- mf_sample

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


def sample_float32_times(u, x0, steps):   # torch.full without dtype: float32 times on float64 points
    z = x0
    for k in range(steps):
        a = torch.full((z.shape[0],), k / steps, device=z.device)
        b = torch.full((z.shape[0],), (k + 1) / steps, device=z.device)
        z = z + (b - a).to(z.dtype)[:, None] * u(z, a, b)
    return z


def sample_one_time(u, x0, steps):        # one time for the whole batch, shape (1,): it broadcasts
    z = x0
    for k in range(steps):
        a = torch.full((1,), k / steps, dtype=z.dtype, device=z.device)
        b = torch.full((1,), (k + 1) / steps, dtype=z.dtype, device=z.device)
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
        (target_not_detached, "stop-gradient"),
        (target_no_grad, "no gradient to the network's parameters"),
        (target_unbroadcast, ("trailing axis", "expected shape")),
        (target_cpu_ones, ("made on another device", "returned a tensor on cpu")),
    ],
    "meanflow.adaptive_loss": [
        (loss_target_with_gradient, "gradient with respect to u_tgt"),
        (loss_item, ("0-d torch.Tensor", ".item()")),
    ],
    "meanflow.mf_sample": [
        (sample_in_place, "in place"),
        (sample_cpu_times, ("made on another device", "returned a tensor on cpu")),
        (sample_off_by_one, ("network evaluations", "expected")),
        (sample_float32_times, "u was called with a of dtype torch.float32 while z is torch.float64"),
        (sample_one_time, "u was called with a of shape (1,)"),
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
