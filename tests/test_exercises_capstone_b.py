"""Notebook 11's projects C (TarFlow) and D (FlowAR): wrong answers that are not named mistakes but
kinds the checks must catch (an input changed in place, no gradient, a logdet over the batch, a
tensor made on the CPU or in float32, a map left at full size, a missing output), and correct
answers written otherwise than the reference. The named mistakes (Exercise.mistakes, in
course_lib/course/exercises/capstone_tarflow.py and capstone_flowar.py) are run by
tests/test_exercises_capstone.py; tests/test_homework.py runs WRONG and CORRECT_ANSWERS."""
import torch
import torch.nn.functional as F


# ----------------------------------------------------------------------------- ar_affine_forward

def _shift(h):
    return torch.cat([torch.zeros_like(h[:, :1]), h[:, :-1]], dim=1)


def affine_in_place(x, params):
    a, b = params(x)
    a, b = _shift(a), _shift(b)
    x.sub_(b).mul_(torch.exp(-a))                              # overwrites the caller's x
    return x, -a.sum(dim=(1, 2))


def affine_no_grad(x, params):
    with torch.no_grad():
        a, b = params(x)
    a, b = _shift(a), _shift(b)
    return (x - b) * torch.exp(-a), -a.sum(dim=(1, 2))


def affine_logdet_over_batch(x, params):
    a, b = params(x)
    a, b = _shift(a), _shift(b)
    return (x - b) * torch.exp(-a), -a.sum()                   # one number for the whole batch


def affine_logdet_keepdim(x, params):
    a, b = params(x)
    a, b = _shift(a), _shift(b)
    return (x - b) * torch.exp(-a), -a.sum(dim=(1, 2), keepdim=True)     # (N, 1, 1)


def affine_cpu_zeros(x, params):
    a, b = params(x)
    zero = torch.zeros(x.shape[0], 1, x.shape[2], dtype=x.dtype)         # made on the CPU
    a, b = torch.cat([zero, a[:, :-1]], 1), torch.cat([zero, b[:, :-1]], 1)
    return (x - b) * torch.exp(-a), -a.sum(dim=(1, 2))


def affine_logdet_detached(x, params):
    a, b = params(x)
    a, b = _shift(a), _shift(b)
    return (x - b) * torch.exp(-a), -a.detach().sum(dim=(1, 2))


def affine_z_only(x, params):
    a, b = params(x)
    a, b = _shift(a), _shift(b)
    return (x - b) * torch.exp(-a)


# ----------------------------------------------------------------------------- flowar_scale_pair

def _cond(x, scales, k):
    H = x.shape[-1]
    prev = F.interpolate(x, size=(scales[k - 1],) * 2, mode="area")
    return F.interpolate(F.interpolate(prev, size=(H, H), mode="bicubic"), size=(scales[k],) * 2, mode="area")


def pair_in_place(x, scales, k, t, noise):
    x_k = F.interpolate(x, size=(scales[k],) * 2, mode="area")
    cond = torch.zeros_like(x_k) if k == 0 else _cond(x, scales, k)
    tt = t[:, None, None, None]
    v = x_k - noise
    x_t = noise.mul_(1 - tt).add_(tt * x_k)                    # overwrites the caller's noise
    return x_t, v, cond


def pair_cpu_zeros(x, scales, k, t, noise):
    x_k = F.interpolate(x, size=(scales[k],) * 2, mode="area")
    cond = torch.zeros(x_k.shape, dtype=x.dtype) if k == 0 else _cond(x, scales, k)   # on the CPU
    tt = t[:, None, None, None]
    return (1 - tt) * noise + tt * x_k, x_k - noise, cond


def pair_float32_zeros(x, scales, k, t, noise):
    x_k = F.interpolate(x, size=(scales[k],) * 2, mode="area")
    cond = torch.zeros(x_k.shape, device=x.device) if k == 0 else _cond(x, scales, k)  # float32 always
    tt = t[:, None, None, None]
    return (1 - tt) * noise + tt * x_k, x_k - noise, cond


