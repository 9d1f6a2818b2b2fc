"""Exercises of notebook 10 (MeanFlow); see course_lib.course.homework for the mechanism.

* meanflow.mf_target: the MeanFlow target by one forward-mode JVP, in the course's convention;
* meanflow.adaptive_loss: the adaptively weighted loss (a sum over dimensions, a weight without gradient);
* meanflow.mf_sample: few-step sampling with the average velocity, anchored at the earlier time.

The references live in :mod:`course_lib.flow.meanflow`. Every call of the learner's function goes
through :func:`~course_lib.course.checking.call` (inputs changed in place, time limit, the reference
handed in); sizes change from call to call (one sample, one dimension, B = D), float32 and float64,
sizes up to the notebook's and beyond, and one case runs on another device (a GPU, or PyTorch's meta
device standing in for one). Each exercise lists its known mistakes once
(:class:`~course_lib.course.checking.Mistake`); a check names one only when it reproduces the learner's
values (and, for the loss, gradients) on the failing case.
"""
from __future__ import annotations

import torch

from course_lib.flow import meanflow as mf
from course_lib.course.checking import (BROADCAST, Exercise, Mismatch, Mistake, call, call_hinted, device_words, expect_close, expect_loss,
                                        expect_on_another_device, expect_tensor, generator, gradients, naming,
                                        stand_in_device)


# ----------------------------------------------------------------------------- test fields

class _Field(torch.nn.Module):
    """A smooth u(z, a, b) with parameters, different derivatives in z, a and b:
    u = tanh(z W + a c + b d + e) M  (so d_a u and d_b u differ, and d_z u is a full matrix)."""

    def __init__(self, dim: int, seed: int, dtype=torch.float32):
        super().__init__()
        g = generator(seed)
        h = 8
        self.W = torch.nn.Parameter(torch.randn(dim, h, generator=g, dtype=dtype))
        self.c = torch.nn.Parameter(2 * torch.randn(h, generator=g, dtype=dtype))
        self.d = torch.nn.Parameter(-3 * torch.randn(h, generator=g, dtype=dtype))
        self.e = torch.nn.Parameter(torch.randn(h, generator=g, dtype=dtype))
        self.M = torch.nn.Parameter(torch.randn(h, dim, generator=g, dtype=dtype) / h ** 0.5)

    def forward(self, z, a, b):
        return torch.tanh(z @ self.W + a[:, None] * self.c + b[:, None] * self.d + self.e) @ self.M


def _inputs(n, dim, seed, dtype=torch.float32):
    g = generator(seed)
    z = torch.randn(n, dim, generator=g, dtype=dtype)
    a = torch.rand(n, generator=g, dtype=dtype) * 0.7
    b = a + torch.rand(n, generator=g, dtype=dtype) * (1 - a)
    v = torch.randn(n, dim, generator=g, dtype=dtype) * 2
    return z, a, b, v


# ----------------------------------------------------------------------------- mf_target

def _target(tangents=lambda z, a, v: (v, torch.ones_like(a), torch.zeros_like(a)), sign=1.0, interval=True, v_term=True):
    """mf_target with one part swapped for a known mistake's: the JVP's tangents, the sign of the
    correction, the factor (b - a), the v term."""
    def target(u, z, a, b, v):
        u_pred, du = torch.func.jvp(u, (z, a, b), tangents(z, a, v))
        h = (b - a)[:, None] if interval else 1.0
        return u_pred, ((v if v_term else 0) + sign * h * du).detach()
    return target


TARGET_MISTAKES = (
    Mistake("swapped_tangents", _target(tangents=lambda z, a, v: (v, torch.zeros_like(a), torch.ones_like(a))),
            "the tangents are swapped: the primals are (z, a, b), so the tangents are (v, 1, 0): the time that "
            "moves along the path is the anchor a, and b stays fixed"),
    Mistake("no_z_tangent", _target(tangents=lambda z, a, v: (torch.zeros_like(z), torch.ones_like(a), torch.zeros_like(a))),
            "the tangent of z is missing: d/da u is the TOTAL derivative along the path, v . d_z u + d_a u, so "
            "z's tangent is v"),
    Mistake("paper_sign", _target(sign=-1.0),
            "the sign: that is the paper's form (its anchor is the late, noisy end); with the anchor at the "
            "early end a the identity reads u = v + (b - a) du/da"),
    Mistake("no_interval", _target(interval=False), "the factor (b - a) in front of du/da is missing"),
    Mistake("no_v", _target(v_term=False), "the target is v + (b - a) du/da: the v term is missing"),
)

_BROADCAST = ("(b - a) has shape (B,): give it a trailing axis, (b - a)[:, None], so that each row is "
              "multiplied by its own interval")


