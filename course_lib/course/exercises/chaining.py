"""Exercises of notebook 04 (chaining tokens); see course_lib.course.homework for the mechanism.

* chaining.causal_mask: the (T, T) attention mask of a GPT, True where position i may look at j;
* chaining.next_token_probs: the distribution one sampling step draws from, with temperature and top-k;
* chaining.cfg_logits: classifier-free guidance on logits, uncond + w (cond - uncond).

Every check calls the learner's function through :func:`~course_lib.course.checking.call` (inputs
changed in place, time limit, the reference handed in), on sizes that change from call to call
(down to 1, up to the notebook's and beyond), on float64 inputs (the output stays float64), on
another device (the GPU, or PyTorch's meta device) and on extreme inputs (huge logits, ties, k = 1
and k >= V, scales 0 and 1). Each exercise's known mistakes are listed once (``*_MISTAKES``): the
check names the one that reproduces the learner's values, the tests submit each one.
"""
from __future__ import annotations

import torch

from course_lib.course.checking import (Exercise, Mismatch, Mistake, call, device_words, expect_on_another_device,
                                        expect_tensor, generator, naming, stand_in_device, tolerances)
from course_lib.nets import sampling
from course_lib.nets.transformer import make_mask
from course_lib.orders import prompt


# ----------------------------------------------------------------------------- references

def causal_mask(T: int, device=None) -> torch.Tensor:
    """(T, T) bool on ``device``: True where position i may attend to position j, i.e. j <= i."""
    return make_mask("causal", T, device=device)


def next_token_probs(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None) -> torch.Tensor:
    """Probabilities (..., V) of one sampling step: softmax(logits / temperature) over the ``top_k``
    largest logits of each row (the others get probability 0; None keeps all)."""
    return torch.softmax(sampling.top_k_filter(logits, top_k) / temperature, dim=-1)


