"""Wrong and correct answers to notebooks 02-03's exercises: each wrong one is caught with a message
that names its mistake; each correct one, written otherwise than the reference, passes.
tests/test_homework.py reads WRONG_ANSWERS too."""
import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course_lib.course import homework
from course_lib.course.homework import run_check


# ----------------------------------------------------------------------------- nearest_code_ste

def _codes(z, cb):
    return torch.cdist(z, cb).argmin(1)


def ncs_no_ste(z, cb):                  # returns the code itself: no gradient reaches z
    c = _codes(z, cb)
    return cb[c], c


def ncs_argmax(z, cb):                  # farthest code
    c = torch.cdist(z, cb).argmax(1)
    return z + (cb[c] - z).detach(), c


def ncs_dot_product(z, cb):             # forgets |e|^2: picks the code with the largest dot product
    c = (z @ cb.t()).argmax(1)
    return z + (cb[c] - z).detach(), c


def ncs_wrong_sign(z, cb):              # z - (z_q - z).detach(): wrong value
    c = _codes(z, cb)
    return z - (cb[c] - z).detach(), c


def ncs_codebook_gets_grad(z, cb):      # gradient flows into the codebook too
    c = _codes(z, cb)
    return cb[c] + (z - z.detach()), c


def ncs_overwrites_z(z, cb):            # "detach, then fill in the code": detach() shares z's memory
    c = _codes(z, cb)
    z_q = z.detach()
    z_q[:] = cb[c]
    return z + (z_q - z).detach(), c


def ncs_fp32_codebook(z, cb):           # casts the codebook to float32 "to compute in fp32", keeps it
    e = cb.detach().float()
    c = torch.cdist(z.float(), e).argmin(1)
    return z + (e[c] - z).detach(), c


def ncs_fixed_dim(z, cb):               # written for the notebook's 2-D points
    d = ((z.view(-1, 1, 2) - cb.view(1, -1, 2)) ** 2).sum(-1)
    c = d.argmin(1)
    return z + (cb[c] - z).detach(), c


def ncs_squeezed(z, cb):                # squeeze() also drops N when N = 1
    c = torch.cdist(z, cb).argmin(1, keepdim=True).squeeze()
    return z + (cb[c] - z).detach(), c


def ncs_int32_codes(z, cb):             # int32 codes
    c = _codes(z, cb).int()
    return z + (cb[c] - z).detach(), c


def ncs_one_hot_cpu(z, cb):             # one-hot rows of torch.eye(K), made on the CPU
    c = torch.cdist(z, cb).argmin(1)
    one_hot = torch.eye(cb.shape[0], dtype=cb.dtype)[c]
    return z + (one_hot @ cb - z).detach(), c


def ncs_l1(z, cb):                      # Manhattan distance
    c = (z[:, None] - cb[None]).abs().sum(-1).argmin(1)
    return z + (cb[c] - z).detach(), c


# ----------------------------------------------------------------------------- vq_loss

def vq_beta_on_codebook(z_e, z_q, beta=0.25):    # taming's legacy: beta on the wrong term
    return beta * (z_e.detach() - z_q).pow(2).mean() + (z_e - z_q.detach()).pow(2).mean()


def vq_no_detach(z_e, z_q, beta=0.25):           # both terms move both sides
    return (1 + beta) * (z_e - z_q).pow(2).mean()


def vq_commitment_only(z_e, z_q, beta=0.25):     # drops the codebook term: the codebook never learns
    return beta * (z_e - z_q.detach()).pow(2).mean()


def vq_l1(z_e, z_q, beta=0.25):                  # absolute instead of squared distances
    return (z_e.detach() - z_q).abs().mean() + beta * (z_e - z_q.detach()).abs().mean()


def vq_sum_not_mean(z_e, z_q, beta=0.25):        # sums over elements
    return (z_e.detach() - z_q).pow(2).sum() + beta * (z_e - z_q.detach()).pow(2).sum()


def vq_after_ste(z_e, z_q, beta=0.25):           # losses computed on the straight-through value
    z_st = z_e + (z_q - z_e).detach()
    return (z_e.detach() - z_st).pow(2).mean() + beta * (z_e - z_st.detach()).pow(2).mean()


def vq_item(z_e, z_q, beta=0.25):                # a Python float: nothing to call .backward() on
    return ((z_e.detach() - z_q).pow(2).mean() + beta * (z_e - z_q.detach()).pow(2).mean()).item()


