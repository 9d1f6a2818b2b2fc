"""Wrong and correct answers to notebook 01's exercises.

The known mistakes and correct alternatives live once, in course_lib/course/exercises/pixels_mistakes.py:
known_mistake_tests submits each mistake (caught with its own message) and each alternative (passes).
``WRONG`` holds the wrong answers that are not named mistakes but kinds the checks catch (an input
changed in place, a dtype, a device, a canvas in the wrong order, no gradient, a size the small cases
miss), and mistakes written otherwise than in the list, which must still be named; each must fail with
the fragment given. tests/test_homework.py reads WRONG, WRONG_ANSWERS and CORRECT_ANSWERS.
"""
import math

import numpy as np
import torch
import torch.nn.functional as F

from course_lib.course import homework
from course_lib.course.exercises import pixels
from tests.mistakes import known_mistake_tests

test_known_mistake_named, test_correct_alternative_passes = known_mistake_tests(pixels)

LN2 = math.log(2)


# ----------------------------------------------------------------------------- causal_mask











def mask_numpy(k, mask_type="A"):                   # built with NumPy: float64
    m = np.ones((k, k))
    c = k // 2
    m[c, c + (mask_type == "B"):] = 0
    m[c + 1:] = 0
    return torch.from_numpy(m)






def mask_conv_shaped(k, mask_type="A"):             # shaped like a conv weight (1, 1, k, k)
    m = torch.ones(1, 1, k, k)
    c = k // 2
    m[..., c, c + (mask_type == "B"):] = 0
    m[..., c + 1:, :] = 0
    return m


# ----------------------------------------------------------------------------- mu-law encode

def _f(x, mu):
    return torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)


def enc_no_clip(x, mu=255):
    f = torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)
    return torch.floor((f + 1) / 2 * mu + 0.5).long()












def enc_linear_by_bucketize(x, mu=255):             # the linear-levels mistake written otherwise
    edges = (torch.arange(mu, dtype=x.dtype) + 0.5) / mu * 2 - 1
    return torch.bucketize(x.clamp(-1, 1), edges, right=True)


def enc_clamps_in_place(x, mu=255):                  # clips the caller's wave
    x.clamp_(-1, 1)
    return torch.floor((_f(x, mu) + 1) / 2 * mu + 0.5).long()


def enc_int32(x, mu=255):                            # .int() is int32
    return torch.floor((_f(x.clamp(-1, 1), mu) + 1) / 2 * mu + 0.5).int()






def enc_cpu_edges(x, mu=255):                        # counts the bin edges below f; edges made on the CPU
    edges = (2 * torch.arange(1, mu + 1) - 1) / mu - 1
    return (_f(x.clamp(-1, 1), mu)[..., None] >= edges).sum(-1)


# ----------------------------------------------------------------------------- mu-law decode

def _x(f, mu):
    return torch.sign(f) * (torch.pow(1.0 + mu, f.abs()) - 1) / mu












def dec_table_for_255(q, mu=255):                   # the mu written in, as a table
    return _x(torch.linspace(-1, 1, 256), 255)[q]


def dec_in_place(q, mu=255):                         # centres the caller's levels: 2q - mu
    q.mul_(2).sub_(mu)
    return _x(q.float() / mu, mu)


def dec_float64(q, mu=255):                          # "double for precision"
    return _x(2 * q.double() / mu - 1, mu)


