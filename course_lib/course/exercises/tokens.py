"""Exercises of notebooks 02-03 (tokens); see course_lib.course.homework for the mechanism.

* tokens.nearest_code_ste: nearest-code lookup with the straight-through estimator;
* tokens.vq_loss: codebook + beta * commitment, with the stop-gradients in the right places;
* tokens.residual_quantize: the residual ("carry") loop of RVQ;
* tokens.bsq: binary spherical quantization;
* tokens.bitrate: frames/s x quantizers x log2(codebook size).
"""
from __future__ import annotations

import math

import torch

from course_lib.tokens import vq as quantize
from course_lib.tokens.bitwise import bsq_quantize
from course_lib.course.checking import Case, Mismatch, compare, Exercise, expect_tensor, fingerprint


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
    """z (..., d) -> sign(z / |z|) / sqrt(d) (sign(0) = +1) with the straight-through estimator
    applied to the normalised u = z / |z|."""
    return bsq_quantize(z)


def bitrate(frames_per_second: float, n_quantizers: int, codebook_size: int) -> float:
    """Bits per second of a token stream: frames/s x quantizers x log2(codebook size)."""
    return float(frames_per_second) * n_quantizers * math.log2(codebook_size)


# ----------------------------------------------------------------------------- checks

def _gen(seed):
    return torch.Generator().manual_seed(seed)


def check_nearest_code_ste(candidate):
    """Values and codes on random inputs, codes of unequal norm, and the gradient path."""
    g = _gen(0)
    z, cb = torch.randn(12, 3, generator=g), torch.randn(7, 3, generator=g)
    # codes of very different norms: a dot-product "distance" picks the wrong one
    cb_norms = torch.cat([torch.randn(4, 2, generator=g) * 0.3, torch.randn(4, 2, generator=g) * 3])
    cases = [Case("z (12, 3), codebook (7, 3)", (z, cb)),
             Case("codes of very different lengths", (torch.randn(20, 2, generator=g), cb_norms)),
             Case("z equal to codebook rows", (cb[[2, 0, 6]].clone(), cb))]
    for case in cases:
        out = candidate(*[a.clone() for a in case.args])
        if not isinstance(out, tuple) or len(out) != 2:
            raise Mismatch(f"on {case.description}: expected a tuple (z_q_st, codes), got {type(out).__name__}")
        want_q, want_c = nearest_code_ste(*case.args)
        expect_tensor(out[1], want_c, f"on {case.description}, codes", hint="(argmin of the squared distance)")
        expect_tensor(out[0], want_q, f"on {case.description}, z_q_st",
                      hint=f"(yours: {fingerprint(out[0])}; reference: {fingerprint(want_q)})")
    # the gradient must reach the encoder output unchanged (straight-through), not the codebook
    zz, cc = z.clone().requires_grad_(True), cb.clone().requires_grad_(True)
    w = torch.randn(12, 3, generator=g)
    zq, _ = candidate(zz, cc)
    if not zq.requires_grad:
        raise Mismatch("z_q_st carries no gradient: the decoder's gradient must flow back to z "
                       "through the straight-through estimator z + (z_q - z).detach()")
    (zq * w).sum().backward()
    if zz.grad is None:
        raise Mismatch("no gradient reached z: use the straight-through estimator z + (z_q - z).detach()")
    expect_tensor(zz.grad, w, "gradient of sum(w * z_q_st) w.r.t. z",
                  hint="(the straight-through estimator passes the gradient unchanged)")
    if cc.grad is not None and cc.grad.abs().max() > 0:
        raise Mismatch("the codebook received a gradient through z_q_st: the code must be inside "
                       ".detach() (the codebook learns from the codebook loss or EMA, not from here)")


