"""Exercises of notebooks 02-03 (tokens); see course_lib.course.homework for the mechanism.

* tokens.nearest_code_ste: nearest-code lookup with the straight-through estimator;
* tokens.vq_loss: codebook + beta * commitment, with the stop-gradients in the right places;
* tokens.residual_quantize: the residual ("carry") loop of RVQ;
* tokens.bsq: binary spherical quantization;
* tokens.bitrate: frames/s x quantizers x log2(codebook size).

Every check calls the learner's function through :func:`~course_lib.course.checking.call` (inputs
changed in place, time limit, the reference handed in), on sizes that change from call to call
(N, D, K and the number of levels, each down to 1), on a float64 case whose output must stay float64
at float64 precision, on another device (the GPU, or without one PyTorch's meta device), and on the
extreme inputs of its exercise.
"""
from __future__ import annotations

import math

import torch

from course_lib.tokens import vq as quantize
from course_lib.tokens.bitwise import bsq_quantize
from course_lib.course.checking import (CannotTell, Exercise, Mismatch, call, call_on, device_words, expect_like,
                                        expect_loss, expect_number, expect_tensor, fingerprint, stand_in_device)


# ----------------------------------------------------------------------------- references

def nearest_code_ste(z: torch.Tensor, codebook: torch.Tensor):
    """z (N, D), codebook (K, D) -> (z_q_st (N, D), codes (N,) int64): nearest code by squared
    Euclidean distance; z_q_st has the value of the code and the gradient of the identity w.r.t. z."""
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
    estimator applied to u: u + (u_hat - u).detach()."""
    return bsq_quantize(z)


def bitrate(frames_per_second: float, n_quantizers: int, codebook_size: int) -> float:
    """Bits per second of a token stream: frames/s x quantizers x log2(codebook size)."""
    return float(frames_per_second) * n_quantizers * math.log2(codebook_size)


# ----------------------------------------------------------------------------- shared helpers

def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _on_another_device(candidate, args: tuple, want, desc: str) -> None:
    """One case on the GPU, or without one on the meta device (PyTorch's stand-in): what the function
    returns must be on the input's device (a tensor made with a fixed device shows here)."""
    dev = stand_in_device()
    case = f"{desc} on {device_words(dev)}"
    got = call_on(dev, candidate, *args, case=case)
    if not isinstance(got, CannotTell):
        expect_like(got, want, dev, f"on {case}")


def _tol(dtype) -> tuple[float, float]:
    """(atol, rtol): float64 outputs are compared at float64 precision."""
    return (1e-10, 1e-9) if dtype == torch.float64 else (1e-5, 1e-4)


def _expect(got, want: torch.Tensor, what: str, hint: str = "", specific: bool = False) -> None:
    """expect_tensor at the precision of ``want``'s dtype; a float64 output whose values agree only to
    float32 precision gets that named (a step ran in float32). ``specific``: ``hint`` names the mistake,
    and replaces expect_tensor's generic factor hint."""
    atol, rtol = _tol(want.dtype)
    same_kind = (isinstance(got, torch.Tensor) and got.shape == want.shape and got.dtype == want.dtype
                 and got.device.type == want.device.type)
    try:
        expect_tensor(got, want, what, atol, rtol, hint=hint)
    except Mismatch:
        if not same_kind:
            raise
        g, w = got.detach().double().cpu(), want.detach().double().cpu()
        if want.dtype == torch.float64 and torch.allclose(g, w, atol=1e-5, rtol=1e-4):
            raise Mismatch(f"{what}: on float64 input your values agree with the expected ones only to "
                           f"float32 precision: part of your computation ran in float32 (a tensor made "
                           f"without dtype=..., torch.where(..., 1.0, -1.0) without .to(z.dtype), or "
                           f".float()); keep the input's dtype throughout") from None
        if specific and hint:
            bad = ~(torch.isfinite(g) | ~torch.isfinite(w)) | ((g - w).abs() > atol + rtol * w.abs())
            idx = bad.nonzero()[0] if bad.any() else None
            if idx is not None:
                at = f" at index ({', '.join(str(int(i)) for i in idx)})" if g.dim() else ""
                raise Mismatch(f"{what}: value{at} is {g[tuple(idx)].item():.6g}, expected "
                               f"{w[tuple(idx)].item():.6g} ({int(bad.sum())} of {g.numel()} values wrong) "
                               f"{hint}") from None
        raise


def _pair(out, case: str, names: str):
    """The two outputs of a function that returns a tuple ``names``."""
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        got = f"{len(out)} outputs" if isinstance(out, (tuple, list)) else type(out).__name__
        raise Mismatch(f"on {case}: expected a tuple ({names}), got {got}")
    return out


def _sq_dist(z: torch.Tensor, cb: torch.Tensor) -> torch.Tensor:
    """(N, K) squared distances in float64 on the CPU, by direct differences."""
    zz, e = z.detach().double().cpu(), cb.detach().double().cpu()
    return ((zz[:, None, :] - e[None]) ** 2).sum(-1)


def _weight(g, direction: torch.Tensor) -> float | None:
    """c such that g = c * direction, or None if g is not a multiple of it (a missing g counts as 0)."""
    d = direction.detach().double().cpu()
    if g is None:
        return 0.0
    g = g.detach().double().cpu()
    if g.shape != d.shape or not torch.isfinite(g).all():
        return None
    denom = float((d * d).sum())
    if denom == 0:
        return None
    c = float((g * d).sum()) / denom
    return c if torch.allclose(g, c * d, atol=1e-7 + 1e-5 * float(d.abs().max()), rtol=1e-4) else None


# ----------------------------------------------------------------------------- nearest_code_ste

def _codes_hint(got, z: torch.Tensor, cb: torch.Tensor) -> str:
    """Name the rule a wrong set of codes follows, when it is a common one."""
    default = "(codes = argmin over the codebook of the squared distance |z - e_j|^2)"
    if not isinstance(got, torch.Tensor) or tuple(got.shape) != (z.shape[0],) or got.dtype != torch.int64:
        return ""
    g = got.detach().cpu().long()
    d2 = _sq_dist(z, cb)
    dot = z.detach().double().cpu() @ cb.detach().double().cpu().t()
    l1 = (z.detach().double().cpu()[:, None] - cb.detach().double().cpu()[None]).abs().sum(-1)
    rules = [(d2.argmax(1), "(your codes are the farthest codes, the argmax of the distance: the nearest code "
                            "is the argmin)"),
             (dot.argmax(1), "(your codes maximise the dot product z . e_j: the squared distance |z|^2 - 2 z . e_j "
                             "+ |e_j|^2 also depends on |e_j|^2, so codes of different lengths rank differently)"),
             (dot.argmin(1), "(your codes minimise the dot product z . e_j; the nearest code minimises the "
                             "squared distance |z - e_j|^2)"),
             (l1.argmin(1), "(your codes minimise the L1 distance sum |z - e_j|; the exercise uses the squared "
                            "Euclidean distance)")]
    for rule, text in rules:
        if torch.equal(g, rule) and not torch.equal(rule, d2.argmin(1)):
            return text
    return default


def _ncs_inputs(g, n, k, d, dtype=torch.float32, device="cpu", code_scales=None):
    z = torch.randn(n, d, generator=g, dtype=dtype)
    cb = torch.randn(k, d, generator=g, dtype=dtype)
    if code_scales is not None:
        cb = cb * code_scales.to(dtype)[:, None]
    return z.to(device), cb.to(device)


def check_nearest_code_ste(candidate):
    """Codes (int64, argmin of the squared distance) and z_q_st's values on sizes from 1 up (N, K, D),
    codes of very different lengths (a dot product picks wrong ones), z equal to codebook rows, a
    float64 case (float64 out, at float64 precision) and one on another device (the GPU, or the meta
    device); the inputs must stay unchanged; then the gradient: sum(w * z_q_st) gives z the gradient w
    (straight-through) and the codebook none, in float32 and float64."""
    g = _gen(0)
    cases = []
    z, cb = _ncs_inputs(g, 12, 7, 3)
    cases.append(("z (12, 3), codebook (7, 3)", z, cb))
    cases.append(("codes of very different lengths, z (20, 2), codebook (8, 2)",
                  *_ncs_inputs(g, 20, 8, 2, code_scales=torch.tensor([0.3] * 4 + [3.0] * 4))))
    cases.append(("z equal to codebook rows 2, 0, 6", cb[[2, 0, 6]].clone(), cb.clone()))
    cases.append(("one vector (N = 1), codebook (5, 4)", *_ncs_inputs(g, 1, 5, 4)))
    cases.append(("a codebook of one code (K = 1), z (6, 2)", *_ncs_inputs(g, 6, 1, 2)))
    cases.append(("D = 1, z (9, 1), codebook (4, 1)", *_ncs_inputs(g, 9, 4, 1)))
    cases.append(("float64 z (10, 5), codebook (6, 5)", *_ncs_inputs(g, 10, 6, 5, dtype=torch.float64)))
    for desc, z, cb in cases:
        want_q, want_c = nearest_code_ste(z, cb)                    # before the learner's call
        zq, codes = _pair(call(candidate, z, cb, case=desc), desc, "z_q_st, codes")
        expect_tensor(codes, want_c, f"on {desc}, codes", hint=_codes_hint(codes, z, cb))
        hint = "(z_q_st must have the value of the chosen code, codebook[codes]: z + (codebook[codes] - z).detach())"
        if isinstance(zq, torch.Tensor) and zq.shape == want_q.shape and torch.allclose(
                zq.detach().double().cpu(), (2 * z - want_q).double().cpu(), atol=1e-5):
            hint = "(your z_q_st is z - (z_q - z): the sign inside the straight-through term is flipped)"
        _expect(zq, want_q, f"on {desc}, z_q_st", hint=f"{hint} (yours: {fingerprint(zq)}; reference: "
                f"{fingerprint(want_q)})", specific="flipped" in hint)

    z, cb = _ncs_inputs(g, 11, 5, 3)
    _on_another_device(candidate, (z, cb), nearest_code_ste(z, cb), "z (11, 3), codebook (5, 3)")

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
        _expect(gz, w, f"on {desc}, gradient of sum(w * z_q_st) w.r.t. z",
                hint="(the straight-through estimator passes the gradient unchanged: it is w itself)")
        if gcb is not None and gcb.abs().max() > 0:
            raise Mismatch(f"on {desc}: the codebook received a gradient through z_q_st: the code must be "
                           f"inside .detach(), z + (z_q - z).detach() (the codebook learns from the codebook "
                           f"loss or EMA, not from here)")


# ----------------------------------------------------------------------------- vq_loss

def _vq_value_hint(got: float, z_e, z_q, beta: float, default: bool = False) -> str:
    """Name a wrong loss value when it is a common mistake (``default``: called without beta)."""
    ze, zq = z_e.detach().double().cpu(), z_q.detach().double().cpu()
    mse = float((ze - zq).pow(2).mean())
    want = (1 + beta) * mse
    if want == 0:
        return ""
    close = lambda a: math.isclose(got, a, rel_tol=1e-4, abs_tol=1e-9)         # noqa: E731
    if default and mse > 0 and got > mse * (1 - 1e-4):
        b = got / mse - 1
        if abs(b - round(b, 4)) < 1e-6:
            return (f"called without beta, your loss is codebook + {round(b, 4):g} * commitment: the default "
                    f"of vq_loss is beta=0.25, as in the exercise's signature")
    n, nd = ze.shape[0], ze.numel()
    mae = float((ze - zq).abs().mean())
    rules = [(want * nd, f"exactly N*D = {nd} times the expected value: a sum where the mean over all "
                         f"elements is wanted"),
             (want * nd / max(n, 1), f"exactly D = {nd // max(n, 1)} times the expected value: the squared "
                                     f"distance summed over D, then averaged over N; the exercise averages over "
                                     f"all N*D elements"),
             (beta * mse, "only the commitment term: the codebook term mean|sg[z_e] - z_q|^2 is missing"),
             (mse, "only one term of weight 1: add beta * the commitment term mean|z_e - sg[z_q]|^2"),
             (2 * mse, "beta is not applied: the loss is codebook + beta * commitment"),
             ((1 + beta) * mae, "absolute differences: both terms are mean SQUARED distances"),
             ((1 + beta) * math.sqrt(mse), "a root of the mean squared distance: both terms are mean squared "
                                          "distances, no square root"),
             ((1 + beta) * float((ze - zq).pow(2).sum(1).sqrt().mean()),
              "Euclidean norms |z_e - z_q|: both terms are mean squared distances")]
    for value, text in rules:
        if close(value) and not close(want):
            return text
    if mse > 0 and got > 0 and not close(want):
        b = got / mse - 1
        if abs(b - round(b, 4)) < 1e-6 and b >= 0:
            return f"your loss is codebook + {round(b, 4):g} * commitment; expected beta = {beta:g}"
    return ""


def _vq_grad_hint(got, z_e, z_q, beta: float, notebook: bool) -> str:
    """Name the wrong stop-gradient from the gradients of the learner's loss."""
    names = [("z_q", z_q)] + ([] if notebook else [("z_e", z_e)])
    try:
        grads = torch.autograd.grad(got, [t for _, t in names], retain_graph=True, allow_unused=True)
    except RuntimeError:
        return ""
    u = 2 * (z_e.detach() - z_q.detach()) / z_e.numel()            # gradient of mean |z_e - z_q|^2 w.r.t. z_e
    same = lambda a, b: abs(a - b) < 1e-3                             # noqa: E731
    for (name, _), gr in zip(names, grads):
        if name == "z_q":
            c = _weight(gr, -u)
            if c is None or same(c, 1.0):
                continue
            if same(c, 0.0):
                return ("no gradient reaches the code z_q: the codebook term mean|sg[z_e] - z_q|^2 must keep "
                        "z_q attached (z_q is the raw code, not the straight-through value; detach z_e there, "
                        "not z_q)")
            if same(c, beta):
                return ("beta weights the codebook term: it belongs on the commitment term; the codebook term "
                        "has weight 1")
            if same(c, 1 + beta):
                return "z_q receives the gradient of both terms: detach z_q in the commitment term (sg[z_q])"
            return f"the gradient reaching z_q has weight {c:.4g}; the codebook term gives it weight 1"
        c = _weight(gr, u)
        if c is None or same(c, beta):
            continue
        if same(c, 0.0):
            return ("no gradient reaches z_e: the commitment term beta * mean|z_e - sg[z_q]|^2 must keep z_e "
                    "attached (detach z_q there, not z_e)")
        if same(c, 1 + beta):
            return "z_e receives the gradient of both terms: detach z_e in the codebook term (sg[z_e])"
        if same(c, 1.0):
            return ("z_e receives a gradient of weight 1, expected beta: beta belongs on the commitment term "
                    "mean|z_e - sg[z_q]|^2, and z_e is detached in the codebook term")
        return f"the gradient reaching z_e has weight {c:.4g}; the commitment term gives it weight beta = {beta:g}"
    return ""


def check_vq_loss(candidate):
    """A 0-d loss tensor attached to the graph, with the reference's value and the reference's gradients
    w.r.t. z_e (beta * commitment only) and z_q (codebook term only): first the notebook's use (z_e
    without grad, z_q = codebook[codes]), then sizes from N = D = 1 up, beta = 0, 1 and others, the
    default beta (0.25) when it is left out, z_e equal to z_q (loss and gradients 0), a float64 case
    (float64 loss) and one on another device (the GPU, or the meta device); the inputs must stay
    unchanged."""
    g = _gen(1)
    cases = [("the notebook's use: z_e (9, 2) without grad, z_q = codebook[codes], beta=0.3", 9, 2, 0.3,
              torch.float32, "notebook"),
             ("z_e, z_q (10, 4), beta=0.3", 10, 4, 0.3, torch.float32, ""),
             ("z_e, z_q (6, 3), beta=1.0", 6, 3, 1.0, torch.float32, ""),
             ("z_e, z_q (8, 5), beta left out (the default 0.25)", 8, 5, None, torch.float32, ""),
             ("z_e, z_q (1, 1), beta=0.3", 1, 1, 0.3, torch.float32, ""),
             ("z_e, z_q (7, 2), beta=0", 7, 2, 0.0, torch.float32, ""),
             ("z_e equal to z_q (4, 3), beta=0.25", 4, 3, 0.25, torch.float32, "equal"),
             ("float64 z_e, z_q (5, 3), beta=0.4", 5, 3, 0.4, torch.float64, "")]
    for desc, n, d, beta, dtype, kind in cases:
        b = 0.25 if beta is None else beta
        z_e = torch.randn(n, d, generator=g, dtype=dtype)
        if kind == "notebook":
            codebook = torch.randn(5, d, generator=g, dtype=dtype).requires_grad_(True)
            z_q = codebook[torch.randint(5, (n,), generator=g)]                      # attached, not a leaf
        else:
            z_q = z_e.clone() if kind == "equal" else torch.randn(n, d, generator=g, dtype=dtype)
            z_e.requires_grad_(True)
            z_q.requires_grad_(True)
        want = vq_loss(z_e, z_q, b)                                                 # before the learner's call
        args = (z_e, z_q) if beta is None else (z_e, z_q, beta)
        got = call(candidate, *args, case=desc)
        if isinstance(got, (tuple, list)):
            raise Mismatch(f"on {desc}: your function returned a {type(got).__name__} of {len(got)}; return one 0-d "
                           f"tensor, codebook + beta * commitment, that the notebook calls .backward() on")
        wrt = {"z_q": z_q} if kind == "notebook" else {"z_e": z_e, "z_q": z_q}
        atol, rtol = _tol(dtype)
        try:
            expect_loss(got, want, f"on {desc}, the loss", wrt, atol=atol, rtol=rtol)
        except Mismatch as e:
            if isinstance(got, torch.Tensor) and got.dim() == 0 and got.dtype == want.dtype:
                value = float(got.detach())
                if not math.isclose(value, float(want.detach()), rel_tol=rtol, abs_tol=atol):
                    hint = _vq_value_hint(value, z_e, z_q, b, default=beta is None)
                    if hint:
                        raise Mismatch(f"{e} ({hint})") from None
                elif got.grad_fn is None and kind == "notebook":
                    raise Mismatch(f"on {desc}: the loss has no gradient: no gradient reaches the code z_q = "
                                   f"codebook[codes], so the codebook would never learn. The codebook term "
                                   f"mean|sg[z_e] - z_q|^2 must keep z_q attached: not under torch.no_grad(), "
                                   f"not from .detach()ed values, and from the raw code z_q, not the "
                                   f"straight-through value") from None
                elif got.requires_grad:
                    hint = _vq_grad_hint(got, z_e, z_q, b, kind == "notebook")
                    if hint:
                        raise Mismatch(f"on {desc}: the loss has the right value but the wrong gradients: "
                                       f"{hint}") from None
            raise
    z_e, z_q = (torch.randn(6, 4, generator=g).requires_grad_(True) for _ in range(2))
    _on_another_device(candidate, (z_e, z_q, 0.25), vq_loss(z_e, z_q, 0.25), "z_e, z_q (6, 4), beta=0.25")


# ----------------------------------------------------------------------------- residual_quantize

def _nearest(r: torch.Tensor, cb: torch.Tensor) -> torch.Tensor:
    return _sq_dist(r, cb).argmin(1)


def _level_hint(i: int, got_i: torch.Tensor, z, books, want_codes) -> str:
    """Name what level i of a wrong answer quantized."""
    zz, bb = z.detach().double().cpu(), books.detach().double().cpu()
    residual = zz - sum((bb[j][want_codes[:, j].cpu()] for j in range(i)), torch.zeros_like(zz))
    g = got_i.detach().cpu().long()
    right = _nearest(residual, bb[i])
    if i > 0 and torch.equal(g, _nearest(zz, bb[i])) and not torch.equal(right, g):
        return (f"level {i} quantized z itself; it must quantize the residual, z minus the codes chosen at "
                f"{'level 0' if i == 1 else f'levels 0..{i - 1}'}")
    if i > 0 and torch.equal(g, _nearest(residual, bb[0])) and not torch.equal(right, g):
        return f"level {i} used codebooks[0]; each level has its own codebook, codebooks[{i}]"
    if i > 0 and torch.equal(g, _nearest(residual, bb[i - 1])) and not torch.equal(right, g):
        return f"level {i} used codebooks[{i - 1}]: level i uses codebooks[i]"
    if i > 0 and torch.equal(g, _nearest(zz + (zz - residual), bb[i])) and not torch.equal(right, g):
        return "the residual grew: subtract the chosen code from the residual (residual = residual - q), do not add it"
    if i == 0:
        return "level 0 quantizes z itself with codebooks[0]"
    return (f"level {i} quantizes what the levels before it left over, z minus the codes of "
            f"{'level 0' if i == 1 else f'levels 0..{i - 1}'}, with codebooks[{i}]")


def _codes_shape_hint(codes, z, books, n_q: int) -> str:
    if not isinstance(codes, torch.Tensor):
        return "(codes: one column per level, torch.stack(list_of_codes, 1))"
    n, L = z.shape[0], books.shape[0]
    shape = tuple(codes.shape)
    if n_q == 1 and shape == (n,):
        return "(with n_q = 1, codes still has shape (N, 1): stack with torch.stack(codes, 1), without squeeze)"
    if shape == (n_q, n) and n_q != n:
        return "(codes is transposed: one row per vector, one column per level, torch.stack(codes, 1))"
    if shape == (n, L) and L != n_q:
        return f"(you used all {L} codebooks; use the first n_q = {n_q})"
    if len(shape) == 2 and shape[0] == n and shape[1] in (n_q - 1, n_q + 1):
        return f"(your codes have {shape[1]} column(s); the loop runs n_q = {n_q} times, one column per level)"
    return "(one column per level: codes[:, i] is the level-i code of every vector)"


def check_residual_quantize(candidate):
    """Codes (N, n_q) int64 level by level, then z_hat = the sum of the chosen codes: random codebooks of
    decreasing scale with n_q = 1, 2 and all L levels, sizes from 1 up (N, D, K), z equal to first-level
    codes (the residual is then exactly 0), a float64 case (float64 out, at float64 precision) and one on
    another device (the GPU, or the meta device); z and the codebooks must stay unchanged."""
    g = _gen(2)

    def books_for(L, K, D, dtype=torch.float32):
        scale = torch.tensor([0.5 ** i for i in range(L)], dtype=dtype)
        return torch.randn(L, K, D, generator=g, dtype=dtype) * scale[:, None, None]

    books = books_for(4, 8, 3)
    z = torch.randn(16, 3, generator=g)
    cases = [(f"z (16, 3), 4 codebooks of 8 codes, n_q={n}", z, books, n) for n in (1, 2, 4)]
    cases.append(("one vector (N = 1), 3 codebooks of 5 codes, n_q=3", torch.randn(1, 2, generator=g),
                  books_for(3, 5, 2), 3))
    cases.append(("D = 1, z (9, 1), 2 codebooks of 4 codes, n_q=2", torch.randn(9, 1, generator=g),
                  books_for(2, 4, 1), 2))
    cases.append(("codebooks of one code (K = 1), z (7, 4), n_q=3 of 5", torch.randn(7, 4, generator=g),
                  books_for(5, 1, 4), 3))
    b5 = books_for(3, 6, 2)
    cases.append(("z equal to first-level codes 1, 3, 5 (the residual is 0 after level 0), n_q=3",
                  b5[0][[1, 3, 5]].clone(), b5, 3))
    cases.append(("float64 z (10, 3), 3 codebooks of 6 codes, n_q=3", torch.randn(10, 3, generator=g, dtype=torch.float64),
                  books_for(3, 6, 3, torch.float64), 3))
    for desc, z, bk, n_q in cases:
        want_z, want_c = residual_quantize(z, bk, n_q)                            # before the learner's call
        z_hat, codes = _pair(call(candidate, z, bk, n_q, case=desc), desc, "z_hat, codes")
        if (not isinstance(codes, torch.Tensor) or codes.shape != want_c.shape or codes.dtype != want_c.dtype
                or codes.device.type != want_c.device.type):
            expect_tensor(codes, want_c, f"on {desc}, codes", hint=_codes_shape_hint(codes, z, bk, n_q))
        for i in range(n_q):                                   # name the first level that differs
            if not torch.equal(codes[:, i].cpu(), want_c[:, i].cpu()):
                expect_tensor(codes[:, i], want_c[:, i], f"on {desc}, the codes of level {i} (codes[:, {i}])",
                              hint=f"({_level_hint(i, codes[:, i], z, bk, want_c)})")
        hint = ""
        if isinstance(z_hat, torch.Tensor) and z_hat.shape == want_z.shape:
            zh = z_hat.detach().double().cpu()
            last = bk[n_q - 1][want_c[:, n_q - 1]].detach().double().cpu()
            if n_q > 1 and torch.allclose(zh, last, atol=1e-5) and not torch.allclose(last, want_z.double().cpu(), atol=1e-5):
                hint = "(z_hat is the last level's code only: it is the sum of the codes of all n_q levels) "
            elif n_q > 0 and torch.allclose(zh, (z - want_z).detach().double().cpu(), atol=1e-5):
                hint = "(you returned the residual left over, z - z_hat, not the sum of the codes) "
        _expect(z_hat, want_z, f"on {desc}, z_hat", hint=f"{hint}(yours: {fingerprint(z_hat)}; reference: "
                f"{fingerprint(want_z)})", specific=bool(hint))
    z, bk = torch.randn(12, 3, generator=g), books_for(3, 4, 3)
    _on_another_device(candidate, (z, bk, 2), residual_quantize(z, bk, 2), "z (12, 3), 3 codebooks of 4 codes, n_q=2")


# ----------------------------------------------------------------------------- bsq

def _bsq_hint(got, want: torch.Tensor, z: torch.Tensor) -> str:
    """Name a wrong BSQ value when it is a common mistake."""
    if not isinstance(got, torch.Tensor) or got.shape != want.shape or got.dtype != want.dtype:
        return ""
    gg, ww, zz = got.detach().double().cpu(), want.detach().double().cpu(), z.detach().double().cpu()
    d = z.shape[-1]
    finite = torch.isfinite(gg)
    bad = ~finite | ((gg - ww).abs() > 1e-5)
    if not bad.any():
        return ""
    zero_rows = (zz == 0).all(-1, keepdim=True).expand_as(zz)
    if (~finite).any():
        if zero_rows[~finite].all():
            return ("a vector of zeros has |z| = 0 and z / |z| is 0/0 = NaN: clamp the norm, "
                    "z.norm(dim=-1, keepdim=True).clamp_min(1e-8), or use F.normalize")
        return ("|z|^2 of a very short vector underflows to 0 in float32, so z / |z| is inf or NaN: clamp "
                "the norm, z.norm(dim=-1, keepdim=True).clamp_min(1e-8), or use F.normalize")
    if (zz[bad] == 0).all():
        if (gg[bad] == 0).all():
            return ("where z is exactly 0 your code is 0: torch.sign(0) = 0 puts the code off the unit sphere; "
                    "map 0 to -1 (bit 0), torch.where(u > 0, 1.0, -1.0)")
        if (gg[bad] > 0).all():
            return ("where z is exactly 0 your code is +1/sqrt(d); sign(0) must be -1 (bit 0, as bsq-vit's "
                    "torch.where(u > 0, 1, -1)): compare u > 0, not u >= 0")
    u = zz / zz.norm(dim=-1, keepdim=True).clamp_min(1e-300)
    for value, text in [(ww * math.sqrt(d), f"every value is sqrt(d) = {math.sqrt(d):.4g} times the expected one: "
                                            f"the 1/sqrt(d) is missing (the code must lie on the unit sphere)"),
                        (ww / math.sqrt(d), "every value is 1/sqrt(d) of the expected one: you divided by d "
                                            "(or twice by sqrt(d)); divide by sqrt(d) once, so that the code "
                                            "has length 1"),
                        (u, "you returned u = z / |z| itself: the code is sign(u) / sqrt(d)")]:
        if torch.allclose(gg, value, atol=1e-5) and d > 1:
            return text
    ratio = (gg.abs() / ww.abs()).flatten()
    if torch.allclose(gg.sign(), ww.sign()) and torch.allclose(ratio, ratio[:1].expand_as(ratio), rtol=1e-5):
        d_used = d / float(ratio[0]) ** 2                    # the learner divided by sqrt(d_used)
        if abs(d_used - round(d_used)) < 1e-4 and round(d_used) != d:
            axes = [k for k in range(z.dim() - 1) if z.shape[k] == round(d_used)]
            which = f", the size of axis {axes[0]}" if axes else ""
            return (f"your code is divided by sqrt({round(d_used)}){which}; d is the size of the last axis, "
                    f"z.shape[-1] = {d}, whatever the input's shape")
    return ""


def check_bsq(candidate):
    """Values sign(u) / sqrt(d) on shapes (..., d) with d from 1 up and one to three axes, exact zeros in z
    (sign(0) = -1: bit 0, as bsq-vit), a vector of zeros and very short vectors (no NaN), a float64 case
    (float64 out, at float64 precision) and one on another device (the GPU, or the meta device); z must
    stay unchanged; and the straight-through gradient through u = z / |z| (float32 and float64)."""
    g = _gen(3)
    plain = [("z of shape (5, 4)", torch.randn(5, 4, generator=g) * 3),
             ("z of shape (2, 3, 8)", torch.randn(2, 3, 8, generator=g) * 3),
             ("z of shape (7, 1) (d = 1)", torch.randn(7, 1, generator=g) * 3),
             ("z of shape (6,) (a single vector)", torch.randn(6, generator=g)),
             ("z of shape (1, 16)", torch.randn(1, 16, generator=g) * 10)]
    z_zeros = torch.randn(5, 4, generator=g) * 3
    z_zeros[0, 1] = z_zeros[2, 0] = z_zeros[2, 3] = z_zeros[4, 2] = 0.0
    z_null = torch.randn(4, 6, generator=g)
    z_null[1] = 0.0
    extreme = [("z (5, 4) with some entries exactly 0", z_zeros),
               ("z (4, 6) whose row 1 is a vector of zeros", z_null),
               ("very short vectors, z (3, 5) of length ~1e-30", torch.randn(3, 5, generator=g) * 1e-30),
               ("float64 z of shape (4, 6)", torch.randn(4, 6, generator=g, dtype=torch.float64))]

    def values(cases):
        for desc, z in cases:
            want = bsq(z)                                                         # before the learner's call
            got = call(candidate, z, case=desc)
            hint = _bsq_hint(got, want, z)
            _expect(got, want, f"on {desc}", hint=f"({hint})" if hint else "", specific=bool(hint))

    def gradient(desc, shape, dtype):
        z = (torch.randn(*shape, generator=g, dtype=dtype) * 2).requires_grad_(True)
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
        hint = "(the STE is applied to u = z / |z|, normalised over the last axis, so the gradient goes through the normalisation)"
        if got.shape == w.shape and torch.allclose(got.detach().double().cpu(), w.double().cpu(), atol=1e-6):
            hint = ("(your gradient is that of z itself: apply the straight-through estimator to u = z / |z|, "
                    "u + (u_hat - u).detach(), not to z, so the gradient goes through the normalisation)")
        _expect(got, want, f"on {desc}, gradient of sum(w * output) w.r.t. z", hint=hint)

    values(plain)
    gradient("z of shape (6, 4) that requires grad", (6, 4), torch.float32)
    values(extreme)
    z = torch.randn(5, 4, generator=g)
    _on_another_device(candidate, (z,), bsq(z), "z of shape (5, 4)")
    gradient("float64 z of shape (3, 2, 5) that requires grad", (3, 2, 5), torch.float64)


# ----------------------------------------------------------------------------- bitrate

_BITRATE_RULES = [
    (lambda f, n, k: f * n * math.log(k), "a natural log: the bits per code are log2(codebook size)"),
    (lambda f, n, k: f * n * math.log10(k), "a base-10 log: the bits per code are log2(codebook size)"),
    (lambda f, n, k: f * n * k, "the codebook size itself: each code carries log2(codebook size) bits"),
    (lambda f, n, k: f * math.log2(k), "n_quantizers is missing: every frame carries one code per quantizer"),
    (lambda f, n, k: n * math.log2(k), "frames_per_second is missing: the bits of one frame times the frames per second"),
    (lambda f, n, k: f * n * math.log2(k) / 8, "bytes per second: the exercise asks for bits"),
    (lambda f, n, k: f * n * math.log2(k) / 1000, "kilobits per second: the exercise asks for bits per second"),
    (lambda f, n, k: f * n * math.log2(k) / 1024, "kibibits per second: the exercise asks for bits per second"),
    (lambda f, n, k: f * n * math.ceil(math.log2(k)), "log2 rounded up (a whole number of bits): a code of K "
                                                      "values carries log2(K) bits, not necessarily a whole number"),
    (lambda f, n, k: f * n * math.floor(math.log2(k)), "log2 rounded down (a whole number of bits): a code of K "
                                                       "values carries log2(K) bits, not necessarily a whole number"),
    (lambda f, n, k: int(f) * n * math.log2(k), "frames_per_second was rounded to an integer (12.5 frames/s is a "
                                                "real rate: Mimi's)"),
    (lambda f, n, k: math.floor(f * n * math.log2(k)), "the result was rounded to an integer; return the float"),
]


def _bitrate_hint(values: dict) -> str:
    """The one common mistake that gives the learner's value on every case ({(fps, nq, k): value})."""
    same = lambda a, b: math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)          # noqa: E731
    fits = [text for rule, text in _BITRATE_RULES
            if values and all(same(v, rule(*args)) for args, v in values.items())]
    return fits[0] if len(fits) == 1 else ""