def vq_no_grad(z_e, z_q, beta=0.25):             # "a loss needs no graph"
    with torch.no_grad():
        return (z_e - z_q).pow(2).mean() * (1 + beta)


def vq_shape_one(z_e, z_q, beta=0.25):           # an accumulator of shape (1,)
    loss = torch.zeros(1, dtype=z_e.dtype, device=z_e.device)
    loss = loss + (z_e.detach() - z_q).pow(2).mean()
    return loss + beta * (z_e - z_q.detach()).pow(2).mean()


def vq_in_place(z_e, z_q, beta=0.25):            # sg[z_e] - z_q computed in sg[z_e]'s memory, which is z_e's
    diff = z_e.detach()
    diff -= z_q
    return diff.pow(2).mean() + beta * (z_e - z_q.detach()).pow(2).mean()


def vq_float32(z_e, z_q, beta=0.25):             # "losses in fp32": float32 on float64 input
    codebook = (z_e.detach().float() - z_q.float()).pow(2).mean()
    return codebook + beta * (z_e.float() - z_q.detach().float()).pow(2).mean()


def vq_sum_over_d(z_e, z_q, beta=0.25):          # |z_e - z_q|^2 per vector, averaged over N only
    return ((z_e.detach() - z_q).pow(2).sum(-1).mean()
            + beta * (z_e - z_q.detach()).pow(2).sum(-1).mean())


def vq_zero_beta_means_default(z_e, z_q, beta=0.25):    # beta = 0 taken for "not given"
    beta = beta or 0.25
    return (z_e.detach() - z_q).pow(2).mean() + beta * (z_e - z_q.detach()).pow(2).mean()


def vq_default_beta_one(z_e, z_q, beta=1.0):     # another default than the exercise's 0.25
    return (z_e.detach() - z_q).pow(2).mean() + beta * (z_e - z_q.detach()).pow(2).mean()


def vq_weights_cpu(z_e, z_q, beta=0.25):        # a weighted sum with weights made on the CPU
    terms = torch.stack([(z_e.detach() - z_q).pow(2).mean(), (z_e - z_q.detach()).pow(2).mean()])
    weights = torch.tensor([1.0, beta], dtype=z_e.dtype)
    return (weights * terms).sum()


def vq_norm(z_e, z_q, beta=0.25):                # Euclidean norm per vector instead of squared distance
    return ((z_e.detach() - z_q).norm(dim=-1).mean() + beta * (z_e - z_q.detach()).norm(dim=-1).mean())


# ----------------------------------------------------------------------------- residual_quantize

def rq_no_subtract(z, books, n_q):               # every level quantizes z itself
    codes = [torch.cdist(z, books[i]).argmin(1) for i in range(n_q)]
    return sum(books[i][c] for i, c in enumerate(codes)), torch.stack(codes, 1)


def rq_same_codebook(z, books, n_q):             # reuses the first codebook at every level
    r, zh, codes = z, torch.zeros_like(z), []
    for _ in range(n_q):
        c = torch.cdist(r, books[0]).argmin(1)
        zh, r = zh + books[0][c], r - books[0][c]
        codes.append(c)
    return zh, torch.stack(codes, 1)


def rq_off_by_one(z, books, n_q):                # one level too few
    r, zh, codes = z, torch.zeros_like(z), []
    for i in range(max(n_q - 1, 1)):
        c = torch.cdist(r, books[i]).argmin(1)
        zh, r = zh + books[i][c], r - books[i][c]
        codes.append(c)
    return zh, torch.stack(codes, 1)


def rq_last_level_only(z, books, n_q):           # returns the last level's code, not the sum
    r, codes, q = z, [], None
    for i in range(n_q):
        c = torch.cdist(r, books[i]).argmin(1)
        q = books[i][c]
        r = r - q
        codes.append(c)
    return q, torch.stack(codes, 1)


def rq_in_place(z, books, n_q):                  # residual -= q on residual = z: the caller's z shrinks
    residual, z_hat, codes = z, torch.zeros_like(z), []
    for i in range(n_q):
        c = torch.cdist(residual, books[i]).argmin(1)
        z_hat = z_hat + books[i][c]
        residual -= books[i][c]
        codes.append(c)
    return z_hat, torch.stack(codes, 1)


def rq_float32_canvas(z, books, n_q):            # torch.zeros(shape) is float32 whatever z is
    residual, z_hat, codes = z, torch.zeros(z.shape), []
    for i in range(n_q):
        c = torch.cdist(residual, books[i]).argmin(1)
        z_hat += books[i][c]
        residual = residual - books[i][c]
        codes.append(c)
    return z_hat, torch.stack(codes, 1)


