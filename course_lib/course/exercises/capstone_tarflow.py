"""Project C of notebook 11 (an autoregressive flow, TarFlow): the checked first step.

* capstone.ar_affine_forward: one MAF-style block of TarFlow, data -> noise: shift the causal
  network's raw outputs right by one token, z = (x - b) exp(-a), logdet = -sum a per sample.

The reference lives in :mod:`course_lib.flow.tarflow`. Every call of the learner's function goes
through :func:`~course_lib.course.checking.call` (inputs changed in place, time limit, the reference
handed in); the sizes change from call to call (one token, one sample, up to 5 tokens of 3 numbers,
4096 points of the notebook's T = 2, D = 1), float32 and float64, and one case runs on another device
(a GPU, or PyTorch's meta device standing in for one).
"""
from __future__ import annotations

import torch

from course_lib.course.checking import (Exercise, Mismatch, Mistake, call, expect_close, expect_on_another_device,
                                        generator, naming, stand_in_device)
from course_lib.flow import tarflow


class _Causal(torch.nn.Module):
    """A causal test network: raw (a, b) for token i from tokens <= i, every token's outputs nonzero
    and different (so a missing, reversed or misplaced shift changes the values):
    h_i = mean_{j <= i} tanh(x_j W), a_i = 0.8 tanh(h_i A + p_i), b_i = h_i Bm + q_i."""

    def __init__(self, tokens: int, dim: int, seed: int, dtype=torch.float32):
        super().__init__()
        g = generator(seed)
        H = 6
        self.W = torch.nn.Parameter(torch.randn(dim, H, generator=g, dtype=dtype))
        self.A = torch.nn.Parameter(torch.randn(H, dim, generator=g, dtype=dtype))
        self.Bm = torch.nn.Parameter(torch.randn(H, dim, generator=g, dtype=dtype) * 2)
        self.p = torch.nn.Parameter(torch.randn(tokens, dim, generator=g, dtype=dtype))
        self.q = torch.nn.Parameter(torch.randn(tokens, dim, generator=g, dtype=dtype) * 2)

    def forward(self, x):
        T = x.shape[1]
        count = torch.arange(1, T + 1, device=x.device, dtype=x.dtype)[None, :, None]    # (1, T, 1)
        h = torch.tanh(x @ self.W).cumsum(1) / count                                      # (N, T, H)
        return 0.8 * torch.tanh(h @ self.A + self.p[:T]), h @ self.Bm + self.q[:T]         # (N, T, D) each


def _shift(h, where="right", dim=1):
    """h shifted by one along ``dim``: "right" (the reference), "left", or "none"."""
    if where == "none":
        return h
    zero = torch.zeros_like(h.narrow(dim, 0, 1))
    if where == "right":
        return torch.cat([zero, h.narrow(dim, 0, h.shape[dim] - 1)], dim=dim)
    return torch.cat([h.narrow(dim, 1, h.shape[dim] - 1), zero], dim=dim)


def _block(shift="right", dim=1, shift_input=False, z_rule=lambda x, a, b: (x - b) * torch.exp(-a),
           logdet=lambda a, raw: -a.sum(dim=(1, 2))):
    """ar_affine_forward with one part swapped for a known mistake's."""
    def forward(x, params):
        raw_a, raw_b = params(_shift(x) if shift_input else x)
        a, b = _shift(raw_a, shift, dim), _shift(raw_b, shift, dim)
        return z_rule(x, a, b), logdet(a, raw_a)
    return forward