def check_bitrate(candidate):
    """A number (not a string or a bool), frames/s x quantizers x log2(codebook size), on EnCodec, Mimi
    (12.5 frames/s), the course's codec, codebook sizes that are not powers of 2, one quantizer, and a
    codebook of one code (0 bits)."""
    cases = [(75, 8, 1024, "EnCodec 24 kHz at 6 kbps"), (12.5, 8, 2048, "Mimi as Moshi uses it"),
             (250, 4, 64, "the course's 8 kHz codec"), (50, 1, 200, "the lecture's 50 tokens/s, 200 codes"),
             (0.5, 32, 3, "0.5 frames/s, 32 quantizers of 3 codes"), (16000, 1, 2 ** 16, "raw 16 kHz 16-bit PCM"),
             (1.5, 3, 1, "a codebook of one code (it carries no information)")]
    describe = lambda fps, nq, k, what: f"{what} ({fps} frames/s, {nq} quantizers, {k} codes)"   # noqa: E731
    for fps, nq, k, what in cases:
        desc = describe(fps, nq, k, what)
        got = call(candidate, fps, nq, k, case=desc)
        want = bitrate(fps, nq, k)
        try:
            expect_number(got, want, f"on {desc}, bits/s", atol=1e-9, rtol=1e-6)
        except Mismatch as e:
            if isinstance(got, (str, bytes)):
                raise Mismatch(f"{e}: return the number itself (a float), not text; format it where you "
                               f"print it") from None
            if isinstance(got, bool) or not isinstance(got, (int, float, torch.Tensor)):
                raise
            # which formula is it? look at what the function gives on every case
            values = {}
            for f2, n2, k2, w2 in cases:
                try:
                    v = call(candidate, f2, n2, k2, case=describe(f2, n2, k2, w2))
                    values[(f2, n2, k2)] = float(v.item() if isinstance(v, torch.Tensor) else v)
                except (Mismatch, TypeError, ValueError, RuntimeError):
                    pass
            hint = _bitrate_hint(values)
            if hint:
                value = float(got.item() if isinstance(got, torch.Tensor) else got)
                raise Mismatch(f"on {desc}: got {value:.6g} bits/s, expected {want:.6g} ({hint})") from None
            raise


# the exercises of this topic, in notebook order
EXERCISES = [
    Exercise("tokens.nearest_code_ste", reference=nearest_code_ste, checker=check_nearest_code_ste, description=check_nearest_code_ste.__doc__),
    Exercise("tokens.vq_loss", reference=vq_loss, checker=check_vq_loss, description=check_vq_loss.__doc__),
    Exercise("tokens.residual_quantize", reference=residual_quantize, checker=check_residual_quantize, description=check_residual_quantize.__doc__),
    Exercise("tokens.bsq", reference=bsq, checker=check_bsq, description=check_bsq.__doc__),
    Exercise("tokens.bitrate", reference=bitrate, checker=check_bitrate, description=check_bitrate.__doc__),
]