def rq_cpu_canvas(z, books, n_q):                # the right dtype, but made on the CPU
    residual, z_hat, codes = z, torch.zeros(z.shape, dtype=z.dtype), []
    for i in range(n_q):
        c = torch.cdist(residual, books[i]).argmin(1)
        z_hat, residual = z_hat + books[i][c], residual - books[i][c]
        codes.append(c)
    return z_hat, torch.stack(codes, 1)


def rq_all_levels(z, books, n_q):                # loops over every codebook, ignoring n_q
    residual, z_hat, codes = z, torch.zeros_like(z), []
    for cb in books:
        c = torch.cdist(residual, cb).argmin(1)
        z_hat, residual = z_hat + cb[c], residual - cb[c]
        codes.append(c)
    return z_hat, torch.stack(codes, 1)


def rq_squeezed(z, books, n_q):                  # squeeze() turns (N, 1) codes into (N,) when n_q = 1
    residual, z_hat, codes = z, torch.zeros_like(z), []
    for i in range(n_q):
        c = torch.cdist(residual, books[i]).argmin(1)
        z_hat, residual = z_hat + books[i][c], residual - books[i][c]
        codes.append(c)
    return z_hat, torch.stack(codes, 1).squeeze()


def rq_adds_residual(z, books, n_q):             # residual + q: the residual grows
    residual, z_hat, codes = z, torch.zeros_like(z), []
    for i in range(n_q):
        c = torch.cdist(residual, books[i]).argmin(1)
        z_hat, residual = z_hat + books[i][c], residual + books[i][c]
        codes.append(c)
    return z_hat, torch.stack(codes, 1)


def rq_returns_residual(z, books, n_q):          # returns what is left, not the reconstruction
    residual, codes = z, []
    for i in range(n_q):
        c = torch.cdist(residual, books[i]).argmin(1)
        residual = residual - books[i][c]
        codes.append(c)
    return residual, torch.stack(codes, 1)


# ----------------------------------------------------------------------------- bsq

def bsq_no_normalise(z):                         # LFQ: sign(z), norm sqrt(d)
    q = torch.where(z > 0, 1.0, -1.0)
    return z + (q - z).detach()


def bsq_no_scale(z):                             # forgets 1/sqrt(d)
    u = z / z.norm(dim=-1, keepdim=True)
    return u + (torch.where(u > 0, 1.0, -1.0) - u).detach()


def bsq_no_ste(z):                               # no gradient
    return torch.where(z > 0, 1.0, -1.0) / math.sqrt(z.shape[-1])


def bsq_ste_on_z(z):                             # STE around z instead of u: wrong gradient
    d = z.shape[-1]
    return z + (torch.where(z > 0, 1.0, -1.0) / math.sqrt(d) - z).detach()


def bsq_wrong_axis(z):                           # normalises along the first axis
    d = z.shape[-1]
    u = z / z.norm(dim=0, keepdim=True).clamp_min(1e-8)
    return u + (torch.where(u > 0, 1.0, -1.0).to(z.dtype) / math.sqrt(d) - u).detach()


def bsq_torch_sign(z):                           # torch.sign(0) = 0: off the sphere
    u = F.normalize(z, dim=-1)
    return u + (torch.sign(u) / math.sqrt(z.shape[-1]) - u).detach()


def bsq_zero_is_plus(z):                         # u >= 0: sign(0) = +1
    u = F.normalize(z, dim=-1)
    return u + (torch.where(u >= 0, 1.0, -1.0).to(z.dtype) / math.sqrt(z.shape[-1]) - u).detach()


def bsq_unclamped_norm(z):                       # z / |z| with |z| = 0 possible
    u = z / z.norm(dim=-1, keepdim=True)
    return u + (torch.where(u > 0, 1.0, -1.0).to(z.dtype) / math.sqrt(z.shape[-1]) - u).detach()


def bsq_in_place(z):                             # normalises the caller's z
    z /= z.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    return z + (torch.where(z > 0, 1.0, -1.0).to(z.dtype) / math.sqrt(z.shape[-1]) - z).detach()


def bsq_float32_code(z):                         # torch.where(..., 1.0, -1.0) is float32 whatever z is
    u = F.normalize(z, dim=-1)
    u_hat = torch.where(u > 0, 1.0, -1.0) / math.sqrt(z.shape[-1])
    return u + (u_hat - u).detach()


