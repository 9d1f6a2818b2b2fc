"""Wrong and correct answers to notebook 01's exercises: each wrong one is caught with a message that
names its mistake; each correct one, written otherwise than the reference, passes.
tests/test_homework.py reads WRONG_ANSWERS too."""
import math

import numpy as np
import torch
import torch.nn.functional as F

from course_lib.course import homework

LN2 = math.log(2)


# ----------------------------------------------------------------------------- causal_mask

def mask_a_keeps_centre(k, mask_type="A"):          # type A and B identical (centre always kept)
    m = torch.ones(k, k)
    m[k // 2, k // 2 + 1:] = 0
    m[k // 2 + 1:] = 0
    return m


def mask_b_hides_centre(k, mask_type="A"):          # type B identical to A
    m = torch.ones(k, k)
    m[k // 2, k // 2:] = 0
    m[k // 2 + 1:] = 0
    return m


def mask_transposed(k, mask_type="A"):              # column order instead of raster order
    m = torch.ones(k, k)
    c = k // 2
    m[c + (mask_type == "B"):, c] = 0
    m[:, c + 1:] = 0
    return m


def mask_keeps_below(k, mask_type="A"):             # masks the wrong half (rows above zeroed)
    m = torch.ones(k, k)
    c = k // 2
    m[c, :c + (mask_type == "B")] = 0
    m[:c] = 0
    return m


def mask_whole_centre_row(k, mask_type="A"):        # forgets the pixels right of the centre
    m = torch.ones(k, k)
    c = k // 2
    m[c + 1:] = 0
    if mask_type == "A":
        m[c, c] = 0
    return m


def mask_numpy(k, mask_type="A"):                   # built with NumPy: float64
    m = np.ones((k, k))
    c = k // 2
    m[c, c + (mask_type == "B"):] = 0
    m[c + 1:] = 0
    return torch.from_numpy(m)


def mask_centre_at_1(k, mask_type="A"):             # the centre of a 3x3 kernel, whatever k
    m = torch.ones(k, k)
    m[1, 1 + (mask_type == "B"):] = 0
    m[2:] = 0
    return m


def mask_negative_index(k, mask_type="A"):          # "the last c pixels of the centre row": for k = 1, -0: is all
    m = torch.ones(k, k)
    c = k // 2
    m[c + 1:] = 0
    m[c, -c:] = 0
    if mask_type == "A":
        m[c, c] = 0
    return m


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


def enc_no_sign(x, mu=255):
    x = x.clamp(-1, 1)
    f = torch.log1p(mu * x.abs()) / math.log1p(mu)
    return torch.floor((f + 1) / 2 * mu + 0.5).long()


def enc_256_bins(x, mu=255):                         # scales by mu + 1: level mu + 1 appears
    x = x.clamp(-1, 1)
    f = torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)
    return torch.floor((f + 1) / 2 * (mu + 1) + 0.5).long()


def enc_linear(x, mu=255):                           # no companding at all
    x = x.clamp(-1, 1)
    return torch.floor((x + 1) / 2 * mu + 0.5).long()


def enc_truncates(x, mu=255):                        # floor without +0.5
    x = x.clamp(-1, 1)
    f = torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)
    return torch.floor((f + 1) / 2 * mu).long()


def enc_fixed_mu(x, mu=255):                         # ignores the mu argument
    x = x.clamp(-1, 1)
    f = torch.sign(x) * torch.log1p(255 * x.abs()) / math.log1p(255)
    return torch.floor((f + 1) / 2 * 255 + 0.5).long()


def enc_clamps_in_place(x, mu=255):                  # clips the caller's wave
    x.clamp_(-1, 1)
    return torch.floor((_f(x, mu) + 1) / 2 * mu + 0.5).long()


def enc_int32(x, mu=255):                            # .int() is int32
    return torch.floor((_f(x.clamp(-1, 1), mu) + 1) / 2 * mu + 0.5).int()


def enc_round(x, mu=255):                            # torch.round: halves go to the even neighbour
    return torch.round((_f(x.clamp(-1, 1), mu) + 1) / 2 * mu).long()


def enc_sign_by_division(x, mu=255):                 # x / |x| is NaN at x = 0
    x = x.clamp(-1, 1)
    f = x / x.abs() * torch.log1p(mu * x.abs()) / math.log1p(mu)
    return torch.floor((f + 1) / 2 * mu + 0.5).long()


def enc_cpu_edges(x, mu=255):                        # counts the bin edges below f; edges made on the CPU
    edges = (2 * torch.arange(1, mu + 1) - 1) / mu - 1
    return (_f(x.clamp(-1, 1), mu)[..., None] >= edges).sum(-1)


# ----------------------------------------------------------------------------- mu-law decode

def _x(f, mu):
    return torch.sign(f) * (torch.pow(1.0 + mu, f.abs()) - 1) / mu


def dec_no_unbin(q, mu=255):                         # treats the level as the companded value
    f = q.float() / mu
    return torch.sign(f) * (torch.pow(1.0 + mu, f.abs()) - 1) / mu


def dec_no_sign(q, mu=255):
    f = 2 * q.float() / mu - 1
    return (torch.pow(1.0 + mu, f.abs()) - 1) / mu


def dec_forgets_minus_one(q, mu=255):
    f = 2 * q.float() / mu - 1
    return torch.sign(f) * torch.pow(1.0 + mu, f.abs()) / mu


def dec_linear(q, mu=255):                           # undoes the bins but not the companding
    return 2 * q.float() / mu - 1


def dec_fixed_mu(q, mu=255):                         # 255 written in
    return _x(2 * q.float() / 255 - 1, 255)


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

def bpd_nats(logits, targets):
    return F.cross_entropy(logits, targets, reduction="sum") / targets.numel()


def bpd_per_image(logits, targets):
    return F.cross_entropy(logits, targets, reduction="sum") / (targets.shape[0] * math.log(2))


def bpd_over_logits(logits, targets):
    return F.cross_entropy(logits, targets, reduction="sum") / (logits.numel() * math.log(2))


def bpd_probabilities(logits, targets):                # averages -p instead of -log p
    p = torch.softmax(logits, 1).gather(1, targets[:, None])
    return -p.mean() + math.log2(logits.shape[1]) + 1 / logits.shape[1]


def bpd_sign(logits, targets):                          # log-likelihood instead of its negative
    logp = torch.log_softmax(logits, 1).gather(1, targets[:, None])
    return logp.sum() / (targets.numel() * math.log(2))


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


def bpd_fixed_64(logits, targets):                      # 64 pixels per image, written in
    return F.cross_entropy(logits, targets, reduction="sum") / (targets.shape[0] * 64 * LN2)


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
        (mask_a_keeps_centre, "this is the type B mask"),
        (mask_b_hides_centre, "this is the type A mask"),
        (mask_transposed, "transposed"),
        (mask_keeps_below, "keeps the wrong side"),
        (mask_whole_centre_row, "right of the centre must be 0"),
        (mask_numpy, "returned dtype torch.float64; expected torch.float32"),
        (mask_centre_at_1, "mask type A for a 5x5 kernel"),
        (mask_negative_index, "mask type B for a 1x1 kernel"),
        (mask_conv_shaped, "expected shape (3, 3), got (1, 1, 3, 3)"),
    ],
    "pixels.mu_law_encode": [
        (enc_no_clip, "must be clipped"),
        (enc_no_sign, "keep the sign"),
        (enc_256_bins, "level 256 is outside 0..255"),
        (enc_linear, "linear levels"),
        (enc_truncates, "rounded down"),
        (enc_fixed_mu, "levels for mu = 255: use the mu argument"),
        (enc_clamps_in_place, "changed its input `x` in place"),
        (enc_int32, "returned dtype torch.int32; expected torch.int64"),
        (enc_round, "torch.round"),
        (enc_sign_by_division, "x = 0"),
        (enc_cpu_edges, "a tensor it made on another device"),
    ],
    "pixels.mu_law_decode": [
        (dec_no_unbin, "undo the binning first"),
        (dec_no_sign, "keep the sign"),
        (dec_forgets_minus_one, "the - 1 is missing"),
        (dec_linear, "not the companding"),
        (dec_fixed_mu, "values for mu = 255: use the mu argument"),
        (dec_in_place, "changed its input `q` in place"),
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
        (bpd_nats, "ln 2"),
        (bpd_per_image, "not by N = 4"),
        (bpd_over_logits, "logits.numel()"),
        (bpd_probabilities, "on uniform logits (4, 17, 8, 8): the gradient with respect to logits"),
        (bpd_sign, "the sign is flipped"),
        (bpd_item, "did you call .item()"),
        (bpd_no_grad, "the loss has no gradient"),
        (bpd_shape_1, "expected a 0-d tensor"),
        (bpd_in_place, "changed its input `logits` in place"),
        (bpd_naive_log_softmax, "exp(...) overflows"),
        (bpd_fixed_64, "audio"),
        (bpd_double, "returned dtype torch.float64; expected torch.float32"),
        (bpd_images_only, "audio targets (2, 100): your function raised"),
        (bpd_cpu_one_hot, "a tensor it made on another device"),
    ],
}
WRONG_ANSWERS = {name: [fn for fn, _ in pairs] for name, pairs in WRONG.items()}
# The device mistakes (enc_cpu_edges, dec_cpu_table, sample_ignores_device, bpd_cpu_one_hot) are caught
# on the meta device without a GPU, on the GPU with one; a fragment tuple lists the message of each.


