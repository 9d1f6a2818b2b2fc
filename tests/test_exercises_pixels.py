"""Wrong answers to notebook 01's exercises; tests/test_homework.py asserts each one is caught."""
import math

import torch
import torch.nn.functional as F

from course_lib.course import homework


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


# ----------------------------------------------------------------------------- mu-law encode

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


# ----------------------------------------------------------------------------- mu-law decode

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


# ----------------------------------------------------------------------------- raster_sample

def _draw(logits, temperature, generator):
    probs = torch.softmax(logits.float() / temperature, -1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


def sample_column_order(logits_fn, n, height, width, temperature=1.0, generator=None):
    x = torch.zeros(n, 1, height, width, dtype=torch.long)
    for j in range(width):
        for i in range(height):
            x[:, 0, i, j] = _draw(logits_fn(x)[:, :, i, j], temperature, generator)
    return x


def sample_times_temperature(logits_fn, n, height, width, temperature=1.0, generator=None):
    x = torch.zeros(n, 1, height, width, dtype=torch.long)
    for i in range(height):
        for j in range(width):
            x[:, 0, i, j] = _draw(logits_fn(x)[:, :, i, j] * temperature * temperature, temperature,
                                  generator)
    return x


def sample_one_pass(logits_fn, n, height, width, temperature=1.0, generator=None):
    x = torch.zeros(n, 1, height, width, dtype=torch.long)
    logits = logits_fn(x)                                # every pixel from the empty canvas
    for i in range(height):
        for j in range(width):
            x[:, 0, i, j] = _draw(logits[:, :, i, j], temperature, generator)
    return x


def sample_no_write_back(logits_fn, n, height, width, temperature=1.0, generator=None):
    x = torch.zeros(n, 1, height, width, dtype=torch.long)
    out = x.clone()
    for i in range(height):
        for j in range(width):
            out[:, 0, i, j] = _draw(logits_fn(x)[:, :, i, j], temperature, generator)
    return out


def sample_argmax(logits_fn, n, height, width, temperature=1.0, generator=None):
    x = torch.zeros(n, 1, height, width, dtype=torch.long)
    for i in range(height):
        for j in range(width):
            x[:, 0, i, j] = logits_fn(x)[:, :, i, j].argmax(-1)
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


WRONG_ANSWERS = {
    "pixels.causal_mask": [mask_a_keeps_centre, mask_b_hides_centre, mask_transposed, mask_keeps_below,
                           mask_whole_centre_row],
    "pixels.mu_law_encode": [enc_no_clip, enc_no_sign, enc_256_bins, enc_linear, enc_truncates,
                             enc_fixed_mu],
    "pixels.mu_law_decode": [dec_no_unbin, dec_no_sign, dec_forgets_minus_one, dec_linear],
    "pixels.raster_sample": [sample_column_order, sample_times_temperature, sample_one_pass,
                             sample_no_write_back, sample_argmax],
    "pixels.bits_per_dim": [bpd_nats, bpd_per_image, bpd_over_logits, bpd_probabilities, bpd_sign],
}


def test_messages_name_the_problem():
    r = homework.run_check("pixels.causal_mask", mask_a_keeps_centre)
    assert "type A for a 3x3 kernel" in r.message and "index (1, 1)" in r.message, r.message
    r = homework.run_check("pixels.mu_law_encode", enc_no_clip)
    assert "outside [-1, 1]" in r.message, r.message
    r = homework.run_check("pixels.raster_sample", sample_column_order)
    assert "temperature 1e-4" in r.message, r.message
    r = homework.run_check("pixels.bits_per_dim", bpd_nats)
    assert "log2(17)" in r.message, r.message