def cfg_logits(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance on logits: uncond + scale * (cond - uncond)."""
    return prompt.cfg_logits(cond, uncond, scale)


def _filtered(z, k, largest=True):
    """z with every logit outside the k largest (or smallest) of its row set to -inf."""
    if k is None or k >= z.shape[-1]:
        return z
    kth = torch.topk(z, k, dim=-1, largest=largest).values[..., -1:]
    return z.masked_fill(z < kth if largest else z > kth, float("-inf"))


# ----------------------------------------------------------------------------- causal_mask

def _ones(T, device):
    return torch.ones(T, T, dtype=torch.bool, device=device)


CAUSAL_MASK_MISTAKES = (
    Mistake("transposed", lambda T, device=None: _ones(T, device).triu(),
            "this is the transpose: row i is the query, and it may look at columns j <= i, the past"),
    Mistake("no_diagonal", lambda T, device=None: _ones(T, device).tril(-1),
            "the diagonal is missing: a position may attend to itself, j <= i, not only j < i"),
    Mistake("inverted", lambda T, device=None: ~_ones(T, device).tril(),
            "True means 'may attend' here, as F.scaled_dot_product_attention reads a bool mask: you marked "
            "the forbidden positions"),
)


def _mask_by_comparison(T, device=None):
    i = torch.arange(T, device=device)
    return i[:, None] >= i[None, :]


def _mask_by_loop(T, device=None):
    m = torch.zeros(T, T, dtype=torch.bool, device=device)
    for i in range(T):
        m[i, : i + 1] = True
    return m


def check_causal_mask(candidate):
    """A (T, T) bool tensor, True where j <= i, for T = 1..9 (1 included), the notebook's 19 and 40, on
    the device asked for (CPU, and the GPU or PyTorch's meta device); the transpose, a missing diagonal
    and the inverted mask each get named."""
    for T in (5, 1, 2, 9, 3, 19, 40):                      # 19: the notebook's 4 prompt + 15 image tokens
        want = causal_mask(T)
        got = call(candidate, T, None, case=f"T = {T}")
        if isinstance(got, torch.Tensor) and got.dtype != torch.bool and tuple(got.shape) == (T, T):
            why = ("a float mask is ADDED to the scores by F.scaled_dot_product_attention, so 1.0 and 0.0 would "
                   "mask nothing" if got.dtype == torch.float32 else
                   f"F.scaled_dot_product_attention refuses a {got.dtype} mask with float32 scores (it takes a "
                   f"bool mask, or a float mask of the scores' dtype that it adds to them)")
            raise Mismatch(f"on T = {T}: returned dtype {got.dtype}; expected torch.bool (True = may attend): {why}")
        with naming(CAUSAL_MASK_MISTAKES, got, T, None):
            expect_tensor(got, want, f"on T = {T}", hint="(True where j <= i: torch.ones(T, T).tril())")
    dev = stand_in_device()
    case = f"T = 4, device {device_words(dev)}"
    got = call(candidate, 4, dev, case=case)
    if not isinstance(got, torch.Tensor) or got.device.type != dev.type:
        where = got.device if isinstance(got, torch.Tensor) else type(got).__name__
        raise Mismatch(f"on {case}: returned a mask on {where}; expected one on the device asked for "
                       f"(torch.ones(T, T, dtype=torch.bool, device=device))")
    if dev.type != "meta":
        expect_tensor(got, causal_mask(4, dev), f"on {case}")


# ----------------------------------------------------------------------------- next_token_probs

NEXT_TOKEN_PROBS_MISTAKES = (
    Mistake("times_temperature",
            lambda z, temperature=1.0, top_k=None: torch.softmax(_filtered(z, top_k) * temperature, -1),
            "you multiplied by the temperature: divide, logits / temperature, so T < 1 sharpens"),
    Mistake("no_top_k", lambda z, temperature=1.0, top_k=None: torch.softmax(z / temperature, -1),
            "top-k is missing: only the k largest logits keep a probability, the others get 0"),
    Mistake("not_renormalised", lambda z, temperature=1.0, top_k=None: torch.softmax(z / temperature, -1) * (
        _filtered(z, top_k) > -float("inf")),
            "you zeroed the probabilities outside the top k but did not renormalise: filter the logits to -inf "
            "BEFORE the softmax"),
    Mistake("no_temperature", lambda z, temperature=1.0, top_k=None: torch.softmax(_filtered(z, top_k), -1),
            "the temperature is missing: softmax(logits / temperature)"),
    Mistake("k_plus_one", lambda z, temperature=1.0, top_k=None: torch.softmax(
        _filtered(z, None if top_k is None else top_k + 1) / temperature, -1),
            "you kept k + 1 values: keep exactly top_k of them"),
    Mistake("smallest_k", lambda z, temperature=1.0, top_k=None: torch.softmax(
        _filtered(z, top_k, largest=False) / temperature, -1),
            "you kept the k SMALLEST logits: keep the k largest, torch.topk(logits, k) (largest=True)"),
)


def _probs_by_sort(logits, temperature=1.0, top_k=None):
    z = logits / temperature
    if top_k is not None and top_k < z.shape[-1]:
        z = z.scatter(-1, z.argsort(dim=-1, descending=True)[..., top_k:], float("-inf"))
    e = (z - z.max(-1, keepdim=True).values).exp()
    return e / e.sum(-1, keepdim=True)


def check_next_token_probs(candidate):
    """Probabilities (..., V) with rows summing to 1, for V from 1 to 50, batch shapes (N, V) and
    (2, 3, V), temperatures 0.3 to 5, top_k None, 1, k in between and k >= V; logits of size 1e4
    (a naive exp overflows); the notebook's (8, 256) with top_k 8, and (64, 1000); float64 in, float64
    out; inputs unchanged; another device."""
    g = generator(0)
    cases = [("logits (4, 10), temperature 1, top_k None", torch.randn(4, 10, generator=g), 1.0, None),
             ("logits (6, 12), temperature 0.5, top_k 3", torch.randn(6, 12, generator=g) * 2, 0.5, 3),
             ("logits (3, 8), temperature 2.0, top_k 5", torch.randn(3, 8, generator=g), 2.0, 5),
             ("logits (2, 3, 7), temperature 0.3, top_k 2", torch.randn(2, 3, 7, generator=g), 0.3, 2),
             ("one row (1, 5), top_k 1 (greedy)", torch.randn(1, 5, generator=g), 1.0, 1),
             ("V = 1, logits (3, 1)", torch.randn(3, 1, generator=g), 1.0, None),
             ("top_k 50 >= V = 6", torch.randn(5, 6, generator=g), 1.3, 50),
             ("huge logits (size 1e4), temperature 5, top_k 4", torch.randn(4, 9, generator=g) * 1e4, 5.0, 4),
             ("float64 logits (3, 11), temperature 0.7, top_k 6", torch.randn(3, 11, generator=g,
                                                                               dtype=torch.float64), 0.7, 6),
             ("the notebook's logits (8, 256), temperature 1, top_k 8", torch.randn(8, 256, generator=g) * 3, 1.0, 8),
             ("beyond the notebook's, logits (64, 1000), temperature 2, top_k 100",
              torch.randn(64, 1000, generator=g) * 3, 2.0, 100)]
    for desc, logits, temp, k in cases:
        want = next_token_probs(logits, temp, k)
        got = call(candidate, logits, temp, k, case=desc)
        with naming(NEXT_TOKEN_PROBS_MISTAKES, got, logits, temp, k, atol=1e-6):
            expect_tensor(got, want, f"on {desc}", *tolerances(want.dtype),
                          hint="(softmax over the top-k logits divided by the temperature)")
    logits = torch.randn(4, 7, generator=g)
    expect_on_another_device(candidate, (logits, 0.8, 3), next_token_probs(logits, 0.8, 3), "logits (4, 7), top_k 3")


# ----------------------------------------------------------------------------- cfg_logits

CFG_LOGITS_MISTAKES = (
    Mistake("var_form", lambda c, u, w: (1 + w) * c - w * u,
            "this is VAR's form (1 + w) cond - w uncond, where w = 0 means no guidance; here scale 1 must give "
            "cond back: uncond + w (cond - uncond)"),
    Mistake("guidance_term_only", lambda c, u, w: w * (c - u),
            "you returned only the guidance term w (cond - uncond): add it to uncond"),
    Mistake("reversed", lambda c, u, w: u + w * (u - c),
            "the difference is the wrong way round: cond - uncond points towards the prompt"),
    Mistake("uncond_term_missing", lambda c, u, w: w * c + u,
            "uncond + w (cond - uncond): the w * uncond term is missing"),
    Mistake("cond_only", lambda c, u, w: w * c, "guidance mixes both: uncond + w (cond - uncond)"),
)


def _cfg_lerp(cond, uncond, scale):
    return torch.lerp(uncond, cond, float(scale))


def _cfg_log_probabilities(cond, uncond, scale):   # on log-probabilities: the same softmax
    lc, lu = torch.log_softmax(cond, -1), torch.log_softmax(uncond, -1)
    return lu + scale * (lc - lu)


def _shifted(got, want):
    """``got`` less the constant by which each of its rows differs from ``want`` (when it does):
    logits that differ by a constant per row give the same softmax, so the same tokens."""
    if not (isinstance(got, torch.Tensor) and got.shape == want.shape and got.dtype == want.dtype
            and got.device.type == want.device.type and torch.isfinite(got).all()):
        return got
    return got - (got - want).mean(-1, keepdim=True)


def check_cfg_logits(candidate):
    """uncond + w (cond - uncond) on (N, V) logits with N, V down to 1 and up to the notebook's (8, 256)
    and beyond, w = 0, 1, 2.5, 7 and a negative w, an int scale, a (2, 3, V) batch, float64 (out
    float64), inputs unchanged, another device; a wrong form (VAR's, the guidance term alone, the
    difference reversed) gets named. Logits are compared up to a constant per row, which the softmax
    does not see: guidance on log-probabilities, log_softmax(uncond) + w (log_softmax(cond) -
    log_softmax(uncond)), samples the same tokens and passes."""
    g = generator(1)
    cases = []
    for desc, shape, w, dtype in [("(4, 10), scale 2.5", (4, 10), 2.5, torch.float32),
                                  ("(3, 6), scale 1 (no guidance)", (3, 6), 1.0, torch.float32),
                                  ("(2, 5), scale 0 (unconditional)", (2, 5), 0.0, torch.float32),
                                  ("(1, 1), scale 7", (1, 1), 7.0, torch.float32),
                                  ("(2, 3, 8), scale -0.5", (2, 3, 8), -0.5, torch.float32),
                                  ("(5, 4), int scale 3", (5, 4), 3, torch.float32),
                                  ("float64 (3, 9), scale 1.5", (3, 9), 1.5, torch.float64),
                                  ("the notebook's (8, 256), scale 3", (8, 256), 3.0, torch.float32),
                                  ("beyond the notebook's, (64, 1000), scale 5", (64, 1000), 5.0, torch.float32)]:
        cases.append((desc, torch.randn(*shape, generator=g, dtype=dtype),
                      torch.randn(*shape, generator=g, dtype=dtype), w))
    for desc, c, u, w in cases:
        want = cfg_logits(c, u, w)
        got = call(candidate, c, u, w, case=desc)
        with naming(CFG_LOGITS_MISTAKES, got, c, u, w, atol=1e-6):
            try:                                  # up to a constant per row; the message shows your values
                expect_tensor(_shifted(got, want), want, f"on {desc}", *tolerances(want.dtype))
            except Mismatch:
                expect_tensor(got, want, f"on {desc}", *tolerances(want.dtype),
                              hint="(uncond + scale * (cond - uncond))")
    c, u = torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g)
    expect_on_another_device(candidate, (c, u, 2.0), cfg_logits(c, u, 2.0), "(3, 5), scale 2")


EXERCISES = [
    Exercise("chaining.causal_mask", reference=causal_mask, checker=check_causal_mask,
             description=check_causal_mask.__doc__, mistakes=CAUSAL_MASK_MISTAKES,
             alternatives=(_mask_by_comparison, _mask_by_loop)),
    Exercise("chaining.next_token_probs", reference=next_token_probs, checker=check_next_token_probs,
             description=check_next_token_probs.__doc__, mistakes=NEXT_TOKEN_PROBS_MISTAKES,
             alternatives=(_probs_by_sort,)),
    Exercise("chaining.cfg_logits", reference=cfg_logits, checker=check_cfg_logits,
             description=check_cfg_logits.__doc__, mistakes=CFG_LOGITS_MISTAKES,
             alternatives=(_cfg_lerp, _cfg_log_probabilities)),
]