MISTAKES = (
    Mistake("no_shift", _block(shift="none"),
            "the outputs are not shifted: token i then uses (a_i, b_i) computed from tokens <= i, itself "
            "included, so the flow cannot be inverted token by token; shift them right by one token, "
            "token 0 gets a = b = 0"),
    Mistake("shift_left", _block(shift="left"),
            "the shift goes the wrong way: token i must get the outputs of token i - 1 (a shift to the RIGHT, "
            "zeros in front: torch.cat([zeros_like(a[:, :1]), a[:, :-1]], dim=1)), not those of token i + 1"),
    Mistake("shift_over_batch", _block(dim=0),
            "the shift runs along the batch axis (dim 0): shift along the tokens, dim 1, so each sample "
            "keeps its own parameters"),
    Mistake("shifted_input", _block(shift="none", shift_input=True),
            "the input is shifted instead of the outputs (STARFlow does that, with a learned start token; "
            "TarFlow and this exercise shift the OUTPUTS): params(x) reads x itself, token i's raw outputs come "
            "from tokens <= i, and those outputs are shifted right by one token"),
    Mistake("exp_plus_consistent", _block(z_rule=lambda x, a, b: (x - b) * torch.exp(a), logdet=lambda a, r: a.sum(dim=(1, 2))),
            "z = (x - b) exp(+a) with logdet = +sum a is a flow too, but not TarFlow's: its convention is "
            "z = (x - b) exp(-a), logdet = -sum a, and the sampler inverts exactly that (x = z exp(a) + b)"),
    Mistake("exp_plus", _block(z_rule=lambda x, a, b: (x - b) * torch.exp(a)),
            "z = (x - b) * exp(-a): the scale is exp(-a), not exp(+a)"),
    Mistake("logdet_sign", _block(logdet=lambda a, r: a.sum(dim=(1, 2))),
            "the log-determinant has the wrong sign: dz_i/dx_i = exp(-a_i), so logdet = -sum a"),
    Mistake("logdet_mean", _block(logdet=lambda a, r: -a.mean(dim=(1, 2))),
            "logdet is the exact log|det dz/dx| of each sample: the SUM of -a over tokens and dims. (The "
            "official code takes the mean, which is the loss per dimension; this check wants the sum, and "
            "the notebook's loss divides by T D itself)"),
    Mistake("logdet_unshifted", _block(logdet=lambda a, raw: -raw.sum(dim=(1, 2))),
            "logdet is computed from the raw a before the shift: use the shifted a, the one that scales z "
            "(token 0's a is 0, the last token's raw a is never used)"),
    Mistake("b_added", _block(z_rule=lambda x, a, b: (x + b) * torch.exp(-a)),
            "z = (x - b) * exp(-a): subtract b, do not add it"),
    Mistake("scale_then_shift", _block(z_rule=lambda x, a, b: x * torch.exp(-a) - b),
            "the order: subtract b first, then scale, z = (x - b) * exp(-a) (not x * exp(-a) - b)"),
)


def _call(candidate, x, params, case):
    out = call(candidate, x, params, case=case)
    if isinstance(out, list):
        out = tuple(out)
    if not isinstance(out, tuple) or len(out) != 2:
        got = f"a tuple of {len(out)}" if isinstance(out, tuple) else type(out).__name__
        raise Mismatch(f"on {case}: return a tuple (z, logdet), got {got}")
    z, logdet = out
    N = x.shape[0]
    if isinstance(logdet, torch.Tensor) and logdet.shape != (N,):
        raise Mismatch(f"on {case}: logdet should have shape ({N},), one number per sample, got "
                       f"{tuple(logdet.shape)} (sum over tokens and dims, dim=(1, 2), not over the batch)")
    return out


def check_ar_affine_forward(candidate):
    """(z, logdet) of one autoregressive affine block: params(x)'s raw (a, b) shifted right by one token
    (token 0 gets zeros), z = (x - b) exp(-a), logdet = -sum of the shifted a over tokens and dims,
    shape (N,). On a causal test network whose every token has nonzero, different outputs (no shift,
    a shift to the left, along the batch, of the input instead of the outputs, exp(+a), the sign, the
    mean instead of the sum, the raw a in logdet, +b, the wrong order of shift and scale are each
    named), N = 1..7 with T = 1..5 tokens of D = 1..3 numbers and 4096 points of T = 2, D = 1 (the
    notebook's), float32 and float64; z and logdet keep their gradient to the network's parameters;
    x unchanged; one case on another device."""
    cases = [(6, 2, 1, torch.float32), (1, 3, 2, torch.float64), (5, 4, 3, torch.float32),
             (4, 1, 2, torch.float64), (7, 5, 1, torch.float64), (3, 3, 3, torch.float32),
             (4096, 2, 1, torch.float32)]
    for i, (n, T, D, dtype) in enumerate(cases):
        params = _Causal(T, D, 10 + i, dtype)
        x = torch.randn(n, T, D, generator=generator(20 + i), dtype=dtype) * 1.5
        case = f"{n} sample{'s' * (n > 1)} of {T} token{'s' * (T > 1)} of {D} number{'s' * (D > 1)} ({dtype})"
        want = tarflow.ar_affine_forward(x, params)
        got = _call(candidate, x, params, case)
        with naming(MISTAKES, got, x, params):
            expect_close(got[0], want[0], f"on {case}, z")
            expect_close(got[1], want[1], f"on {case}, logdet")
        for name, t in zip(("z", "logdet"), got):
            if T > 1 and not t.requires_grad:
                raise Mismatch(f"on {case}: {name} has no gradient to the network's parameters (computed under "
                               f"torch.no_grad(), or detached?): the NLL trains the network through z and logdet")
    x = torch.randn(4, 2, 1, generator=generator(41))
    want = tarflow.ar_affine_forward(x, _Causal(2, 1, 40))
    expect_on_another_device(candidate, (x, _Causal(2, 1, 40).to(stand_in_device())), want,
                             "4 samples of 2 tokens of 1 number")


PROJECT = (
    Exercise("capstone.ar_affine_forward", reference=tarflow.ar_affine_forward, checker=check_ar_affine_forward,
             description=check_ar_affine_forward.__doc__, mistakes=MISTAKES),
)
