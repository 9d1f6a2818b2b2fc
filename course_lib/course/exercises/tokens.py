"""Exercises of notebooks 02-03 (tokens); see course_lib.course.homework for the mechanism.

* tokens.nearest_code_ste: nearest-code lookup with the straight-through estimator;
* tokens.vq_loss: codebook + beta * commitment, with the stop-gradients in the right places;
* tokens.residual_quantize: the residual ("carry") loop of RVQ;
* tokens.bsq: binary spherical quantization;
* tokens.bitrate: frames/s x quantizers x log2(codebook size).

Every check calls the learner's function through :func:`~course_lib.course.checking.call`, on sizes
from 1 up to the notebook's and beyond, a float64 case (float64 out, at float64 precision), another
device (the GPU, or PyTorch's meta device) and the exercise's extreme inputs. Codes are compared by
distance: at a tie (the same squared distance up to float32 rounding) either code is right. The known
mistakes are listed once (:mod:`course_lib.course.exercises.tokens_mistakes`): the check names the
one that reproduces the learner's values, the tests submit each one.
"""
from __future__ import annotations

import math

import torch

from course_lib.course.checking import (Exercise, Mismatch, call, expect_close, expect_loss, expect_number,
                                        expect_on_another_device, expect_tensor, explain, fingerprint, generator,
                                        gradients, name_mistake, name_mistake_in, naming, tolerances)
from course_lib.course.exercises import tokens_mistakes as known
from course_lib.tokens import vq as quantize
from course_lib.tokens.bitwise import bsq_quantize


# ----------------------------------------------------------------------------- references

def nearest_code_ste(z: torch.Tensor, codebook: torch.Tensor):
    """z (N, D), codebook (K, D) -> (z_q_st (N, D), codes (N,) int64): nearest code by squared
    Euclidean distance (a code at the same distance up to float32 rounding is as good); z_q_st has
    the value of the code and the gradient of the identity w.r.t. z."""
    codes = quantize.nearest_code(z, codebook)
    return quantize.straight_through(z, codebook[codes]), codes


def vq_loss(z_e: torch.Tensor, z_q: torch.Tensor, beta: float = 0.25) -> torch.Tensor:
    """mean |sg[z_e] - z_q|^2 + beta * mean |z_e - sg[z_q]|^2 (a scalar), z_q the RAW code."""
    codebook, commitment = quantize.vq_losses(z_e, z_q)
    return codebook + beta * commitment


def residual_quantize(z: torch.Tensor, codebooks: torch.Tensor, n_q: int):
    """z (N, D); codebooks (L, K, D), one per level; use the first n_q levels.
    Returns (z_hat (N, D) = sum of the chosen codes, codes (N, n_q) int64)."""
    residual, z_hat, codes = z, torch.zeros_like(z), []
    for i in range(n_q):
        k = quantize.nearest_code(residual, codebooks[i])                    # (N,)
        q = codebooks[i][k]                                                   # (N, D)
        z_hat = z_hat + q
        residual = residual - q
        codes.append(k)
    return z_hat, torch.stack(codes, 1)


def bsq(z: torch.Tensor) -> torch.Tensor:
    """z (..., d) -> sign(u) / sqrt(d) with u = z / |z| (norm over the last axis, clamped away from 0)
    and sign(0) = -1 (bit 0, as bsq-vit's ``torch.where(u > 0, 1, -1)``), with the straight-through
    estimator applied to u: u + (u_hat - u).detach(), the gradient of u (Infinity's ``quantize_new``,
    :func:`~course_lib.tokens.bitwise.bsq_quantize` with ste="code"; bsq-vit's own form, the default
    there, puts the straight-through step on the sign, a gradient of u / sqrt(d); the values agree)."""
    return bsq_quantize(z, "code")


def bitrate(frames_per_second: float, n_quantizers: int, codebook_size: int) -> float:
    """Bits per second of a token stream: frames/s x quantizers x log2(codebook size)."""
    return float(frames_per_second) * n_quantizers * math.log2(codebook_size)