def pair_full_size_condition(x, scales, k, t, noise):
    H = x.shape[-1]
    x_k = F.interpolate(x, size=(scales[k],) * 2, mode="area")
    prev = F.interpolate(x, size=(scales[max(k - 1, 0)],) * 2, mode="area")
    cond = F.interpolate(prev, size=(H, H), mode="bicubic")   # left at the full size
    tt = t[:, None, None, None]
    return (1 - tt) * noise + tt * x_k, x_k - noise, cond


def pair_align_corners(x, scales, k, t, noise):
    H = x.shape[-1]
    x_k = F.interpolate(x, size=(scales[k],) * 2, mode="area")
    if k == 0:
        cond = torch.zeros_like(x_k)
    else:
        prev = F.interpolate(x, size=(scales[k - 1],) * 2, mode="area")
        up = F.interpolate(prev, size=(H, H), mode="bicubic", align_corners=True)
        cond = F.interpolate(up, size=(scales[k],) * 2, mode="area")
    tt = t[:, None, None, None]
    return (1 - tt) * noise + tt * x_k, x_k - noise, cond


def pair_two_outputs(x, scales, k, t, noise):
    x_k = F.interpolate(x, size=(scales[k],) * 2, mode="area")
    tt = t[:, None, None, None]
    return (1 - tt) * noise + tt * x_k, x_k - noise


WRONG = {
    "capstone.ar_affine_forward": [
        (affine_in_place, "in place"),
        (affine_no_grad, "no gradient to the network's parameters"),
        (affine_logdet_over_batch, "one number per sample"),
        (affine_logdet_keepdim, "one number per sample"),
        (affine_cpu_zeros, ("made on another device", "returned a tensor on cpu")),
        (affine_logdet_detached, "logdet has no gradient"),
        (affine_z_only, "return a tuple (z, logdet)"),
    ],
    "capstone.flowar_scale_pair": [
        (pair_in_place, "in place"),
        (pair_cpu_zeros, ("made on another device", "returned a tensor on cpu")),
        (pair_float32_zeros, "returned dtype torch.float32; expected torch.float64"),
        (pair_full_size_condition, "cond should have shape"),
        (pair_align_corners, "cond: value at"),
        (pair_two_outputs, "return a tuple (x_t, v, cond)"),
    ],
}
WRONG_ANSWERS = {name: [fn for fn, _ in pairs] for name, pairs in WRONG.items()}


def affine_with_pad(x, params):
    a, b = params(x)
    a = F.pad(a, (0, 0, 1, 0))[:, :-1]                         # one zero token in front, the last dropped
    b = F.pad(b, (0, 0, 1, 0))[:, :-1]
    return (x - b) / torch.exp(a), -a.flatten(1).sum(1)


def affine_token_loop(x, params):
    a, b = params(x)
    zs, logdet = [x[:, :1]], torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    for i in range(1, x.shape[1]):                             # token i from token i - 1's outputs
        zs.append((x[:, i:i + 1] - b[:, i - 1:i]) * torch.exp(-a[:, i - 1:i]))
        logdet = logdet - a[:, i - 1].sum(-1)
    return torch.cat(zs, 1), logdet


def pair_with_pooling(x, scales, k, t, noise):
    s, H = scales[k], x.shape[-1]
    x_k = F.adaptive_avg_pool2d(x, s)                          # area averaging
    if k == 0:
        cond = x_k.new_zeros(x_k.shape)
    else:
        prev = F.adaptive_avg_pool2d(x, scales[k - 1])
        cond = F.adaptive_avg_pool2d(F.interpolate(prev, size=(H, H), mode="bicubic", align_corners=False), s)
    x_t = torch.lerp(noise, x_k, t.view(-1, 1, 1, 1))          # noise + t (x_k - noise)
    return x_t, x_k - noise, cond


CORRECT_ANSWERS = {
    "capstone.ar_affine_forward": [affine_with_pad, affine_token_loop],
    "capstone.flowar_scale_pair": [pair_with_pooling],
}
