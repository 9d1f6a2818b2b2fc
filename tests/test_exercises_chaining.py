"""Wrong and correct answers to notebook 04's exercises.

The known mistakes and correct alternatives live once, in course_lib/course/exercises/chaining.py:
known_mistake_tests submits each mistake (caught with its own message) and each alternative (passes).
``WRONG`` holds wrong answers that are kinds the checks catch (a dtype, a device, an input changed in
place, a size the small cases miss) or a known mistake written otherwise, which must still be named;
each must fail with the fragment given. tests/test_homework.py reads WRONG, WRONG_ANSWERS and
CORRECT_ANSWERS.
"""
import torch

from course_lib.course import homework
from course_lib.course.exercises import chaining
from tests.mistakes import known_mistake_tests

test_known_mistake_named, test_correct_alternative_passes = known_mistake_tests(chaining)


# ----------------------------------------------------------------------------- causal_mask







def mask_float(T, device=None):               # 1.0 / 0.0: added to the scores, masks nothing
    return torch.ones(T, T, device=device).tril()


def mask_cpu_only(T, device=None):            # ignores the device asked for
    return torch.ones(T, T, dtype=torch.bool).tril()


def mask_fixed_size(T, device=None):          # right only for the first size tried
    return torch.ones(5, 5, dtype=torch.bool, device=device).tril()


def mask_int(T, device=None):                  # 0/1 integers: refused by F.scaled_dot_product_attention
    return torch.ones(T, T, dtype=torch.long, device=device).tril()


def mask_up_to_32(T, device=None):             # a mask cached for 32 positions: right up to T = 32
    cached = torch.ones(32, 32, dtype=torch.bool, device=device).tril()
    return cached[:T, :T]


def mask_transposed_by_comparison(T, device=None):    # the transpose mistake written otherwise: still named
    i = torch.arange(T, device=device)
    return i[:, None] <= i[None, :]


def mask_everything(T, device=None):          # bidirectional
    return torch.ones(T, T, dtype=torch.bool, device=device)


# ----------------------------------------------------------------------------- next_token_probs









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




def probs_top_k_by_sort_ascending(logits, temperature=1.0, top_k=None):   # the smallest-k mistake written otherwise
    z = logits / temperature
    if top_k is not None and top_k < z.shape[-1]:
        z = z.scatter(-1, z.argsort(dim=-1)[..., top_k:], float("-inf"))
    return torch.softmax(z, -1)


def sampling_filter(z, k):
    if k is None or k >= z.shape[-1]:
        return z
    kth = torch.topk(z, k, dim=-1).values[..., -1:]
    return z.masked_fill(z < kth, float("-inf"))


# ----------------------------------------------------------------------------- cfg_logits









def cfg_var_form_by_lerp(cond, uncond, scale):      # VAR's form written as a lerp: still named
    return torch.lerp(uncond, cond, 1.0 + scale)


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
        (mask_float, "expected torch.bool"),
        (mask_cpu_only, "expected one on the device asked for"),
        (mask_fixed_size, "expected shape (1, 1)"),
        (mask_everything, "j <= i"),
        (mask_int, "refuses a torch.int64 mask"),
        (mask_up_to_32, "on T = 40"),
        (mask_transposed_by_comparison, "this is the transpose"),
    ],
    "chaining.next_token_probs": [
        (probs_naive_softmax, "value at index"),
        (probs_in_place, "changed its input `logits` in place"),
        (probs_float32, "expected torch.float64"),
        (probs_top_k_by_sort_ascending, "you kept the k SMALLEST logits"),
    ],
    "chaining.cfg_logits": [
        (cfg_in_place, "changed its input `cond` in place"),
        (cfg_probabilities, "uncond + scale * (cond - uncond)"),
        (cfg_float32, "expected torch.float64"),
        (cfg_cpu, ("expected one on", "another device")),
        (cfg_var_form_by_lerp, "this is VAR's form"),
    ],
}
WRONG_ANSWERS = {name: [fn for fn, _ in pairs] for name, pairs in WRONG.items()}










def cfg_expanded(cond, uncond, scale):
    return scale * cond + (1 - scale) * uncond


def cfg_less_row_max(cond, uncond, scale):            # less the row's maximum: the same softmax, the same tokens
    out = uncond + scale * (cond - uncond)
    return out - out.max(-1, keepdim=True).values


CORRECT_ANSWERS = {                           # the other correct alternatives are Exercise.alternatives
    "chaining.cfg_logits": [cfg_expanded, cfg_less_row_max],
}


def test_cfg_logits_shifted_by_a_constant_per_row_samples_the_same_tokens_and_passes():
    r = homework.run_check("chaining.cfg_logits", cfg_less_row_max)
    assert r.status == "passed", r.message