# ----------------------------------------------------------------------------- shared helpers

def _pair(out, case: str, names: str):
    """The two outputs of a function that returns a tuple ``names``."""
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        got = f"{len(out)} outputs" if isinstance(out, (tuple, list)) else type(out).__name__
        raise Mismatch(f"on {case}: expected a tuple ({names}), got {got}")
    return out


def _nearest_or_tie(got, z: torch.Tensor, cb: torch.Tensor) -> torch.Tensor:
    """The nearest codes, argmin_j |z - e_j|^2 in float64, except where ``got`` picks another code at
    the same distance up to float32 rounding (a tie: either code is right). (N,) int64 on z's device."""
    zz, e = z.detach().double().cpu(), cb.detach().double().cpu()
    d2 = ((zz[:, None, :] - e[None]) ** 2).sum(-1)                               # (N, K)
    want = d2.argmin(1)
    if (isinstance(got, torch.Tensor) and got.shape == want.shape and got.dtype == torch.int64
            and got.device.type == z.device.type and got.numel()):
        g = got.detach().cpu()
        inside = (g >= 0) & (g < cb.shape[0])
        at = d2.gather(1, g.clamp(0, cb.shape[0] - 1)[:, None])[:, 0]
        scale = zz.pow(2).sum(1) + e.pow(2).sum(1).max() + 1e-30
        want = torch.where(inside & (at - d2.min(1).values <= 1e-5 * scale), g, want)
    return want.to(z.device)


# ----------------------------------------------------------------------------- nearest_code_ste

def _ncs_inputs(g, n, k, d, dtype=torch.float32, code_scales=None):
    z, cb = torch.randn(n, d, generator=g, dtype=dtype), torch.randn(k, d, generator=g, dtype=dtype)
    return z, cb if code_scales is None else cb * code_scales.to(dtype)[:, None]


