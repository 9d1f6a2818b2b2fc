"""Wrong and correct answers to notebook 04's exercises: each wrong one is caught with a message that
names its mistake; each correct one, written otherwise than the reference, passes.
tests/test_homework.py reads WRONG_ANSWERS and CORRECT_ANSWERS."""
import torch


# ----------------------------------------------------------------------------- causal_mask

def mask_transposed(T, device=None):          # the future instead of the past
    return torch.ones(T, T, dtype=torch.bool, device=device).triu()


def mask_no_diagonal(T, device=None):         # a position may not see itself
    return torch.ones(T, T, dtype=torch.bool, device=device).tril(-1)


def mask_inverted(T, device=None):            # marks what is forbidden
    return ~torch.ones(T, T, dtype=torch.bool, device=device).tril()


def mask_float(T, device=None):               # 1.0 / 0.0: added to the scores, masks nothing
    return torch.ones(T, T, device=device).tril()


def mask_cpu_only(T, device=None):            # ignores the device asked for
    return torch.ones(T, T, dtype=torch.bool).tril()


def mask_fixed_size(T, device=None):          # right only for the first size tried
    return torch.ones(5, 5, dtype=torch.bool, device=device).tril()


def mask_everything(T, device=None):          # bidirectional
    return torch.ones(T, T, dtype=torch.bool, device=device)


# ----------------------------------------------------------------------------- next_token_probs

def probs_times_temperature(logits, temperature=1.0, top_k=None):
    z = logits * temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(z, top_k, dim=-1).values[..., -1:]
        z = z.masked_fill(z < kth, float("-inf"))
    return torch.softmax(z, -1)


def probs_no_top_k(logits, temperature=1.0, top_k=None):
    return torch.softmax(logits / temperature, -1)


def probs_not_renormalised(logits, temperature=1.0, top_k=None):
    p = torch.softmax(logits / temperature, -1)
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(p, top_k, dim=-1).values[..., -1:]
        p = torch.where(p >= kth, p, torch.zeros_like(p))
    return p


def probs_k_plus_one(logits, temperature=1.0, top_k=None):
    if top_k is not None and top_k < logits.shape[-1] - 1:
        kth = torch.topk(logits, top_k + 1, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.softmax(logits / temperature, -1)


def probs_naive_softmax(logits, temperature=1.0, top_k=None):   # exp overflows on large logits
    z = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(z, top_k, dim=-1).values[..., -1:]
        z = z.masked_fill(z < kth, float("-inf"))
    e = torch.exp(z)
    return e / e.sum(-1, keepdim=True)


def probs_in_place(logits, temperature=1.0, top_k=None):        # divides the caller's logits
    logits /= temperature
    return torch.softmax(sampling_filter(logits, top_k), -1)


def probs_float32(logits, temperature=1.0, top_k=None):         # casts to float32
    return torch.softmax(sampling_filter(logits.float(), top_k) / temperature, -1)


def probs_smallest_k(logits, temperature=1.0, top_k=None):      # keeps the k least likely
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1, largest=False).values[..., -1:]
        logits = logits.masked_fill(logits > kth, float("-inf"))
    return torch.softmax(logits / temperature, -1)


def sampling_filter(z, k):
    if k is None or k >= z.shape[-1]:
        return z
    kth = torch.topk(z, k, dim=-1).values[..., -1:]
    return z.masked_fill(z < kth, float("-inf"))


# ----------------------------------------------------------------------------- cfg_logits

def cfg_var_form(cond, uncond, scale):        # VAR's convention: w = 0 is no guidance
    return (1 + scale) * cond - scale * uncond


def cfg_direction_only(cond, uncond, scale):   # forgets to add uncond
    return scale * (cond - uncond)


def cfg_reversed(cond, uncond, scale):
    return uncond + scale * (uncond - cond)


def cfg_missing_term(cond, uncond, scale):
    return scale * cond + uncond


def cfg_in_place(cond, uncond, scale):
    cond -= uncond
    return uncond + scale * cond


def cfg_probabilities(cond, uncond, scale):   # mixes probabilities, not logits
    pc, pu = torch.softmax(cond, -1), torch.softmax(uncond, -1)
    return torch.log((pu + scale * (pc - pu)).clamp_min(1e-12))


def cfg_float32(cond, uncond, scale):
    return uncond.float() + scale * (cond.float() - uncond.float())


def cfg_cpu(cond, uncond, scale):              # starts from a tensor made on the CPU
    out = torch.zeros(cond.shape, dtype=cond.dtype)
    return out + uncond + scale * (cond - uncond)


WRONG = {
    "chaining.causal_mask": [
        (mask_transposed, "transpose"),
        (mask_no_diagonal, "diagonal is missing"),
        (mask_inverted, "forbidden positions"),
        (mask_float, "expected torch.bool"),
        (mask_cpu_only, "expected one on the device asked for"),
        (mask_fixed_size, "expected shape (1, 1)"),
        (mask_everything, "j <= i"),
    ],
    "chaining.next_token_probs": [
        (probs_times_temperature, "multiplied by the temperature"),
        (probs_no_top_k, "top-k is missing"),
        (probs_not_renormalised, "did not renormalise"),
        (probs_k_plus_one, "k + 1"),
        (probs_naive_softmax, "value at index"),
        (probs_in_place, "changed its input `logits` in place"),
        (probs_float32, "expected torch.float64"),
        (probs_smallest_k, "softmax over the top-k"),
    ],
    "chaining.cfg_logits": [
        (cfg_var_form, "VAR's form"),
        (cfg_direction_only, "add it to uncond"),
        (cfg_reversed, "wrong way round"),
        (cfg_missing_term, "w * uncond term is missing"),
        (cfg_in_place, "changed its input `cond` in place"),
        (cfg_probabilities, "uncond + scale * (cond - uncond)"),
        (cfg_float32, "expected torch.float64"),
        (cfg_cpu, ("expected one on", "another device")),
    ],
}
WRONG_ANSWERS = {name: [fn for fn, _ in pairs] for name, pairs in WRONG.items()}


def mask_by_comparison(T, device=None):
    i = torch.arange(T, device=device)
    return i[:, None] >= i[None, :]


def mask_by_loop(T, device=None):
    m = torch.zeros(T, T, dtype=torch.bool, device=device)
    for i in range(T):
        m[i, : i + 1] = True
    return m


def probs_by_sort(logits, temperature=1.0, top_k=None):
    z = logits / temperature
    if top_k is not None and top_k < z.shape[-1]:
        order = z.argsort(dim=-1, descending=True)
        drop = order[..., top_k:]
        z = z.scatter(-1, drop, float("-inf"))
    z = z - z.max(-1, keepdim=True).values
    e = z.exp()
    return e / e.sum(-1, keepdim=True)


def cfg_lerp(cond, uncond, scale):
    return torch.lerp(uncond, cond, float(scale))


def cfg_expanded(cond, uncond, scale):
    return scale * cond + (1 - scale) * uncond


CORRECT_ANSWERS = {
    "chaining.causal_mask": [mask_by_comparison, mask_by_loop],
    "chaining.next_token_probs": [probs_by_sort],
    "chaining.cfg_logits": [cfg_lerp, cfg_expanded],
}