def _call_target(candidate, u, z, a, b, v, case):
    out = call_hinted(candidate, u, z, a, b, v, case=case, hints={BROADCAST: _BROADCAST}, returns=("u_pred", "u_tgt"))
    for what, t in zip(("u_pred", "u_tgt"), out):
        if not isinstance(t, torch.Tensor):
            raise Mismatch(f"on {case}: {what} should be a tensor of shape {tuple(z.shape)}, got {type(t).__name__}")
        if t.shape != z.shape:
            extra = f" ({_BROADCAST})" if t.dim() == 2 and t.shape == (z.shape[0], z.shape[0]) else ""
            raise Mismatch(f"on {case}: {what} should have shape {tuple(z.shape)} like z, got {tuple(t.shape)}{extra}")
    return out


def check_mf_target(candidate):
    """(u_pred, u_tgt) with u_pred = u(z, a, b) and u_tgt = v + (b - a) (v . d_z u + d_a u): on smooth
    fields with different derivatives in z, a and b (a wrong tangent, a missing tangent on z, the
    paper's sign or a missing (b - a) each give other values and are named), B = 1..9 in D = 1..9
    (B = D too) and 5000 in 2-D (the notebook trains on batches of up to 4096), float32 and float64;
    u_pred keeps its gradient to u's parameters and u_tgt has none (stop-gradient); b = a (the target
    is v); the inputs unchanged; one case on another device."""
    cases = [(6, 2, torch.float32), (1, 3, torch.float32), (5, 5, torch.float64), (9, 1, torch.float64),
             (4, 7, torch.float32), (5000, 2, torch.float32)]
    for i, (n, d, dtype) in enumerate(cases):
        u = _Field(d, 10 + i, dtype)
        z, a, b, v = _inputs(n, d, 20 + i, dtype)
        case = f"{n} sample{'s' * (n > 1)} in {d}-D ({dtype})"
        want = mf.jvp_target(u, z, a, b, v)             # first: torch.func's warm-up outside the time limit
        got = _call_target(candidate, u, z, a, b, v, case)
        with naming(TARGET_MISTAKES, got, u, z, a, b, v):
            expect_close(got[0], want[0], f"on {case}, u_pred", hint="(u_pred is u(z, a, b) itself)")
            expect_close(got[1], want[1], f"on {case}, u_tgt")
        if not got[0].requires_grad:
            raise Mismatch(f"on {case}: u_pred has no gradient to the network's parameters (computed under "
                           f"torch.no_grad() or detached?): the loss trains through u_pred")
        if got[1].requires_grad:
            raise Mismatch(f"on {case}: u_tgt carries a gradient: the target must be a constant "
                           f"(stop-gradient, .detach()), else the loss also moves the target")
    u = _Field(3, 30)
    z, a, _, v = _inputs(5, 3, 31)
    case = "5 samples with b = a (the target must be v)"
    got = _call_target(candidate, u, z, a, a.clone(), v, case)
    expect_tensor(got[1], v, f"on {case}, u_tgt")
    args = _inputs(4, 2, 41)
    want = mf.jvp_target(_Field(2, 40), *args)
    expect_on_another_device(candidate, (_Field(2, 40).to(stand_in_device()), *args), want, "4 samples in 2-D")


# ----------------------------------------------------------------------------- adaptive_loss

def _adaptive(per_sample=lambda e2: e2.sum(1), weight=lambda d2, p, c: (d2.detach() + c).pow(p), divide=True,
              reduce=torch.mean):
    """adaptive_loss with one part swapped for a known mistake's: delta^2 per sample, the weight,
    dividing or multiplying by it, the reduction over the batch."""
    def loss(u_pred, u_tgt, p=1.0, c=1e-3):
        d2 = per_sample((u_pred - u_tgt.detach()).pow(2))                      # (B,)
        w = weight(d2, p, c)
        return reduce(d2 / w if divide else d2 * w)
    return loss


ADAPTIVE_MISTAKES = (
    Mistake("mean_over_dims", _adaptive(per_sample=lambda e2: e2.mean(1)),
            "delta^2 is the SUM of squares over the dimensions of a sample, not their mean"),
    Mistake("summed_over_batch", _adaptive(reduce=torch.sum),
            "average the weighted errors over the batch (mean), do not sum them"),
    Mistake("no_weight", _adaptive(weight=lambda d2, p, c: 1.0), "the adaptive weight 1 / (delta^2 + c)^p is missing"),
    Mistake("no_c", _adaptive(weight=lambda d2, p, c: d2.detach().pow(p)),
            "the constant c in the weight (delta^2 + c)^p is missing"),
    Mistake("power_one", _adaptive(weight=lambda d2, p, c: d2.detach() + c), "the weight's power is p, not 1"),
    Mistake("multiplied", _adaptive(divide=False), "divide by the weight (delta^2 + c)^p, do not multiply"),
    Mistake("weight_with_gradient", _adaptive(weight=lambda d2, p, c: (d2 + c).pow(p)),
            "the weight 1 / (delta^2 + c)^p carries no gradient: compute it from delta^2.detach()"),
)