def check_nearest_code_ste(candidate):
    """Codes (int64, argmin of the squared distance; a tie may go either way) and z_q_st's values on sizes
    from 1 up (N, K, D) to notebook 02's (z (4096, 2), 16 codes) and beyond, codes of very different
    lengths (a dot product picks wrong ones), z equal to codebook rows, float64, another device; then the
    gradient: sum(w * z_q_st) gives z the gradient w (straight-through) and the codebook none."""
    g = generator(0)
    z, cb = _ncs_inputs(g, 12, 7, 3)
    cases = [("z (12, 3), codebook (7, 3)", z, cb),
             ("codes of very different lengths, z (20, 2), codebook (8, 2)",
              *_ncs_inputs(g, 20, 8, 2, code_scales=torch.tensor([0.3] * 4 + [3.0] * 4))),
             ("z equal to codebook rows 2, 0, 6", cb[[2, 0, 6]].clone(), cb.clone()),
             ("one vector (N = 1), codebook (5, 4)", *_ncs_inputs(g, 1, 5, 4)),
             ("a codebook of one code (K = 1), z (6, 2)", *_ncs_inputs(g, 6, 1, 2)),
             ("D = 1, z (9, 1), codebook (4, 1)", *_ncs_inputs(g, 9, 4, 1)),
             ("float64 z (10, 5), codebook (6, 5)", *_ncs_inputs(g, 10, 6, 5, dtype=torch.float64)),
             ("z halfway between two codes (ties: either code is right)", torch.tensor([[1.0, 0], [0, 1], [1, 1]]),
              torch.tensor([[0.0, 0], [2, 0], [0, 2], [2, 2]])),
             ("the notebook's sizes, z (4096, 2), codebook (16, 2)", *_ncs_inputs(g, 4096, 16, 2)),
             ("beyond the notebook's sizes, z (5000, 2), codebook (40, 2)", *_ncs_inputs(g, 5000, 40, 2))]
    for desc, z, cb in cases:
        out = call(candidate, z, cb, case=desc)
        zq, codes = _pair(out, desc, "z_q_st, codes")
        want_c = _nearest_or_tie(codes, z, cb)
        want_q = quantize.straight_through(z, cb[want_c])
        with naming(known.NEAREST_CODE_STE_MISTAKES, out, z, cb):
            expect_tensor(codes, want_c, f"on {desc}, codes",
                          hint="(codes = argmin over the codebook of the squared distance |z - e_j|^2)")
            expect_close(zq, want_q, f"on {desc}, z_q_st", hint=f"(z_q_st must have the value of the chosen "
                         f"code, codebook[codes]: z + (codebook[codes] - z).detach()) (yours: {fingerprint(zq)}; "
                         f"reference: {fingerprint(want_q)})")

    z, cb = _ncs_inputs(g, 11, 5, 3)
    expect_on_another_device(candidate, (z, cb), nearest_code_ste(z, cb), "z (11, 3), codebook (5, 3)")

    # the gradient must reach the encoder output unchanged (straight-through), not the codebook
    for desc, n, k, d, dtype in [("z (8, 3), codebook (5, 3) that require grad", 8, 5, 3, torch.float32),
                                 ("float64 z (4, 2), codebook (3, 2) that require grad", 4, 3, 2, torch.float64)]:
        z, cb = (t.requires_grad_(True) for t in _ncs_inputs(g, n, k, d, dtype=dtype))
        w = torch.randn(n, d, generator=g, dtype=dtype)
        zq, _ = _pair(call(candidate, z, cb, case=desc), desc, "z_q_st, codes")
        if not isinstance(zq, torch.Tensor) or zq.shape != z.shape:
            expect_tensor(zq, z.detach(), f"on {desc}, z_q_st")              # names the type or shape
        if not zq.requires_grad:
            raise Mismatch(f"on {desc}: z_q_st carries no gradient: the decoder's gradient must flow back to z "
                           f"through the straight-through estimator z + (z_q - z).detach()")
        gz, gcb = torch.autograd.grad((zq * w).sum(), [z, cb], allow_unused=True)
        if gz is None or not gz.abs().max() > 0:
            raise Mismatch(f"on {desc}: no gradient reached z: z_q_st must pass the gradient to z unchanged, "
                           f"with the straight-through estimator z + (z_q - z).detach()")
        expect_close(gz, w, f"on {desc}, gradient of sum(w * z_q_st) w.r.t. z",
                     hint="(the straight-through estimator passes the gradient unchanged: it is w itself)")
        if gcb is not None and gcb.abs().max() > 0:
            raise Mismatch(f"on {desc}: the codebook received a gradient through z_q_st: the code must be "
                           f"inside .detach(), z + (z_q - z).detach() (the codebook learns from the codebook "
                           f"loss or EMA, not from here)")


# ----------------------------------------------------------------------------- vq_loss

def _vq_mistake(candidate, args: tuple, desc: str, atol: float, rtol: float):
    """The known mistake whose loss has the learner's value and the learner's gradients w.r.t. both z_e
    and z_q (on a copy of the case where both require grad, so that no gradient goes unseen)."""
    both = tuple(a.detach().clone().requires_grad_(True) for a in args[:2]) + tuple(args[2:])
    try:
        got = call(candidate, *both, case=desc)
    except Mismatch:
        return None
    seen = (got, gradients(got, list(both[:2])))
    return name_mistake(seen, known.VQ_LOSS_MISTAKES, *both, wrt=(0, 1), atol=atol, rtol=rtol)


