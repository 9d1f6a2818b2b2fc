"""Wrong and correct answers to notebooks 02-03's exercises.

The known mistakes and the correct alternatives live once, in course_lib/course/exercises/tokens_mistakes.py:
known_mistake_tests submits each mistake (caught with its own message) and each alternative (passes).
``WRONG`` holds the wrong answers that are not named mistakes but kinds the checks catch (an input
changed in place, a dtype, a device, no gradient, float32 precision, a size the small cases miss):
each must fail with the fragment given. tests/test_homework.py reads WRONG and WRONG_ANSWERS too.
"""
import math

import torch
import torch.nn.functional as F

from course_lib.course.exercises import tokens
from course_lib.course.homework import run_check
from tests.mistakes import known_mistake_tests

test_known_mistake_named, test_correct_alternative_passes = known_mistake_tests(tokens)


# ----------------------------------------------------------------------------- nearest_code_ste

def _codes(z, cb):
    return torch.cdist(z, cb).argmin(1)


def ncs_no_ste(z, cb):                  # returns the code itself: no gradient reaches z
    c = _codes(z, cb)
    return cb[c], c


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


def ncs_chunks_lose_the_tail(z, cb):    # "in chunks of 1024 to save memory": the last partial chunk is lost
    if len(z) <= 1024:
        c = _codes(z, cb)
    else:
        c = torch.zeros(len(z), dtype=torch.long)
        for i in range(0, len(z) // 1024 * 1024, 1024):
            c[i:i + 1024] = _codes(z[i:i + 1024], cb)
    return z + (cb[c] - z).detach(), c


def ncs_dot_product_rewritten(z, cb):   # the dot-product mistake written otherwise: still named
    scores = torch.einsum("nd,kd->nk", z.detach(), cb.detach())
    c = scores.max(dim=1).indices
    return cb[c] + z - z.detach(), c


# ----------------------------------------------------------------------------- vq_loss

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


def vq_weights_cpu(z_e, z_q, beta=0.25):        # a weighted sum with weights made on the CPU
    terms = torch.stack([(z_e.detach() - z_q).pow(2).mean(), (z_e - z_q.detach()).pow(2).mean()])
    weights = torch.tensor([1.0, beta], dtype=z_e.dtype)
    return (weights * terms).sum()


def vq_mse_swapped_detach(z_e, z_q, beta=0.25):  # the no-stop-gradient mistake written with F.mse_loss
    return F.mse_loss(z_e, z_q) * (1 + beta)


# ----------------------------------------------------------------------------- residual_quantize

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


def rq_at_most_four_levels(z, books, n_q):       # "the notebook has 4 levels": right up to n_q = 4
    residual, z_hat, codes = z, torch.zeros_like(z), []
    for i in range(min(n_q, 4)):
        c = torch.cdist(residual, books[i]).argmin(1)
        z_hat, residual = z_hat + books[i][c], residual - books[i][c]
        codes.append(c)
    codes += [codes[-1]] * (n_q - len(codes))
    return z_hat, torch.stack(codes, 1)


def rq_no_subtract_in_a_comprehension(z, books, n_q):    # the "quantizes z" mistake written otherwise
    codes = [torch.cdist(z, books[i]).argmin(1) for i in range(n_q)]
    return sum(books[i][c] for i, c in enumerate(codes)), torch.stack(codes, 1)


# ----------------------------------------------------------------------------- bsq

def bsq_no_normalise(z):                         # LFQ: sign(z), norm sqrt(d): the values of a missing 1/sqrt(d)
    q = torch.where(z > 0, 1.0, -1.0)
    return z + (q - z).detach()


def bsq_no_ste(z):                               # no gradient
    return torch.where(z > 0, 1.0, -1.0) / math.sqrt(z.shape[-1])


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


def bsq_squared_norm_underflows(z):              # z / sqrt(sum z^2), zero rows guarded, short vectors not
    n2 = (z * z).sum(-1, keepdim=True)
    u = torch.where(n2 == 0, torch.zeros_like(z), z) / torch.where((z == 0).all(-1, keepdim=True), 1.0, n2.sqrt())
    return u + (torch.where(u > 0, 1.0, -1.0).to(z.dtype) / math.sqrt(z.shape[-1]) - u).detach()


# ----------------------------------------------------------------------------- bitrate

def br_string(fps, nq, k):                      # formatted for printing
    return f"{fps * nq * math.log2(k):.1f}"


def br_whole_bits(fps, nq, k):                  # bits per code as an int: int.bit_length (= log2 rounded up)
    return float(fps * nq * ((k - 1).bit_length()))


def br_bool(fps, nq, k):                        # "is the rate positive?"
    return fps * nq * math.log2(k) > 0


def br_tensor_kbps(fps, nq, k):                 # a kilobit tensor: still named as kilobits
    return torch.tensor(fps * nq * math.log2(k) / 1000, dtype=torch.float64)


# (function, a fragment its message must contain)
WRONG = {
    "tokens.nearest_code_ste": [
        (ncs_no_ste, "straight-through"),
        (ncs_codebook_gets_grad, "the codebook received a gradient"),
        (ncs_overwrites_z, "changed its input `z` in place"),
        (ncs_fp32_codebook, "float32 precision"),
        (ncs_fixed_dim, "on z (12, 3), codebook (7, 3): your function raised RuntimeError"),
        (ncs_squeezed, "expected shape (1,), got ()"),
        (ncs_int32_codes, "returned dtype torch.int32; expected torch.int64"),
        (ncs_one_hot_cpu, "device=x.device"),
        (ncs_chunks_lose_the_tail, "beyond the notebook's sizes, z (5000, 2), codebook (40, 2), codes: value at index"),
        (ncs_dot_product_rewritten, "your codes maximise the dot product"),
    ],
    "tokens.vq_loss": [
        (vq_item, "expected a 0-d torch.Tensor"),
        (vq_no_grad, "the loss has no gradient"),
        (vq_shape_one, "expected a 0-d tensor (a scalar loss), got shape (1,)"),
        (vq_in_place, "changed its input `z_e` in place"),
        (vq_float32, "returned dtype torch.float32; expected torch.float64"),
        (vq_weights_cpu, "device=x.device"),
        (vq_mse_swapped_detach, "no stop-gradient: z_e and z_q each receive the gradient of both terms"),
    ],
    "tokens.residual_quantize": [
        (rq_in_place, "changed its input `z` in place"),
        (rq_float32_canvas, "returned dtype torch.float32; expected torch.float64"),
        (rq_cpu_canvas, "device=x.device"),
        (rq_at_most_four_levels, "z (5000, 2), 6 codebooks of 12 codes, n_q=6, the codes of level 4"),
        (rq_no_subtract_in_a_comprehension, "every level quantized z itself"),
    ],
    "tokens.bsq": [
        (bsq_no_normalise, "the 1/sqrt(d) is missing"),
        (bsq_no_ste, "carries no gradient"),
        (bsq_in_place, "changed its input `z` in place"),
        (bsq_float32_code, "float32 precision"),
        (bsq_ones_cpu, "device=x.device"),
        (bsq_squared_norm_underflows, "underflows to 0 in float32"),
    ],
    "tokens.bitrate": [
        (br_string, "expected a number, got str"),
        (br_whole_bits, "log2 rounded up"),
        (br_bool, "expected a number, got bool"),
        (br_tensor_kbps, "kilobits per second"),
    ],
}
WRONG_ANSWERS = {name: [fn for fn, _ in pairs] for name, pairs in WRONG.items()}
CORRECT_ANSWERS = {}                             # the alternatives are Exercise.alternatives


def test_half_written_residual_quantize_says_which_part_works():
    def only_one_level(z, codebooks, n_q):
        if n_q > 1:
            raise NotImplementedError()
        k = torch.cdist(z, codebooks[0]).argmin(1)
        return codebooks[0][k], k[:, None]
    r = run_check("tokens.residual_quantize", only_one_level)
    assert r.status == "not attempted" and "works on" in r.message, r


def test_a_tie_may_go_either_way():
    """Codes at the same distance are both right: breaking ties towards the last code passes."""
    def last_of_ties(z, codebook):
        d = ((z[:, None] - codebook[None]) ** 2).sum(-1).detach()
        codes = codebook.shape[0] - 1 - d.flip(1).argmin(1)
        return z + (codebook[codes] - z).detach(), codes
    assert run_check("tokens.nearest_code_ste", last_of_ties).status == "passed"


def test_a_mistake_with_another_bug_on_top_is_not_named_but_still_caught_with_values():
    """A farthest-code answer whose z_q_st is also wrong reproduces no known mistake: the message gives
    the first wrong value, the input and the expected value, and names no mistake it did not make."""
    def farthest_and_zero(z, cb):
        c = torch.cdist(z, cb).argmax(1)
        return torch.zeros_like(z), c
    r = run_check("tokens.nearest_code_ste", farthest_and_zero)
    assert r.status == "failed" and "on z (12, 3), codebook (7, 3), codes: value at index" in r.message
    assert "expected" in r.message and "farthest" not in r.message, r.message


def test_vq_gradient_only_mistake_is_named_by_its_gradient():
    """Same value as the reference, wrong stop-gradient: named for the gradient, not the value."""
    def swapped(z_e, z_q, beta=0.25):
        return (z_e - z_q.detach()).pow(2).mean() + beta * (z_e.detach() - z_q).pow(2).mean()
    r = run_check("tokens.vq_loss", swapped)
    assert r.status == "failed" and "gradient with respect to" in r.message and "beta weights" in r.message, r.message