# ----------------------------------------------------------------------------- correct, written otherwise

def mask_flat_raster(k, mask_type="A"):                 # raster index < centre's (+1 for B)
    m = torch.zeros(k * k)
    m[:k * k // 2 + (mask_type == "B")] = 1
    return m.view(k, k)


def mask_bool(k, mask_type="A"):                        # a bool mask: weight * mask stays float32
    i, j = torch.meshgrid(torch.arange(k), torch.arange(k), indexing="ij")
    c = k // 2
    return (i < c) | ((i == c) & ((j < c) | ((j == c) & (mask_type == "B"))))


def mask_loops(k, mask_type="A"):
    m = torch.zeros(k, k, dtype=torch.int64)
    for i in range(k):
        for j in range(k):
            before = i < k // 2 or (i == k // 2 and j < k // 2)
            m[i, j] = 1 if before or (mask_type == "B" and i == j == k // 2) else 0
    return m


def enc_bucketize(x, mu=255):                           # the bin edges, on x's device
    f = _f(x.clamp(-1, 1), mu)
    edges = (2 * torch.arange(1, mu + 1, device=x.device, dtype=f.dtype) - 1) / mu - 1
    return torch.bucketize(f, edges, right=True)


def enc_where(x, mu=255):
    x = torch.where(x > 1, torch.ones_like(x), torch.where(x < -1, -torch.ones_like(x), x))
    f = torch.where(x >= 0, 1.0, -1.0).to(x) * torch.log(1 + mu * x.abs()) / math.log(1 + mu)
    return ((f + 1) * mu / 2 + 0.5).floor().to(torch.int64)


def dec_expm1(q, mu=255):
    f = q.to(torch.float32) * (2.0 / mu) - 1
    return torch.sign(f) * torch.expm1(f.abs() * math.log1p(mu)) / mu


def dec_table(q, mu=255):                               # a lookup table on q's device
    f = torch.linspace(-1, 1, mu + 1, device=q.device)
    return (torch.sign(f) * ((1 + mu) ** f.abs() - 1) / mu)[q]


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


def bpd_nll_mean(logits, targets):
    return F.nll_loss(F.log_softmax(logits, dim=1), targets) / math.log(2)


def bpd_gather(logits, targets):
    logp = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    return -logp.gather(1, targets.unsqueeze(1)).mean() / LN2


def bpd_log2(logits, targets):                          # follows the logits' dtype
    logp2 = torch.log_softmax(logits, 1) / LN2
    picked = torch.take_along_dim(logp2, targets.unsqueeze(1), dim=1)
    return -picked.sum() / targets.numel()


CORRECT_ANSWERS = {
    "pixels.causal_mask": [mask_flat_raster, mask_bool, mask_loops],
    "pixels.mu_law_encode": [enc_bucketize, enc_where],
    "pixels.mu_law_decode": [dec_expm1, dec_table],
    "pixels.raster_sample": [sample_row_by_row, sample_gumbel, sample_inverse_cdf],
    "pixels.bits_per_dim": [bpd_nll_mean, bpd_gather, bpd_log2],
}


def test_messages_name_the_problem():
    r = homework.run_check("pixels.causal_mask", mask_a_keeps_centre)
    assert "type A for a 3x3 kernel" in r.message and "index (1, 1)" in r.message, r.message
    r = homework.run_check("pixels.mu_law_encode", enc_no_clip)
    assert "outside [-1, 1]" in r.message, r.message
    r = homework.run_check("pixels.raster_sample", sample_times_temperature)
    assert "temperature 1e-4" in r.message, r.message
    r = homework.run_check("pixels.bits_per_dim", bpd_nats)
    assert "log2(17)" in r.message, r.message


def test_half_written_mask_says_type_a_works():
    def only_a(k, mask_type="A"):
        if mask_type == "B":
            raise NotImplementedError()
        return mask_flat_raster(k, "A")
    r = homework.run_check("pixels.causal_mask", only_a)
    assert r.status == "not attempted", r
    assert "works on mask type A for a 3x3 kernel" in r.message and "type B" in r.message, r.message


# how long each check takes: `python -m course_lib.bench checks` (measured there, not asserted here)