def bsq_ones_cpu(z):                             # torch.ones(shape) on the CPU for the two levels
    u = F.normalize(z, dim=-1)
    one = torch.ones(z.shape, dtype=z.dtype)
    u_hat = torch.where(u > 0, one, -one) / math.sqrt(z.shape[-1])
    return u + (u_hat - u).detach()


def bsq_d_from_axis_1(z):                        # d = z.shape[1]: right for (N, d) only
    d = z.shape[1] if z.dim() > 1 else z.shape[0]
    u = F.normalize(z, dim=-1)
    return u + (torch.where(u > 0, 1.0, -1.0).to(z.dtype) / math.sqrt(d) - u).detach()


# ----------------------------------------------------------------------------- bitrate

def br_natural_log(fps, nq, k):
    return fps * nq * math.log(k)


def br_codebook_size(fps, nq, k):
    return fps * nq * k


def br_forgets_quantizers(fps, nq, k):
    return fps * math.log2(k)


def br_bytes(fps, nq, k):
    return fps * nq * math.log2(k) / 8


def br_string(fps, nq, k):                      # formatted for printing
    return f"{fps * nq * math.log2(k):.1f}"


def br_whole_bits(fps, nq, k):                  # bits per code as an int: int.bit_length
    return float(fps * nq * ((k - 1).bit_length()))


def br_int_fps(fps, nq, k):                     # frames per second as an integer
    return float(int(fps) * nq * math.log2(k))


def br_kbps(fps, nq, k):                        # kilobits, as the notebook prints
    return fps * nq * math.log2(k) / 1000


def br_bool(fps, nq, k):                        # "is the rate positive?"
    return fps * nq * math.log2(k) > 0


# (function, a fragment its message must contain)
WRONG = {
    "tokens.nearest_code_ste": [
        (ncs_no_ste, "straight-through"),
        (ncs_argmax, "farthest code"),
        (ncs_dot_product, "dot product"),
        (ncs_wrong_sign, "sign inside the straight-through term is flipped"),
        (ncs_codebook_gets_grad, "the codebook received a gradient"),
        (ncs_overwrites_z, "changed its input `z` in place"),
        (ncs_fp32_codebook, "float32 precision"),
        (ncs_fixed_dim, "on z (12, 3), codebook (7, 3): your function raised RuntimeError"),
        (ncs_squeezed, "expected shape (1,), got ()"),
        (ncs_int32_codes, "returned dtype torch.int32; expected torch.int64"),
        (ncs_l1, "L1 distance"),
        (ncs_one_hot_cpu, "device=x.device"),
    ],
    "tokens.vq_loss": [
        (vq_beta_on_codebook, "beta weights the codebook term"),
        (vq_no_detach, "receives the gradient of both terms"),
        (vq_commitment_only, "the codebook term mean|sg[z_e] - z_q|^2 is missing"),
        (vq_l1, "absolute differences"),
        (vq_sum_not_mean, "a sum where the mean over all elements is wanted"),
        (vq_after_ste, "no gradient reaches the code z_q"),
        (vq_item, "expected a 0-d torch.Tensor"),
        (vq_no_grad, "the loss has no gradient"),
        (vq_shape_one, "expected a 0-d tensor (a scalar loss), got shape (1,)"),
        (vq_in_place, "changed its input `z_e` in place"),
        (vq_float32, "returned dtype torch.float32; expected torch.float64"),
        (vq_sum_over_d, "summed over D"),
        (vq_zero_beta_means_default, "beta=0"),
        (vq_default_beta_one, "the default of vq_loss is beta=0.25"),
        (vq_norm, "Euclidean norms"),
        (vq_weights_cpu, "device=x.device"),
    ],
    "tokens.residual_quantize": [
        (rq_no_subtract, "level 1 quantized z itself"),
        (rq_same_codebook, "level 1 used codebooks[0]"),
        (rq_off_by_one, "the loop runs n_q = 2 times, one column per level"),
        (rq_last_level_only, "the last level's code only"),
        (rq_in_place, "changed its input `z` in place"),
        (rq_float32_canvas, "returned dtype torch.float32; expected torch.float64"),
        (rq_all_levels, "use the first n_q = 1"),
        (rq_cpu_canvas, "device=x.device"),
        (rq_squeezed, "with n_q = 1, codes still has shape (N, 1)"),
        (rq_adds_residual, "the residual grew"),
        (rq_returns_residual, "the residual left over"),
    ],
    "tokens.bsq": [
        (bsq_no_normalise, "the 1/sqrt(d) is missing"),
        (bsq_no_scale, "the 1/sqrt(d) is missing"),
        (bsq_no_ste, "carries no gradient"),
        (bsq_ste_on_z, "your gradient is that of z itself"),
        (bsq_wrong_axis, "normalised over the last axis"),
        (bsq_torch_sign, "torch.sign(0) = 0"),
        (bsq_zero_is_plus, "sign(0) must be -1"),
        (bsq_unclamped_norm, "a vector of zeros"),
        (bsq_in_place, "changed its input `z` in place"),
        (bsq_float32_code, "float32 precision"),
        (bsq_d_from_axis_1, "d is the size of the last axis"),
        (bsq_ones_cpu, "device=x.device"),
    ],
    "tokens.bitrate": [
        (br_natural_log, "a natural log"),
        (br_codebook_size, "the codebook size itself"),
        (br_forgets_quantizers, "n_quantizers is missing"),
        (br_bytes, "bytes per second"),
        (br_string, "expected a number, got str"),
        (br_whole_bits, "log2 rounded up"),
        (br_int_fps, "rounded to an integer"),
        (br_kbps, "kilobits per second"),
        (br_bool, "expected a number, got bool"),
    ],
}
WRONG_ANSWERS = {name: [fn for fn, _ in pairs] for name, pairs in WRONG.items()}