def check_adaptive_loss(candidate):
    """mean over the batch of delta^2 / sg((delta^2 + c)^p), delta^2 the SUM over dimensions: a 0-d
    tensor with the reference's value and gradient with respect to u_pred (a weight that is not
    detached changes it) and no gradient into u_tgt (stop-gradient); p in {0, 0.5, 1, 0.75}, c in
    {1e-3, 0.5}; B = 1..8 and 5000 (the notebook: batches up to 4096), D = 1..5, float32 and float64;
    inputs unchanged; one case on another device. A known mistake is named only when the learner's
    value AND gradient are that mistake's."""
    cases = [(8, 3, 1.0, 1e-3, torch.float32), (5, 5, 0.5, 0.5, torch.float64), (1, 2, 0.75, 1e-3, torch.float32),
             (6, 1, 1.0, 0.5, torch.float64), (4, 4, 0.0, 1e-3, torch.float64), (5000, 2, 1.0, 1e-3, torch.float32)]
    for i, (n, d, p, c, dtype) in enumerate(cases):
        g = generator(50 + i)
        pred = torch.randn(n, d, generator=g, dtype=dtype).requires_grad_(True)
        tgt = (torch.randn(n, d, generator=g, dtype=dtype) * 0.5).requires_grad_(True)
        case = f"{n} sample{'s' * (n > 1)} in {d}-D ({dtype}), p = {p:g}, c = {c:g}"
        got = call(candidate, pred, tgt, p, c, case=case)
        tol = dict(atol=1e-10, rtol=1e-8) if dtype == torch.float64 else dict(atol=1e-6, rtol=1e-5)
        with naming(ADAPTIVE_MISTAKES, (got, gradients(got, [pred])), pred, tgt, p, c, wrt=(0,)):
            expect_loss(got, mf.adaptive_loss(pred, tgt, p, c), f"on {case}, the loss", {"u_pred": pred}, **tol)
        (g_tgt,) = torch.autograd.grad(got, [tgt], retain_graph=True, allow_unused=True)
        if g_tgt is not None and g_tgt.abs().max() > 0:
            raise Mismatch(f"on {case}: the loss has a gradient with respect to u_tgt: the target is a constant "
                           f"(stop-gradient: u_tgt.detach())")
    g = generator(60)
    args = (torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g), 1.0, 1e-3)
    expect_on_another_device(candidate, args, mf.adaptive_loss(*args), "4 samples in 3-D")


# ----------------------------------------------------------------------------- mf_sample

class _Recorder:
    """u(z, a, b) = z A + a alpha + b beta (each time weighted differently), recording the (a, b) of
    every call: a wrong grid or a wrong anchor shows in the values. It refuses times that are not (N,)
    tensors in z's dtype on z's device, naming the mistake (a float32 time on float64 points is one)."""

    def __init__(self, dim, seed, dtype, case=""):
        g = generator(seed)
        self.A = torch.randn(dim, dim, generator=g, dtype=dtype) * 0.4
        self.alpha = torch.randn(dim, generator=g, dtype=dtype)
        self.beta = 3 * torch.randn(dim, generator=g, dtype=dtype)
        self.calls, self.where = [], f"on {case}: " if case else ""

    def __call__(self, z, a, b):
        for name, t in (("a", a), ("b", b)):
            how = f"a tensor of shape ({z.shape[0]},) in z's dtype {z.dtype} on z's device, one time per sample"
            if not isinstance(t, torch.Tensor) or t.shape != (z.shape[0],):
                got = f"shape {tuple(t.shape)}" if isinstance(t, torch.Tensor) else f"type {type(t).__name__}"
                raise Mismatch(f"{self.where}u was called with {name} of {got}; expected {how}")
            if t.device.type != z.device.type:
                raise Mismatch(f"{self.where}u was called with {name} on {t.device} while z is on "
                               f"{device_words(z.device)}: the times were made on another device; use device=z.device")
            if t.dtype != z.dtype:
                raise Mismatch(f"{self.where}u was called with {name} of dtype {t.dtype} while z is {z.dtype}: make "
                               f"the times with dtype=z.dtype (a {t.dtype} time rounds k / steps at {t.dtype}'s precision)")
        if a.device.type != "meta":
            self.calls.append((float(a.flatten()[0]), float(b.flatten()[0])))
        return z @ self.A.to(z.device) + a[:, None] * self.alpha.to(z.device) + b[:, None] * self.beta.to(z.device)