def check_vq_loss(candidate):
    """A 0-d loss tensor attached to the graph, with the reference's value and the reference's gradients
    w.r.t. z_e (beta * commitment only) and z_q (codebook term only): first the notebook's use (z_e
    without grad, z_q = codebook[codes], N = 512 as notebook 02 trains, and beyond), then sizes from
    N = D = 1 up, beta = 0, 1 and others, the default beta (0.25) when it is left out, z_e equal to z_q
    (loss and gradients 0), a float64 case (float64 loss) and one on another device (the GPU, or the meta
    device); the inputs must stay unchanged."""
    g = generator(1)
    cases = [("the notebook's use: z_e (9, 2) without grad, z_q = codebook[codes], beta=0.3", 9, 2, 0.3,
              torch.float32, "notebook"),
             ("the notebook's sizes: z_e (512, 2) without grad, z_q = codebook[codes] of 16, beta left out",
              512, 2, None, torch.float32, "notebook"),
             ("z_e, z_q (10, 4), beta=0.3", 10, 4, 0.3, torch.float32, ""),
             ("z_e, z_q (6, 3), beta=1.0", 6, 3, 1.0, torch.float32, ""),
             ("z_e, z_q (8, 5), beta left out (the default 0.25)", 8, 5, None, torch.float32, ""),
             ("z_e, z_q (1, 1), beta=0.3", 1, 1, 0.3, torch.float32, ""),
             ("z_e, z_q (7, 2), beta=0", 7, 2, 0.0, torch.float32, ""),
             ("z_e equal to z_q (4, 3), beta=0.25", 4, 3, 0.25, torch.float32, "equal"),
             ("float64 z_e, z_q (5, 3), beta=0.4", 5, 3, 0.4, torch.float64, ""),
             ("beyond the notebook's sizes: z_e, z_q (4100, 3), beta=0.25", 4100, 3, 0.25, torch.float32, "")]
    for desc, n, d, beta, dtype, kind in cases:
        z_e = torch.randn(n, d, generator=g, dtype=dtype)
        if kind == "notebook":
            codebook = torch.randn(16, d, generator=g, dtype=dtype).requires_grad_(True)
            z_q = codebook[torch.randint(16, (n,), generator=g)]                     # attached, not a leaf
        else:
            z_q = z_e.clone() if kind == "equal" else torch.randn(n, d, generator=g, dtype=dtype)
            z_e.requires_grad_(True)
            z_q.requires_grad_(True)
        want = vq_loss(z_e, z_q, 0.25 if beta is None else beta)                     # before the learner's call
        args = (z_e, z_q) if beta is None else (z_e, z_q, beta)
        got = call(candidate, *args, case=desc)
        if isinstance(got, (tuple, list)):
            raise Mismatch(f"on {desc}: your function returned a {type(got).__name__} of {len(got)}; return one 0-d "
                           f"tensor, codebook + beta * commitment, that the notebook calls .backward() on")
        wrt = (1,) if kind == "notebook" else (0, 1)               # the notebook's z_e has no gradient
        atol, rtol = tolerances(dtype)
        try:
            expect_loss(got, want, f"on {desc}, the loss", {("z_e", "z_q")[i]: args[i] for i in wrt},
                        atol=atol, rtol=rtol)
        except Mismatch as e:
            if (kind == "notebook" and isinstance(got, torch.Tensor) and got.dim() == 0 and got.grad_fn is None
                    and math.isclose(float(got.detach()), float(want.detach()), rel_tol=rtol, abs_tol=atol)):
                raise explain(Mismatch(f"on {desc}: the loss has no gradient: no gradient reaches the code z_q = "
                               f"codebook[codes], so the codebook would never learn. The codebook term "
                               f"mean|sg[z_e] - z_q|^2 must keep z_q attached: not under torch.no_grad(), "
                               f"not from .detach()ed values, and from the raw code z_q, not the "
                               f"straight-through value"), _vq_mistake(candidate, args, desc, atol, rtol)) from None
            raise explain(e, _vq_mistake(candidate, args, desc, atol, rtol)) from None
    z_e, z_q = (torch.randn(6, 4, generator=g).requires_grad_(True) for _ in range(2))
    expect_on_another_device(candidate, (z_e, z_q, 0.25), vq_loss(z_e, z_q, 0.25), "z_e, z_q (6, 4), beta=0.25")