# ----------------------------------------------------------------------------- correct answers

def ncs_direct_differences(z, codebook):         # distances by broadcasting, STE written as q + z - sg[z]
    codes = ((z[:, None, :] - codebook[None]) ** 2).sum(-1).argmin(-1)
    z_q = codebook.detach()[codes]
    return z_q + z - z.detach(), codes


def ncs_loop(z, codebook):                       # one vector at a time, torch.cdist and index_select
    codes = torch.stack([torch.cdist(z[i:i + 1].detach(), codebook.detach())[0].argmin() for i in range(len(z))])
    z_q = codebook.index_select(0, codes)
    return z + (z_q - z).detach(), codes


def vq_mse_loss(z_e, z_q, beta=0.25):            # F.mse_loss, terms in the other order
    return beta * F.mse_loss(z_e, z_q.detach()) + F.mse_loss(z_q, z_e.detach())


def vq_by_hand(z_e, z_q, beta=0.25):             # sums divided by the count
    n = z_e.numel()
    return ((z_q - z_e.detach()) ** 2).sum() / n + beta * ((z_e - z_q.detach()) ** 2).sum() / n


def rq_preallocated(z, codebooks, n_q):          # codes in a preallocated tensor, z_hat = z - residual
    codes = torch.empty(z.shape[0], n_q, dtype=torch.long, device=z.device)
    residual = z.clone()
    for i in range(n_q):
        k = torch.cdist(residual, codebooks[i]).argmin(1)
        codes[:, i] = k
        residual = residual - codebooks[i][k]
    return z - residual, codes


def rq_by_gather(z, codebooks, n_q):             # the sum of codes gathered at the end
    residual, codes = z, []
    for book in codebooks[:n_q]:
        k = ((residual[:, None] - book[None]) ** 2).sum(-1).argmin(1)
        residual = residual - book[k]
        codes.append(k)
    codes = torch.stack(codes, 1)
    z_hat = sum(codebooks[i][codes[:, i]] for i in range(n_q))
    return z_hat, codes


def bsq_normalize(z):                            # F.normalize and an arithmetic sign
    u = F.normalize(z, dim=-1)
    u_hat = (2 * (u > 0).to(z.dtype) - 1) / z.shape[-1] ** 0.5
    return u_hat + u - u.detach()


def bsq_rsqrt(z):                                # rsqrt of the clamped squared norm, sign from z
    u = z * torch.rsqrt(z.pow(2).sum(-1, keepdim=True).clamp_min(1e-16))
    u_hat = torch.where(z > 0, torch.ones_like(z), -torch.ones_like(z)) / math.sqrt(z.shape[-1])
    return u + (u_hat - u).detach()


def br_log_base_2(frames_per_second, n_quantizers, codebook_size):
    return frames_per_second * n_quantizers * math.log(codebook_size, 2)


def br_numpy(frames_per_second, n_quantizers, codebook_size):
    return np.log2(codebook_size) * n_quantizers * frames_per_second


