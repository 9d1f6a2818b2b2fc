"""Wrong answers to notebooks 02-03's exercises; tests/test_homework.py asserts each one is caught."""
import itertools
import math

import pytest
import torch

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
    u = z / z.norm(dim=0, keepdim=True)
    return u + (torch.where(u > 0, 1.0, -1.0) / math.sqrt(d) - u).detach()


# ----------------------------------------------------------------------------- bitrate

def br_natural_log(fps, nq, k):
    return fps * nq * math.log(k)


def br_codebook_size(fps, nq, k):
    return fps * nq * k


def br_forgets_quantizers(fps, nq, k):
    return fps * math.log2(k)


def br_bytes(fps, nq, k):
    return fps * nq * math.log2(k) / 8


WRONG_ANSWERS = {
    "tokens.nearest_code_ste": [ncs_no_ste, ncs_argmax, ncs_dot_product, ncs_wrong_sign, ncs_codebook_gets_grad],
    "tokens.vq_loss": [vq_beta_on_codebook, vq_no_detach, vq_commitment_only, vq_l1, vq_sum_not_mean, vq_after_ste],
    "tokens.residual_quantize": [rq_no_subtract, rq_same_codebook, rq_off_by_one, rq_last_level_only],
    "tokens.bsq": [bsq_no_normalise, bsq_no_scale, bsq_no_ste, bsq_ste_on_z, bsq_wrong_axis],
    "tokens.bitrate": [br_natural_log, br_codebook_size, br_forgets_quantizers, br_bytes],
}


def test_vq_loss_after_ste_message_names_the_gradient():
    r = run_check("tokens.vq_loss", vq_after_ste)
    assert r.status == "failed" and "gradient" in r.message


def test_nearest_code_without_ste_says_so():
    r = run_check("tokens.nearest_code_ste", ncs_no_ste)
    assert r.status == "failed" and "straight-through" in r.message


def _probe(fn, args):
    """Outputs and input gradients of ``fn`` on ``args`` (gradients of sum(w * first output))."""
    leaves = [a.clone().requires_grad_(True) if isinstance(a, torch.Tensor) and a.is_floating_point() else a
              for a in args]
    out = fn(*leaves)
    outs = out if isinstance(out, tuple) else (out,)
    grads = []
    if outs[0].requires_grad:
        w = torch.randn(outs[0].shape, generator=torch.Generator().manual_seed(9))
        grads = torch.autograd.grad((outs[0] * w).sum(), [a for a in leaves if isinstance(a, torch.Tensor)
                                                          and a.requires_grad], allow_unused=True)
    return [o.detach() for o in outs], [g for g in grads]


def _same(a, b):
    (va, ga), (vb, gb) = a, b
    close = lambda x, y: (x is None and y is None) or (x is not None and y is not None and x.shape == y.shape
                                                       and torch.allclose(x.float(), y.float(), atol=1e-6))
    return (len(va) == len(vb) and all(close(x, y) for x, y in zip(va, vb))
            and len(ga) == len(gb) and all(close(x, y) for x, y in zip(ga, gb)))


@pytest.mark.parametrize("name,args", [
    ("tokens.nearest_code_ste", (torch.randn(10, 3), torch.randn(6, 3))),
    ("tokens.vq_loss", (torch.randn(10, 3), torch.randn(10, 3), 0.25)),
    ("tokens.residual_quantize", (torch.randn(10, 3), torch.randn(4, 8, 3), 3)),
    ("tokens.bsq", (torch.randn(5, 4),)),
])
def test_wrong_answers_differ_in_substance(name, args):
    """No wrong answer is the reference, or another wrong answer, written differently: each one
    differs from all the others in a value or a gradient."""
    from course_lib.course.exercises import tokens as ref
    fns = [getattr(ref, name.split(".")[1])] + WRONG_ANSWERS[name]
    probes = [_probe(f, args) for f in fns]
    for (i, a), (j, b) in itertools.combinations(enumerate(probes), 2):
        assert not _same(a, b), f"{fns[i].__name__} and {fns[j].__name__} are the same answer"