# ----------------------------------------------------------------------------- residual_quantize

def _following(codes, z, books, n_q):
    """The reference's (z_hat, codes), where at each level a tie may go the learner's way (its codes,
    if usable, are followed where they are as near as the nearest code)."""
    usable = isinstance(codes, torch.Tensor) and codes.dim() == 2 and codes.shape == (z.shape[0], n_q)
    residual, z_hat, out = z.detach(), torch.zeros_like(z.detach()), []
    for i in range(n_q):
        k = _nearest_or_tie(codes[:, i] if usable else None, residual, books[i])
        q = books[i].detach()[k]
        z_hat, residual = z_hat + q, residual - q
        out.append(k)
    return z_hat, torch.stack(out, 1)


def check_residual_quantize(candidate):
    """Codes (N, n_q) int64 level by level, then z_hat = the sum of the chosen codes: random codebooks of
    decreasing scale with n_q = 1, 2 and all L levels, sizes from 1 up (N, D, K) to notebook 03's (z
    (4096, 2), 4 levels of 8 codes) and beyond, z equal to first-level codes (the residual is then
    exactly 0), float64, another device. A tie may go either way."""
    g = generator(2)

    def books_for(L, K, D, dtype=torch.float32):
        scale = torch.tensor([0.5 ** i for i in range(L)], dtype=dtype)
        return torch.randn(L, K, D, generator=g, dtype=dtype) * scale[:, None, None]

    books = books_for(4, 8, 3)
    z = torch.randn(16, 3, generator=g)
    cases = [(f"z (16, 3), 4 codebooks of 8 codes, n_q={n}", z, books, n) for n in (1, 2, 4)]
    def case(desc, n, d, L, K, n_q, dtype=torch.float32):
        return desc, torch.randn(n, d, generator=g, dtype=dtype), books_for(L, K, d, dtype), n_q
    cases += [case("one vector (N = 1), 3 codebooks of 5 codes, n_q=3", 1, 2, 3, 5, 3),
              case("D = 1, z (9, 1), 2 codebooks of 4 codes, n_q=2", 9, 1, 2, 4, 2),
              case("codebooks of one code (K = 1), z (7, 4), n_q=3 of 5", 7, 4, 5, 1, 3)]
    b5 = books_for(3, 6, 2)
    cases += [("z equal to first-level codes 1, 3, 5 (the residual is 0 after level 0), n_q=3",
               b5[0][[1, 3, 5]].clone(), b5, 3),
              case("float64 z (10, 3), 3 codebooks of 6 codes, n_q=3", 10, 3, 3, 6, 3, torch.float64),
              case("the notebook's sizes, z (4096, 2), 4 codebooks of 8 codes, n_q=4", 4096, 2, 4, 8, 4),
              case("beyond the notebook's sizes, z (5000, 2), 6 codebooks of 12 codes, n_q=6", 5000, 2, 6, 12, 6)]
    for desc, z, bk, n_q in cases:
        out = call(candidate, z, bk, n_q, case=desc)
        z_hat, codes = _pair(out, desc, "z_hat, codes")
        want_z, want_c = _following(codes, z, bk, n_q)
        try:
            if (not isinstance(codes, torch.Tensor) or codes.shape != want_c.shape or codes.dtype != want_c.dtype
                    or codes.device.type != want_c.device.type):
                expect_tensor(codes, want_c, f"on {desc}, codes", hint="(codes (N, n_q): one column per level, "
                              "codes[:, i] is the level-i code of every vector, torch.stack(codes, 1))")
            for i in range(n_q):                                   # name the first level that differs
                before = ("z itself", "z minus the code of level 0",
                          f"z minus the codes of levels 0..{i - 1}")[min(i, 2)]
                expect_tensor(codes[:, i], want_c[:, i], f"on {desc}, the codes of level {i} (codes[:, {i}])",
                              hint=f"(level {i} quantizes {before} with codebooks[{i}])")
            expect_close(z_hat, want_z, f"on {desc}, z_hat", hint=f"(z_hat is the sum of the chosen codes; "
                         f"yours: {fingerprint(z_hat)}; reference: {fingerprint(want_z)})")
        except Mismatch as e:                     # named on this case and on all 4 levels (n_q = 2 cannot
            all_levels = cases[2][1:]             # tell codebooks[0] from codebooks[i - 1])
            mistake = name_mistake_in(candidate, known.RESIDUAL_QUANTIZE_MISTAKES, [(z, bk, n_q), all_levels])
            raise explain(e, mistake) from None
    z, bk = torch.randn(12, 3, generator=g), books_for(3, 4, 3)
    expect_on_another_device(candidate, (z, bk, 2), residual_quantize(z, bk, 2),
                             "z (12, 3), 3 codebooks of 4 codes, n_q=2")