CORRECT_ANSWERS = {
    "tokens.nearest_code_ste": [ncs_direct_differences, ncs_loop],
    "tokens.vq_loss": [vq_mse_loss, vq_by_hand],
    "tokens.residual_quantize": [rq_preallocated, rq_by_gather],
    "tokens.bsq": [bsq_normalize, bsq_rsqrt],
    "tokens.bitrate": [br_log_base_2, br_numpy],
}


def test_every_exercise_has_five_wrong_and_one_correct_answer():
    names = {ex.name for ex in homework.registry().values() if ex.name.startswith("tokens.")}
    assert set(WRONG) == names and set(CORRECT_ANSWERS) == names
    assert all(len(WRONG[n]) >= 5 and len(CORRECT_ANSWERS[n]) >= 1 for n in names)


def test_half_written_residual_quantize_says_which_part_works():
    def only_one_level(z, codebooks, n_q):
        if n_q > 1:
            raise NotImplementedError()
        k = torch.cdist(z, codebooks[0]).argmin(1)
        return codebooks[0][k], k[:, None]
    r = run_check("tokens.residual_quantize", only_one_level)
    assert r.status == "not attempted" and "works on" in r.message, r


def test_vq_loss_after_ste_message_names_the_gradient():
    r = run_check("tokens.vq_loss", vq_after_ste)
    assert r.status == "failed" and "gradient" in r.message


def test_nearest_code_without_ste_says_so():
    r = run_check("tokens.nearest_code_ste", ncs_no_ste)
    assert r.status == "failed" and "straight-through" in r.message


def test_a_correct_answer_passes_every_check():
    # how long each check takes is measured by `python -m course_lib.bench checks`, not asserted here
    for name in WRONG:
        assert run_check(name, CORRECT_ANSWERS[name][0]).status == "passed", name


def _probe(fn, args):
    """Outputs and input gradients of ``fn`` on ``args`` (gradients of sum(w * first output))."""
    leaves = [a.clone().requires_grad_(True) if isinstance(a, torch.Tensor) and a.is_floating_point() else a
              for a in args]
    try:
        out = fn(*leaves)
    except Exception as e:                        # e.g. a size-specific answer on these sizes
        return [type(e).__name__], []
    outs = out if isinstance(out, tuple) else (out,)
    grads = []
    if isinstance(outs[0], torch.Tensor) and outs[0].requires_grad:
        w = torch.randn(outs[0].shape, generator=torch.Generator().manual_seed(9))
        grads = torch.autograd.grad((outs[0] * w).sum(), [a for a in leaves if isinstance(a, torch.Tensor)
                                                          and a.requires_grad], allow_unused=True)
    return [o.detach() if isinstance(o, torch.Tensor) else torch.tensor(float(o)) for o in outs], list(grads)


def _same(a, b):
    (va, ga), (vb, gb) = a, b
    if any(isinstance(x, str) for x in va + vb):
        return va == vb
    close = lambda x, y: (x is None and y is None) or (x is not None and y is not None and x.shape == y.shape  # noqa: E731
                                                       and x.dtype == y.dtype
                                                       and torch.allclose(x.double(), y.double(), atol=1e-6))
    return (len(va) == len(vb) and all(close(x, y) for x, y in zip(va, vb))
            and len(ga) == len(gb) and all(close(x, y) for x, y in zip(ga, gb)))


@pytest.mark.parametrize("name,args", [
    ("tokens.nearest_code_ste", (torch.randn(10, 3), torch.randn(6, 3))),
    ("tokens.vq_loss", (torch.randn(10, 3), torch.randn(10, 3), 0.25)),
    ("tokens.residual_quantize", (torch.randn(10, 3), torch.randn(4, 8, 3), 3)),
    ("tokens.bsq", (torch.randn(5, 4),)),
])
def test_wrong_answers_differ_in_substance(name, args):
    """No two wrong answers are one mistake written twice: those caught with different messages
    differ in what the check saw; those caught with the same message must differ in a value or a
    gradient on the inputs above. (None can be the reference rewritten: each one is caught.)"""
    by_fragment = {}
    for fn, fragment in WRONG[name]:
        by_fragment.setdefault(fragment, []).append(fn)
    assert len({fn for fn, _ in WRONG[name]}) == len(WRONG[name])
    for fns in by_fragment.values():
        probes = [_probe(f, args) for f in fns]
        for (i, a), (j, b) in itertools.combinations(enumerate(probes), 2):
            assert not _same(a, b), f"{fns[i].__name__} and {fns[j].__name__} are the same answer"