def check_vq_loss(candidate):
    """Value and the two gradients: the codebook term moves z_q, the commitment term moves z_e."""
    g = _gen(1)
    for n, d, beta in [(10, 4, 0.25), (6, 3, 1.0), (8, 5, 0.1)]:
        z_e, z_q = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
        want = vq_loss(z_e, z_q, beta)
        ze, zq = z_e.clone().requires_grad_(True), z_q.clone().requires_grad_(True)
        got = candidate(ze, zq, beta)
        what = f"on z_e, z_q ({n}, {d}) with beta={beta}"
        expect_tensor(got, want, f"{what}, loss value", check_dtype=False)
        got.backward()
        if ze.grad is None or zq.grad is None:
            miss = "z_e (commitment term)" if ze.grad is None else "z_q (codebook term)"
            raise Mismatch(f"{what}: no gradient reached {miss}")
        # d/dz_e = 2 beta (z_e - z_q) / numel ; d/dz_q = 2 (z_q - z_e) / numel
        expect_tensor(ze.grad, 2 * beta * (z_e - z_q) / z_e.numel(), f"{what}, gradient w.r.t. z_e",
                      hint="(only beta * |z_e - sg[z_q]|^2 should reach z_e)")
        expect_tensor(zq.grad, 2 * (z_q - z_e) / z_e.numel(), f"{what}, gradient w.r.t. z_q",
                      hint="(only |sg[z_e] - z_q|^2 should reach the code)")


def check_residual_quantize(candidate):
    """Random codebooks of decreasing scale, 1..L levels."""
    g = _gen(2)
    L, K, D = 4, 8, 3
    books = torch.randn(L, K, D, generator=g) * torch.tensor([1.0, 0.5, 0.25, 0.12])[:, None, None]
    z = torch.randn(16, D, generator=g)
    cases = [Case(f"z (16, 3), 4 codebooks, n_q={n}", (z, books, n)) for n in (1, 2, 4)]
    for case in cases:
        out = candidate(*case.args)
        if not isinstance(out, tuple) or len(out) != 2:
            raise Mismatch(f"on {case.description}: expected a tuple (z_hat, codes), got {type(out).__name__}")
        want_z, want_c = residual_quantize(*case.args)
        expect_tensor(out[1], want_c, f"on {case.description}, codes",
                      hint="(level i quantizes what the levels before it left over, with codebook i)")
        expect_tensor(out[0], want_z, f"on {case.description}, z_hat",
                      hint=f"(yours: {fingerprint(out[0])}; reference: {fingerprint(want_z)})")


def check_bsq(candidate):
    """Values on the unit sphere, several d, and the straight-through gradient."""
    g = _gen(3)
    cases = [Case(f"z of shape {s}", (torch.randn(*s, generator=g) * 3,)) for s in [(5, 4), (2, 3, 8), (7, 1)]]
    compare(candidate, bsq, cases)
    z = torch.randn(6, 4, generator=g).requires_grad_(True)
    out = candidate(z)
    if not out.requires_grad:
        raise Mismatch("the output carries no gradient: apply the straight-through estimator "
                       "u + (u_hat - u).detach() with u = z / |z|")
    w = torch.randn(6, 4, generator=g)
    (out * w).sum().backward()
    z2 = z.detach().clone().requires_grad_(True)
    (bsq(z2) * w).sum().backward()
    expect_tensor(z.grad, z2.grad, "gradient w.r.t. z", hint="(the STE is applied to u = z / |z|, "
                  "so the gradient goes through the normalisation)")


def check_bitrate(candidate):
    """EnCodec, Mimi and the course's codec."""
    cases = [(75, 8, 1024, "EnCodec 24 kHz at 6 kbps"), (12.5, 8, 2048, "Mimi as Moshi uses it"),
             (250, 4, 64, "the course's 8 kHz codec"), (50, 1, 200, "the lecture's 50 tokens/s, 200 codes")]
    for fps, nq, k, what in cases:
        got = candidate(fps, nq, k)
        want = bitrate(fps, nq, k)
        try:
            val = float(got)
        except (TypeError, ValueError):
            raise Mismatch(f"{what}: expected a number of bits per second, got {type(got).__name__}")
        if not math.isclose(val, want, rel_tol=1e-6):
            raise Mismatch(f"{what} ({fps} frames/s, {nq} quantizers, {k} codes): expected {want:g} "
                           f"bits/s, got {val:g}")


# the exercises of this topic, in notebook order
EXERCISES = [
    Exercise("tokens.nearest_code_ste", reference=nearest_code_ste, checker=check_nearest_code_ste, description=check_nearest_code_ste.__doc__),
    Exercise("tokens.vq_loss", reference=vq_loss, checker=check_vq_loss, description=check_vq_loss.__doc__),
    Exercise("tokens.residual_quantize", reference=residual_quantize, checker=check_residual_quantize, description=check_residual_quantize.__doc__),
    Exercise("tokens.bsq", reference=bsq, checker=check_bsq, description=check_bsq.__doc__),
    Exercise("tokens.bitrate", reference=bitrate, checker=check_bitrate, description=check_bitrate.__doc__),
]