# ----------------------------------------------------------------------------- bsq

def check_bsq(candidate):
    """Values sign(u) / sqrt(d) on shapes (..., d) with d from 1 up and one to three axes, exact zeros in z
    (sign(0) = -1: bit 0, as bsq-vit), a vector of zeros and very short vectors (no NaN), a float64 case
    (float64 out, at float64 precision) and one on another device (the GPU, or the meta device); z must
    stay unchanged; and the straight-through gradient through u = z / |z| (float32 and float64)."""
    g = generator(3)
    plain = [("z of shape (5, 4)", torch.randn(5, 4, generator=g) * 3),
             ("z of shape (2, 3, 8)", torch.randn(2, 3, 8, generator=g) * 3),
             ("z of shape (7, 1) (d = 1)", torch.randn(7, 1, generator=g) * 3),
             ("z of shape (6,) (a single vector)", torch.randn(6, generator=g)),
             ("z of shape (1, 16)", torch.randn(1, 16, generator=g) * 10)]
    z_zeros = torch.randn(5, 4, generator=g) * 3
    z_zeros[0, 1] = z_zeros[2, 0] = z_zeros[2, 3] = z_zeros[4, 2] = 0.0
    z_null = torch.randn(4, 6, generator=g)
    z_null[1] = 0.0
    short = ("(|z|^2 of a very short vector underflows to 0 in float32, so z / |z| is inf or NaN: clamp the "
             "norm, z.norm(dim=-1, keepdim=True).clamp_min(1e-8), or use F.normalize)")
    extreme = [("z (5, 4) with some entries exactly 0", z_zeros),
               ("z (4, 6) whose row 1 is a vector of zeros", z_null),
               ("very short vectors, z (3, 5) of length ~1e-30", torch.randn(3, 5, generator=g) * 1e-30),
               ("float64 z of shape (4, 6)", torch.randn(4, 6, generator=g, dtype=torch.float64))]

    def values(cases):
        for desc, z in cases:
            want = bsq(z)                                                         # before the learner's call
            got = call(candidate, z, case=desc)
            finite = not isinstance(got, torch.Tensor) or bool(torch.isfinite(got).all())
            with naming(known.BSQ_MISTAKES, got, z):
                expect_close(got, want, f"on {desc}", hint="" if finite or "short" not in desc else short)

    def gradient(desc, shape, dtype, scale=2.0):
        z = (torch.randn(*shape, generator=g, dtype=dtype) * scale).requires_grad_(True)
        w = torch.randn(*shape, generator=g, dtype=dtype)
        out = call(candidate, z, case=desc)
        if not isinstance(out, torch.Tensor) or out.shape != z.shape:
            expect_tensor(out, z.detach(), f"on {desc}")                      # names the type or shape
        if not out.requires_grad:
            raise Mismatch(f"on {desc}: the output carries no gradient: apply the straight-through estimator "
                           f"u + (u_hat - u).detach() with u = z / |z|")
        (got,) = torch.autograd.grad((out * w).sum(), [z], allow_unused=True)
        z2 = z.detach().clone().requires_grad_(True)
        (want,) = torch.autograd.grad((bsq(z2) * w).sum(), [z2])
        if got is None:
            raise Mismatch(f"on {desc}: no gradient reached z: apply the straight-through estimator to "
                           f"u = z / |z|")
        try:
            expect_close(got, want, f"on {desc}, gradient of sum(w * output) w.r.t. z", hint="(the STE is "
                         "applied to u = z / |z|, normalised over the last axis, so the gradient goes through "
                         "the normalisation)")
        except Mismatch as e:                    # which mistake gives this value and this gradient?
            weighted = [known.weighted(m) for m in known.BSQ_MISTAKES]
            raise explain(e, name_mistake(((out * w).sum(), [got]), weighted, z.detach(), w, wrt=(0,))) from None

    values(plain)
    gradient("z of shape (6, 4) that requires grad", (6, 4), torch.float32)
    values(extreme)
    z = torch.randn(5, 4, generator=g)
    expect_on_another_device(candidate, (z,), bsq(z), "z of shape (5, 4)")
    # |z| ~ 200: a norm clamped OR offset by a small eps (z / (|z| + 1e-8)) agrees at float64 precision,
    # a step in float32 does not
    gradient("float64 z of shape (3, 2, 5) that requires grad", (3, 2, 5), torch.float64, scale=100.0)