def _grid(times, length=lambda a, b, steps: b - a):
    """A sampler on the grid with one part swapped for a known mistake's: the (a, b) of step k, and
    how far each step moves along u."""
    def sample(u, x0, steps):
        z = x0
        for k in range(steps):
            ta, tb = times(k, steps)
            a, b = (torch.full((z.shape[0],), s, dtype=z.dtype, device=z.device) for s in (ta, tb))
            z = z + length(ta, tb, steps) * u(z, a, b)
        return z
    return sample


SAMPLE_MISTAKES = (
    Mistake("anchor_at_b", _grid(lambda k, s: ((k + 1) / s, k / s)),
            "anchored at the wrong end: u(z, a, b) takes the EARLIER time a first, u(z, t_k, t_{k+1}), and time "
            "runs from noise (t = 0) to data (t = 1)"),
    Mistake("backwards", _grid(lambda k, s: (1 - k / s, 1 - (k + 1) / s)),
            "time runs from noise (t = 0) to data (t = 1) in the course's convention, not from 1 to 0"),
    Mistake("instantaneous", _grid(lambda k, s: (k / s, k / s), length=lambda a, b, s: 1 / s),
            "use the average velocity over the whole step, u(z, t_k, t_{k+1}), not the instantaneous u(z, t_k, t_k)"),
    Mistake("whole_interval", _grid(lambda k, s: (0.0, 1.0), length=lambda a, b, s: 1 / s),
            "each step averages over its own interval [t_k, t_{k+1}], not over [0, 1]"),
    Mistake("no_step_length", _grid(lambda k, s: (k / s, (k + 1) / s), length=lambda a, b, s: 1.0),
            "move by (t_{k+1} - t_k) u, the step's length times the average velocity, not by u"),
)


def check_mf_sample(candidate):
    """x after ``steps`` steps z <- z + (t_{k+1} - t_k) u(z, t_k, t_{k+1}) on the grid t_k = k / steps,
    from noise (t = 0) to data (t = 1), the times (N,) tensors in z's dtype on z's device, u called
    once per step: on a field whose value depends on z, a and b differently (an anchor at the wrong
    end, time run backwards, the instantaneous velocity, one interval [0, 1] for every step, or a step
    without its length are named), steps 1, 2, 3 and 5, N = 1..6 in D = 1..4 and 20000 in 2-D (the
    notebook samples up to 16384 points), float32 and float64; x0 unchanged; one case on another device."""
    cases = [(5, 2, 2, torch.float32), (5, 2, 1, torch.float64), (1, 3, 3, torch.float32),
             (4, 4, 5, torch.float64), (6, 1, 2, torch.float32), (20000, 2, 2, torch.float32)]
    for i, (n, d, steps, dtype) in enumerate(cases):
        x0 = torch.randn(n, d, generator=generator(80 + i), dtype=dtype)
        case = f"{n} point{'s' * (n > 1)} in {d}-D ({dtype}), {steps} step{'s' * (steps > 1)}"
        u = _Recorder(d, 70 + i, dtype, case)
        got = call(candidate, u, x0, steps, case=case)
        if len(u.calls) != steps:
            raise Mismatch(f"on {case}: your function called u {len(u.calls)} times; {steps} steps are "
                           f"{steps} network evaluations (one per step)")
        with naming(SAMPLE_MISTAKES, got, _Recorder(d, 70 + i, dtype), x0, steps):
            expect_close(got, mf.sample(_Recorder(d, 70 + i, dtype), x0, steps), f"on {case}")
    u = _Recorder(2, 90, torch.float32)
    x0 = torch.randn(3, 2, generator=generator(91))
    expect_on_another_device(candidate, (u, x0, 2), mf.sample(u, x0, 2), "3 points in 2-D, 2 steps")


# the exercises of this topic, in notebook order
EXERCISES = [
    Exercise("meanflow.mf_target", reference=mf.jvp_target, checker=check_mf_target, description=check_mf_target.__doc__,
             mistakes=TARGET_MISTAKES),
    Exercise("meanflow.adaptive_loss", reference=mf.adaptive_loss, checker=check_adaptive_loss,
             description=check_adaptive_loss.__doc__, mistakes=ADAPTIVE_MISTAKES),
    Exercise("meanflow.mf_sample", reference=mf.sample, checker=check_mf_sample, description=check_mf_sample.__doc__,
             mistakes=SAMPLE_MISTAKES),
]
