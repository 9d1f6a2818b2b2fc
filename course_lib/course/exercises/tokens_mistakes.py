"""The known mistakes of notebooks 02-03's exercises (course_lib.course.exercises.tokens), each written
once as a wrong implementation with the message that names it, and correct answers written otherwise.

The checks name the first mistake whose values (and gradients, for the loss) the learner's answer
reproduces; tests/test_exercises_tokens.py submits every one and asserts it is caught with its own
message, and every alternative and asserts it passes.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from course_lib.course.checking import Mistake
from course_lib.tokens import vq as quantize


# ----------------------------------------------------------------------------- nearest_code_ste

def _picking(rule):
    """nearest_code_ste with the codes chosen by ``rule(z, codebook) -> (N,)`` and a right STE."""
    def impl(z, codebook):
        codes = rule(z.detach(), codebook.detach())
        return z + (codebook[codes] - z).detach(), codes
    return impl


def _ncs_flipped(z, codebook):                 # z - (z_q - z): the sign inside the STE flipped
    codes = quantize.nearest_code(z, codebook)
    return z - (codebook[codes] - z).detach(), codes


NEAREST_CODE_STE_MISTAKES = (
    Mistake("farthest_code", _picking(lambda z, e: torch.cdist(z, e).argmax(1)),
            "your codes are the farthest codes, the argmax of the distance: the nearest code is the argmin"),
    Mistake("largest_dot_product", _picking(lambda z, e: (z @ e.t()).argmax(1)),
            "your codes maximise the dot product z . e_j: the squared distance |z|^2 - 2 z . e_j + |e_j|^2 also "
            "depends on |e_j|^2, so codes of different lengths rank differently"),
    Mistake("smallest_dot_product", _picking(lambda z, e: (z @ e.t()).argmin(1)),
            "your codes minimise the dot product z . e_j; the nearest code minimises the squared distance "
            "|z - e_j|^2"),
    Mistake("l1_distance", _picking(lambda z, e: (z[:, None] - e[None]).abs().sum(-1).argmin(1)),
            "your codes minimise the L1 distance sum |z - e_j|; the exercise uses the squared Euclidean distance"),
    Mistake("flipped_ste", _ncs_flipped,
            "your z_q_st is z - (z_q - z): the sign inside the straight-through term is flipped"),
)


def _ncs_direct_differences(z, codebook):      # distances by broadcasting, STE written as q + z - sg[z]
    codes = ((z[:, None, :] - codebook[None]) ** 2).sum(-1).argmin(-1)
    return codebook.detach()[codes] + z - z.detach(), codes


def _ncs_loop(z, codebook):                    # one vector at a time, torch.cdist and index_select
    codes = torch.stack([torch.cdist(z[i:i + 1].detach(), codebook.detach())[0].argmin() for i in range(len(z))])
    return z + (codebook.index_select(0, codes) - z).detach(), codes


NEAREST_CODE_STE_ALTERNATIVES = (_ncs_direct_differences, _ncs_loop)


# ----------------------------------------------------------------------------- vq_loss

def _ms(a, b):
    return (a - b).pow(2).mean()


def _vq_after_ste(z_e, z_q, beta=0.25):        # both terms on the straight-through value
    z_st = z_e + (z_q - z_e).detach()
    return _ms(z_e.detach(), z_st) + beta * _ms(z_e, z_st.detach())


def _per_vector(f):
    """The two terms with ``f(z_e - z_q) -> (N,)`` per vector, averaged over N."""
    return lambda z_e, z_q, beta=0.25: f(z_e.detach() - z_q).mean() + beta * f(z_e - z_q.detach()).mean()


VQ_LOSS_MISTAKES = (                                # the beta-default ones first: they fail later cases
    Mistake("zero_beta_read_as_default",
            lambda z_e, z_q, beta=0.25: _ms(z_e.detach(), z_q) + (beta or 0.25) * _ms(z_e, z_q.detach()),
            "beta=0 was read as 'not given' (beta or 0.25): 0 is a weight like any other; the default 0.25 "
            "applies only when beta is left out, as in the signature"),
    Mistake("another_default_beta", lambda z_e, z_q, beta=1.0: _ms(z_e.detach(), z_q) + beta * _ms(z_e, z_q.detach()),
            "called without beta, your loss uses another weight: the default of vq_loss is beta=0.25, as in "
            "the exercise's signature"),
    Mistake("beta_on_codebook_term", lambda z_e, z_q, beta=0.25: beta * _ms(z_e.detach(), z_q) + _ms(z_e, z_q.detach()),
            "beta weights the codebook term (or the two stop-gradients are swapped): it belongs on the commitment "
            "term; the codebook term mean|sg[z_e] - z_q|^2 has weight 1"),
    Mistake("no_stop_gradient", lambda z_e, z_q, beta=0.25: (1 + beta) * _ms(z_e, z_q),
            "no stop-gradient: z_e and z_q each receive the gradient of both terms; detach z_e in the codebook "
            "term (sg[z_e]) and z_q in the commitment term (sg[z_q])"),
    Mistake("z_q_gets_both", lambda z_e, z_q, beta=0.25: _ms(z_e.detach(), z_q) + beta * _ms(z_e, z_q),
            "z_q receives the gradient of both terms: detach z_q in the commitment term (sg[z_q])"),
    Mistake("z_e_gets_both", lambda z_e, z_q, beta=0.25: _ms(z_e, z_q) + beta * _ms(z_e, z_q.detach()),
            "z_e receives the gradient of both terms: detach z_e in the codebook term (sg[z_e])"),
    Mistake("after_ste", _vq_after_ste,
            "no gradient reaches the code z_q: the codebook term mean|sg[z_e] - z_q|^2 must keep z_q attached "
            "(z_q is the raw code, not the straight-through value; detach z_e there, not z_q)"),
    Mistake("commitment_only", lambda z_e, z_q, beta=0.25: beta * _ms(z_e, z_q.detach()),
            "only the commitment term: the codebook term mean|sg[z_e] - z_q|^2 is missing"),
    Mistake("codebook_term_only", lambda z_e, z_q, beta=0.25: _ms(z_e.detach(), z_q),
            "only one term of weight 1: add beta * the commitment term mean|z_e - sg[z_q]|^2"),
    Mistake("beta_not_applied", lambda z_e, z_q, beta=0.25: _ms(z_e.detach(), z_q) + _ms(z_e, z_q.detach()),
            "beta is not applied: the loss is codebook + beta * commitment"),
    Mistake("absolute_differences", _per_vector(lambda d: d.abs().mean(-1)),
            "absolute differences: both terms are mean SQUARED distances"),
    Mistake("root_of_mean",
            lambda z_e, z_q, beta=0.25: _ms(z_e.detach(), z_q).sqrt() + beta * _ms(z_e, z_q.detach()).sqrt(),
            "a root of the mean squared distance: both terms are mean squared distances, no square root"),
    Mistake("euclidean_norms", _per_vector(lambda d: d.norm(dim=-1)),
            "Euclidean norms |z_e - z_q|: both terms are mean squared distances"),
    Mistake("sum_not_mean",
            lambda z_e, z_q, beta=0.25: (z_e.detach() - z_q).pow(2).sum() + beta * (z_e - z_q.detach()).pow(2).sum(),
            "a sum where the mean over all N*D elements is wanted"),
    Mistake("summed_over_d", _per_vector(lambda d: d.pow(2).sum(-1)),
            "the squared distance summed over D, then averaged over N; the exercise averages over all N*D elements"),
)


def _vq_mse_loss(z_e, z_q, beta=0.25):         # F.mse_loss, terms in the other order
    return beta * F.mse_loss(z_e, z_q.detach()) + F.mse_loss(z_q, z_e.detach())


def _vq_by_hand(z_e, z_q, beta=0.25):          # sums divided by the count
    n = z_e.numel()
    return ((z_q - z_e.detach()) ** 2).sum() / n + beta * ((z_e - z_q.detach()) ** 2).sum() / n


VQ_LOSS_ALTERNATIVES = (_vq_mse_loss, _vq_by_hand)


# ----------------------------------------------------------------------------- residual_quantize

def _rvq(z, books, levels, book=lambda books, i: books[i], step=lambda r, q: r - q):
    """The RVQ loop over ``levels`` with one part swapped: (z_hat, codes list, residual, last code)."""
    residual, z_hat, codes, q = z, torch.zeros_like(z), [], None
    for i in levels:
        k = quantize.nearest_code(residual, book(books, i))
        q = book(books, i)[k]
        z_hat, residual = z_hat + q, step(residual, q)
        codes.append(k)
    return z_hat, codes, residual, q


def _rq(out=lambda z_hat, codes, residual, q: (z_hat, torch.stack(codes, 1)), levels=None, **swap):
    """residual_quantize with ``swap`` (book=, step=) in the loop, ``levels(n_q, L)``, and ``out``."""
    def impl(z, books, n_q):
        return out(*_rvq(z, books, range(n_q) if levels is None else levels(n_q, len(books)), **swap))
    return impl


RESIDUAL_QUANTIZE_MISTAKES = (
    Mistake("quantizes_z_at_every_level", _rq(step=lambda r, q: r),
            "every level quantized z itself; it must quantize the residual, z minus the codes chosen at the "
            "levels before it"),
    Mistake("first_codebook_at_every_level", _rq(book=lambda books, i: books[0]),
            "every level used codebooks[0]; each level has its own codebook, codebooks[i]"),
    Mistake("previous_codebook", _rq(book=lambda books, i: books[max(i - 1, 0)]),
            "level i used codebooks[i - 1]: level i uses codebooks[i]"),
    Mistake("residual_grows", _rq(step=lambda r, q: r + q),
            "the residual grew: subtract the chosen code from the residual (residual = residual - q), do not add it"),
    Mistake("one_level_too_few", _rq(levels=lambda n_q, L: range(max(n_q - 1, 1))),
            "your loop ran n_q - 1 times: it runs n_q times, one column of codes per level"),
    Mistake("one_level_too_many", _rq(levels=lambda n_q, L: range(min(n_q + 1, L))),
            "your loop ran n_q + 1 times: it runs n_q times, one column of codes per level"),
    Mistake("all_levels", _rq(levels=lambda n_q, L: range(L)),
            "you used all the codebooks; use the first n_q, codebooks[:n_q]"),
    Mistake("codes_squeezed", _rq(out=lambda z_hat, codes, r, q: (z_hat, torch.stack(codes, 1).squeeze())),
            "with n_q = 1, codes still has shape (N, 1): stack with torch.stack(codes, 1), without squeeze"),
    Mistake("codes_transposed", _rq(out=lambda z_hat, codes, r, q: (z_hat, torch.stack(codes, 0))),
            "codes is transposed: one row per vector, one column per level, torch.stack(codes, 1)"),
    Mistake("last_level_only", _rq(out=lambda z_hat, codes, r, q: (q, torch.stack(codes, 1))),
            "z_hat is the last level's code only: it is the sum of the codes of all n_q levels"),
    Mistake("returns_residual", _rq(out=lambda z_hat, codes, r, q: (r, torch.stack(codes, 1))),
            "you returned the residual left over, z - z_hat, not the sum of the codes"),
)


def _rq_preallocated(z, codebooks, n_q):       # codes in a preallocated tensor, z_hat = z - residual
    codes = torch.empty(z.shape[0], n_q, dtype=torch.long, device=z.device)
    residual = z.clone()
    for i in range(n_q):
        k = torch.cdist(residual, codebooks[i]).argmin(1)
        codes[:, i] = k
        residual = residual - codebooks[i][k]
    return z - residual, codes


def _rq_by_gather(z, codebooks, n_q):          # the sum of codes gathered at the end
    residual, codes = z, []
    for book in codebooks[:n_q]:
        k = ((residual[:, None] - book[None]) ** 2).sum(-1).argmin(1)
        residual = residual - book[k]
        codes.append(k)
    codes = torch.stack(codes, 1)
    return sum(codebooks[i][codes[:, i]] for i in range(n_q)), codes


RESIDUAL_QUANTIZE_ALTERNATIVES = (_rq_preallocated, _rq_by_gather)


# ----------------------------------------------------------------------------- bsq

def _bsq(u=lambda z: F.normalize(z, dim=-1), sign=lambda u: torch.where(u > 0, 1.0, -1.0),
         d=lambda z: math.sqrt(z.shape[-1]), through=None):
    """bsq with one part swapped: ``u(z)``, ``sign(u)``, the divisor ``d(z)``, the STE around ``through``."""
    def impl(z):
        uu = u(z)
        base = uu if through is None else through(z, uu)
        return base + (sign(uu).to(z.dtype) / d(z) - base).detach()
    return impl


BSQ_MISTAKES = (
    Mistake("no_one_over_sqrt_d", _bsq(d=lambda z: 1.0),
            "every value is sqrt(d) times the expected one: the 1/sqrt(d) is missing (the code must lie on "
            "the unit sphere)"),
    Mistake("divided_by_d", _bsq(d=lambda z: z.shape[-1]),
            "every value is 1/sqrt(d) of the expected one: you divided by d (or twice by sqrt(d)); divide by "
            "sqrt(d) once, so that the code has length 1"),
    Mistake("returns_u", lambda z: F.normalize(z, dim=-1),
            "you returned u = z / |z| itself: the code is sign(u) / sqrt(d)"),
    Mistake("torch_sign", _bsq(sign=torch.sign),
            "where z is exactly 0 your code is 0: torch.sign(0) = 0 puts the code off the unit sphere; map 0 "
            "to -1 (bit 0), torch.where(u > 0, 1.0, -1.0)"),
    Mistake("zero_is_plus", _bsq(sign=lambda u: torch.where(u >= 0, 1.0, -1.0)),
            "where z is exactly 0 your code is +1/sqrt(d); sign(0) must be -1 (bit 0, as bsq-vit's "
            "torch.where(u > 0, 1, -1)): compare u > 0, not u >= 0"),
    Mistake("unclamped_norm", _bsq(u=lambda z: z / z.norm(dim=-1, keepdim=True)),
            "a vector of zeros has |z| = 0 and z / |z| is 0/0 = NaN: clamp the norm, "
            "z.norm(dim=-1, keepdim=True).clamp_min(1e-8), or use F.normalize"),
    Mistake("d_from_another_axis", _bsq(d=lambda z: math.sqrt(z.shape[1] if z.dim() > 1 else z.shape[-1])),
            "your code is divided by the square root of another axis's size; d is the size of the last axis, "
            "z.shape[-1], whatever the input's shape"),
    Mistake("ste_around_z", _bsq(through=lambda z, u: z),
            "your gradient is that of z itself: apply the straight-through estimator to u = z / |z|, "
            "u + (u_hat - u).detach(), not to z, so the gradient goes through the normalisation"),
    Mistake("normalised_over_first_axis", _bsq(u=lambda z: F.normalize(z, dim=0)),
            "you normalised over the first axis: u = z / |z| with the norm over the last axis (dim=-1), so "
            "the gradient goes through the right normalisation"),
)


def weighted(m: Mistake) -> Mistake:
    """The mistake seen through the gradient check: (z, w) -> sum(w * impl(z)), a scalar whose gradient
    w.r.t. z is the one the check compares."""
    return Mistake(m.name, lambda z, w: (m.impl(z) * w).sum(), m.message)


def _bsq_arithmetic(z):                        # F.normalize and an arithmetic sign
    u = F.normalize(z, dim=-1)
    return (2 * (u > 0).to(z.dtype) - 1) / z.shape[-1] ** 0.5 + u - u.detach()


def _bsq_rsqrt(z):                             # rsqrt of the clamped squared norm, sign from z
    u = z * torch.rsqrt(z.pow(2).sum(-1, keepdim=True).clamp_min(1e-16))
    u_hat = torch.where(z > 0, torch.ones_like(z), -torch.ones_like(z)) / math.sqrt(z.shape[-1])
    return u + (u_hat - u).detach()


def _bsq_eps_in_denominator(z):               # |z| + eps instead of a clamp: differs by eps / |z| only
    u = z / (z.norm(dim=-1, keepdim=True) + 1e-8)
    return u + (torch.where(u > 0, 1.0, -1.0).to(z.dtype) / math.sqrt(z.shape[-1]) - u).detach()


BSQ_ALTERNATIVES = (_bsq_arithmetic, _bsq_rsqrt, _bsq_eps_in_denominator)


# ----------------------------------------------------------------------------- bitrate

BITRATE_MISTAKES = (
    Mistake("natural_log", lambda f, n, k: f * n * math.log(k),
            "a natural log: the bits per code are log2(codebook size)"),
    Mistake("base_10_log", lambda f, n, k: f * n * math.log10(k),
            "a base-10 log: the bits per code are log2(codebook size)"),
    Mistake("codebook_size", lambda f, n, k: f * n * k,
            "the codebook size itself: each code carries log2(codebook size) bits"),
    Mistake("no_quantizers", lambda f, n, k: f * math.log2(k),
            "n_quantizers is missing: every frame carries one code per quantizer"),
    Mistake("no_frame_rate", lambda f, n, k: n * math.log2(k),
            "frames_per_second is missing: the bits of one frame times the frames per second"),
    Mistake("bytes", lambda f, n, k: f * n * math.log2(k) / 8, "bytes per second: the exercise asks for bits"),
    Mistake("kilobits", lambda f, n, k: f * n * math.log2(k) / 1000,
            "kilobits per second: the exercise asks for bits per second"),
    Mistake("kibibits", lambda f, n, k: f * n * math.log2(k) / 1024,
            "kibibits per second: the exercise asks for bits per second"),
    Mistake("whole_bits_up", lambda f, n, k: f * n * math.ceil(math.log2(k)),
            "log2 rounded up (a whole number of bits): a code of K values carries log2(K) bits, not necessarily "
            "a whole number"),
    Mistake("whole_bits_down", lambda f, n, k: f * n * math.floor(math.log2(k)),
            "log2 rounded down (a whole number of bits): a code of K values carries log2(K) bits, not "
            "necessarily a whole number"),
    Mistake("integer_frame_rate", lambda f, n, k: int(f) * n * math.log2(k),
            "frames_per_second was rounded to an integer (12.5 frames/s is a real rate: Mimi's)"),
    Mistake("integer_result", lambda f, n, k: math.floor(f * n * math.log2(k)),
            "the result was rounded to an integer; return the float"),
)


def _br_log_base_2(frames_per_second, n_quantizers, codebook_size):
    return frames_per_second * n_quantizers * math.log(codebook_size, 2)


def _br_numpy(frames_per_second, n_quantizers, codebook_size):
    return np.log2(codebook_size) * n_quantizers * frames_per_second


BITRATE_ALTERNATIVES = (_br_log_base_2, _br_numpy)