# ----------------------------------------------------------------------------- bitrate

def _as_float(value):
    """A one-element tensor or a number as a float (a bool or anything else as it is)."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def check_bitrate(candidate):
    """A number (not a string or a bool), frames/s x quantizers x log2(codebook size), on EnCodec, Mimi
    (12.5 frames/s), the course's codec, codebook sizes that are not powers of 2, one quantizer, and a
    codebook of one code (0 bits)."""
    cases = [(75, 8, 1024, "EnCodec 24 kHz at 6 kbps"), (12.5, 8, 2048, "Mimi as Moshi uses it"),
             (250, 4, 64, "the course's 8 kHz codec"), (50, 1, 200, "the lecture's 50 tokens/s, 200 codes"),
             (0.5, 32, 3, "0.5 frames/s, 32 quantizers of 3 codes"), (16000, 1, 2 ** 16, "raw 16 kHz 16-bit PCM"),
             (1.5, 3, 1, "a codebook of one code (it carries no information)")]
    for fps, nq, k, what in cases:
        desc = f"{what} ({fps} frames/s, {nq} quantizers, {k} codes)"
        got = call(candidate, fps, nq, k, case=desc)
        try:
            expect_number(got, bitrate(fps, nq, k), f"on {desc}, bits/s", atol=1e-9, rtol=1e-6)
        except Mismatch as e:
            if isinstance(got, (str, bytes)):
                raise Mismatch(f"{e}: return the number itself (a float), not text; format it where you "
                               f"print it") from None
            as_number = lambda *a: _as_float(candidate(*a))                            # noqa: E731
            every_case = [c[:3] for c in cases]            # the formula that gives the learner's value on all
            raise explain(e, name_mistake_in(as_number, known.BITRATE_MISTAKES, every_case, atol=1e-9,
                                             rtol=1e-6)) from None


# the exercises of this topic, in notebook order
EXERCISES = [Exercise(f"tokens.{name}", reference=ref, checker=chk, description=chk.__doc__,
                      mistakes=getattr(known, f"{name.upper()}_MISTAKES"),
                      alternatives=getattr(known, f"{name.upper()}_ALTERNATIVES"))
             for name, ref, chk in [("nearest_code_ste", nearest_code_ste, check_nearest_code_ste),
                                    ("vq_loss", vq_loss, check_vq_loss),
                                    ("residual_quantize", residual_quantize, check_residual_quantize),
                                    ("bsq", bsq, check_bsq), ("bitrate", bitrate, check_bitrate)]]