def dec_integer_centre(q, mu=255):                   # the middle level as mu // 2: the top level decodes above 1
    f = (q - mu // 2).float() / (mu // 2)
    return _x(f, mu)


def dec_cpu_table(q, mu=255):                        # a lookup table made on the CPU
    table = _x(2 * torch.arange(mu + 1).float() / mu - 1, mu)
    return table[q]


# ----------------------------------------------------------------------------- raster_sample

def _draw(logits, temperature, generator):
    probs = torch.softmax(logits.float() / temperature, -1)
    return torch.multinomial(probs.cpu(), 1, generator=generator)[:, 0].to(logits.device)


def sample_column_order(logits_fn, n, height, width, temperature=1.0, generator=None, device=None):
    x = torch.zeros(n, 1, height, width, dtype=torch.long, device=device)
    for j in range(width):
        for i in range(height):
            x[:, 0, i, j] = _draw(logits_fn(x)[:, :, i, j], temperature, generator)
    return x


def sample_times_temperature(logits_fn, n, height, width, temperature=1.0, generator=None, device=None):
    x = torch.zeros(n, 1, height, width, dtype=torch.long, device=device)
    for i in range(height):
        for j in range(width):
            x[:, 0, i, j] = _draw(logits_fn(x)[:, :, i, j] * temperature * temperature, temperature,
                                  generator)
    return x


def sample_one_pass(logits_fn, n, height, width, temperature=1.0, generator=None, device=None):
    x = torch.zeros(n, 1, height, width, dtype=torch.long, device=device)
    logits = logits_fn(x)                                # every pixel from the empty canvas
    for i in range(height):
        for j in range(width):
            x[:, 0, i, j] = _draw(logits[:, :, i, j], temperature, generator)
    return x


def sample_no_write_back(logits_fn, n, height, width, temperature=1.0, generator=None, device=None):
    x = torch.zeros(n, 1, height, width, dtype=torch.long, device=device)
    out = x.clone()
    for i in range(height):
        for j in range(width):
            out[:, 0, i, j] = _draw(logits_fn(x)[:, :, i, j], temperature, generator)
    return out


def sample_argmax(logits_fn, n, height, width, temperature=1.0, generator=None, device=None):
    x = torch.zeros(n, 1, height, width, dtype=torch.long, device=device)
    for i in range(height):
        for j in range(width):
            x[:, 0, i, j] = logits_fn(x)[:, :, i, j].argmax(-1)
    return x


def sample_float_canvas(logits_fn, n, height, width, temperature=1.0, generator=None, device=None):
    x = torch.zeros(n, 1, height, width, device=device)      # float32 canvas
    for i in range(height):
        for j in range(width):
            x[:, 0, i, j] = _draw(logits_fn(x)[:, :, i, j], temperature, generator).float()
    return x


def sample_fixed_8x8(logits_fn, n, height, width, temperature=1.0, generator=None, device=None):
    x = torch.zeros(n, 1, 8, 8, dtype=torch.long, device=device)   # the digits' size, written in
    for i in range(height):
        for j in range(width):
            x[:, 0, i, j] = _draw(logits_fn(x)[:, :, i, j], temperature, generator)
    return x[:, :, :height, :width]


def sample_global_rng(logits_fn, n, height, width, temperature=1.0, generator=None, device=None):
    x = torch.zeros(n, 1, height, width, dtype=torch.long, device=device)
    for i in range(height):
        for j in range(width):
            probs = torch.softmax(logits_fn(x)[:, :, i, j] / temperature, -1)
            x[:, 0, i, j] = torch.multinomial(probs, 1)[:, 0]          # generator forgotten
    return x


def sample_ignores_device(logits_fn, n, height, width, temperature=1.0, generator=None, device=None):
    x = torch.zeros(n, 1, height, width, dtype=torch.long)            # always on the CPU
    for i in range(height):
        for j in range(width):
            x[:, 0, i, j] = _draw(logits_fn(x)[:, :, i, j], temperature, generator)
    return x


def sample_naive_softmax(logits_fn, n, height, width, temperature=1.0, generator=None, device=None):
    x = torch.zeros(n, 1, height, width, dtype=torch.long, device=device)
    for i in range(height):
        for j in range(width):
            e = torch.exp(logits_fn(x)[:, :, i, j] / temperature)      # overflows at low temperature
            probs = e / e.sum(-1, keepdim=True)
            x[:, 0, i, j] = torch.multinomial(probs.cpu(), 1, generator=generator)[:, 0]
    return x


def sample_power_temperature(logits_fn, n, height, width, temperature=1.0, generator=None, device=None):
    x = torch.zeros(n, 1, height, width, dtype=torch.long, device=device)
    for i in range(height):
        for j in range(width):
            probs = torch.softmax(logits_fn(x)[:, :, i, j], -1) ** (1 / temperature)   # underflows at low T
            x[:, 0, i, j] = torch.multinomial(probs.cpu(), 1, generator=generator)[:, 0]
    return x


def sample_skips_last_column(logits_fn, n, height, width, temperature=1.0, generator=None, device=None):
    x = torch.zeros(n, 1, height, width, dtype=torch.long, device=device)
    for i in range(height):
        for j in range(width - 1):
            x[:, 0, i, j] = _draw(logits_fn(x)[:, :, i, j], temperature, generator)
    return x


# ----------------------------------------------------------------------------- bits_per_dim







def bpd_probabilities(logits, targets):                # averages -p instead of -log p
    p = torch.softmax(logits, 1).gather(1, targets[:, None])
    return -p.mean() + math.log2(logits.shape[1]) + 1 / logits.shape[1]




def bpd_mean_in_nats(logits, targets):                  # the nats mistake written otherwise
    return F.nll_loss(F.log_softmax(logits, 1), targets)


def bpd_item(logits, targets):                          # a Python float
    return (F.cross_entropy(logits, targets, reduction="sum") / (targets.numel() * LN2)).item()


def bpd_no_grad(logits, targets):                       # computed without a graph
    with torch.no_grad():
        return F.cross_entropy(logits, targets, reduction="sum") / (targets.numel() * LN2)


def bpd_shape_1(logits, targets):                       # sums over every dim but the kept channel one: (1,)
    logp = torch.log_softmax(logits, 1).gather(1, targets.unsqueeze(1))     # (N, 1, *dims)
    dims = [0] + list(range(2, logp.dim()))
    return -logp.sum(dim=dims) / (targets.numel() * LN2)


def bpd_in_place(logits, targets):                      # "stabilises" the caller's logits
    logits -= logits.max(dim=1, keepdim=True).values
    return F.cross_entropy(logits, targets, reduction="sum") / (targets.numel() * LN2)


def bpd_naive_log_softmax(logits, targets):             # log(exp / sum): inf for a confident mistake
    p = torch.exp(logits) / torch.exp(logits).sum(1, keepdim=True)
    return -torch.log(p.gather(1, targets.unsqueeze(1))).sum() / (targets.numel() * LN2)




def bpd_double(logits, targets):                        # float64 "for precision", whatever the logits
    return F.cross_entropy(logits.double(), targets, reduction="sum") / (targets.numel() * LN2)


def bpd_images_only(logits, targets):                   # assumes (N, K, H, W)
    n, k, h, w = logits.shape
    flat = logits.permute(0, 2, 3, 1).reshape(-1, k)
    return F.cross_entropy(flat, targets.reshape(-1), reduction="sum") / (n * h * w * LN2)


def bpd_cpu_one_hot(logits, targets):                   # the one-hot table made on the CPU
    k = logits.shape[1]
    onehot = torch.eye(k)[targets].movedim(-1, 1)                       # (N, K, *dims)
    return -(onehot * torch.log_softmax(logits, 1)).sum() / (targets.numel() * LN2)


WRONG = {
    "pixels.causal_mask": [
        (mask_numpy, "returned dtype torch.float64; expected torch.float32"),
        (mask_conv_shaped, "expected shape (3, 3), got (1, 1, 3, 3)"),
    ],
    "pixels.mu_law_encode": [
        (enc_no_clip, "must be clipped"),
        (enc_linear_by_bucketize, "these are linear levels"),
        (enc_clamps_in_place, "changed its input `x` in place"),
        (enc_int32, "returned dtype torch.int32; expected torch.int64"),
        (enc_cpu_edges, "a tensor it made on another device"),
    ],
    "pixels.mu_law_decode": [
        (dec_in_place, "changed its input `q` in place"),
        (dec_table_for_255, "these are the values for mu = 255"),
        (dec_float64, "returned dtype torch.float64; expected torch.float32"),
        (dec_integer_centre, "outside [-1, 1]"),
        (dec_cpu_table, ("returned a tensor on cpu", "a tensor it made on another device")),   # meta / GPU
    ],
    "pixels.raster_sample": [
        (sample_column_order, "which comes later"),
        (sample_times_temperature, "divide them by the temperature"),
        (sample_one_pass, "needs 12 calls of logits_fn, one per pixel, got 1"),
        (sample_no_write_back, "write each drawn value into the canvas"),
        (sample_argmax, "every image got the same value"),
        (sample_float_canvas, "canvas of dtype torch.float32"),
        (sample_fixed_8x8, "canvas of shape (2, 1, 8, 8)"),
        (sample_global_rng, "seeded the same gave other images"),
        (sample_ignores_device, "canvas on cpu"),
        (sample_naive_softmax, "subtracts the maximum"),
        (sample_power_temperature, "subtracts the maximum"),
        (sample_skips_last_column, "pixel (0, 3) was still 0"),
    ],
    "pixels.bits_per_dim": [
        (bpd_probabilities, "on uniform logits (4, 17, 8, 8): the gradient with respect to logits"),
        (bpd_item, "did you call .item()"),
        (bpd_mean_in_nats, "a factor ln 2: the NLL is in nats"),
        (bpd_no_grad, "the loss has no gradient"),
        (bpd_shape_1, "expected a 0-d tensor"),
        (bpd_in_place, "changed its input `logits` in place"),
        (bpd_naive_log_softmax, "exp(...) overflows"),
        (bpd_double, "returned dtype torch.float64; expected torch.float32"),
        (bpd_images_only, "audio targets (2, 100): your function raised"),
        (bpd_cpu_one_hot, "a tensor it made on another device"),
    ],
}
WRONG_ANSWERS = {name: [fn for fn, _ in pairs] for name, pairs in WRONG.items()}
# The device mistakes (enc_cpu_edges, dec_cpu_table, sample_ignores_device, bpd_cpu_one_hot) are caught
# on the meta device without a GPU, on the GPU with one; a fragment tuple lists the message of each.


# ----------------------------------------------------------------------------- correct, written otherwise















def sample_row_by_row(logits_fn, n, height, width, temperature=1.0, generator=None, device=None):
    x = torch.zeros((n, 1, height, width), dtype=torch.int64, device=device)
    for p in range(height * width):                     # one loop over raster positions
        i, j = divmod(p, width)
        probs = F.softmax(logits_fn(x)[..., i, j] / temperature, dim=1).cpu()
        for b in range(n):                              # one draw per image
            x[b, 0, i, j] = torch.multinomial(probs[b], 1, generator=generator).item()
    return x


def sample_gumbel(logits_fn, n, height, width, temperature=1.0, generator=None, device=None):
    x = torch.zeros(n, 1, height, width, dtype=torch.long, device=device)
    for i in range(height):
        for j in range(width):
            logits = logits_fn(x)[:, :, i, j]
            u = torch.rand(logits.shape, generator=generator).clamp_min(1e-20).to(logits.device)
            x[:, 0, i, j] = (logits / temperature - torch.log(-torch.log(u))).argmax(-1)
    return x


def sample_inverse_cdf(logits_fn, n, height, width, temperature=1.0, generator=None, device=None):
    x = torch.zeros(n, 1, height, width, dtype=torch.long, device=device)
    with torch.no_grad():
        for i in range(height):
            for j in range(width):
                probs = torch.softmax(logits_fn(x)[:, :, i, j].double() / temperature, -1).cpu()
                u = torch.rand(n, 1, generator=generator, dtype=torch.float64)
                idx = (probs.cumsum(-1) < u).sum(-1).clamp_max(probs.shape[-1] - 1)
                x[:, 0, i, j] = idx.to(x.device)
    return x








CORRECT_ANSWERS = {"pixels.raster_sample": [sample_row_by_row, sample_gumbel, sample_inverse_cdf]}
# the other exercises' correct alternatives are Exercise.alternatives (pixels_mistakes.py)


def test_messages_name_the_problem():
    m = {ex.name: {k.name: k for k in ex.mistakes} for ex in pixels.EXERCISES}
    r = homework.run_check("pixels.causal_mask", m["pixels.causal_mask"]["type_b_for_a"].impl)
    assert "type A for a 3x3 kernel" in r.message and "index (1, 1)" in r.message, r.message
    r = homework.run_check("pixels.mu_law_encode", m["pixels.mu_law_encode"]["not_clipped"].impl)
    assert "outside [-1, 1]" in r.message, r.message
    r = homework.run_check("pixels.raster_sample", sample_times_temperature)
    assert "temperature 1e-4" in r.message, r.message
    r = homework.run_check("pixels.bits_per_dim", m["pixels.bits_per_dim"]["nats"].impl)
    assert "log2(17)" in r.message and "4 images or clips, 256 targets" in r.message, r.message


def test_half_written_mask_says_type_a_works():
    def only_a(k, mask_type="A"):
        if mask_type == "B":
            raise NotImplementedError()
        return pixels.EXERCISES[0].alternatives[0](k, "A")
    r = homework.run_check("pixels.causal_mask", only_a)
    assert r.status == "not attempted", r
    assert "works on mask type A for a 3x3 kernel" in r.message and "type B" in r.message, r.message


# how long each check takes: `python -m course_lib.bench checks` (measured there, not asserted here)
