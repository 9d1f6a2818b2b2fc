"""Exercises of notebook 04 (chaining tokens); see course_lib.course.homework for the mechanism.

* chaining.causal_mask: the (T, T) attention mask of a GPT, True where position i may look at j;
* chaining.next_token_probs: the distribution one sampling step draws from, with temperature and top-k;
* chaining.cfg_logits: classifier-free guidance on logits, uncond + w (cond - uncond).

Every check calls the learner's function through :func:`~course_lib.course.checking.call` (inputs
changed in place, time limit, the reference handed in), on sizes that change from call to call
(down to 1), on float64 inputs (the output stays float64), on another device (the GPU, or PyTorch's
meta device) and on extreme inputs (huge logits, ties, k = 1 and k >= V, scales 0 and 1).
"""
from __future__ import annotations

import torch

from course_lib.course.checking import (Exercise, Mismatch, call, device_words, expect_on_another_device,
                                        expect_tensor, stand_in_device)
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


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _tol(dtype):
    return (1e-10, 1e-9) if dtype == torch.float64 else (1e-5, 1e-4)



# ----------------------------------------------------------------------------- causal_mask

def _mask_hint(got, T: int) -> str:
    if not isinstance(got, torch.Tensor) or tuple(got.shape) != (T, T):
        return ""
    g = got.detach().cpu().bool() if got.dtype != torch.bool else got.detach().cpu()
    ones = torch.ones(T, T, dtype=torch.bool)
    if T > 1 and torch.equal(g, ones.triu()):
        return "(this is the transpose: row i is the query, and it may look at columns j <= i, the past)"
    if T > 1 and torch.equal(g, ones.tril(-1)):
        return "(the diagonal is missing: a position may attend to itself, j <= i, not only j < i)"
    if T > 1 and torch.equal(g, ~ones.tril()):
        return "(True means 'may attend' here, as F.scaled_dot_product_attention reads a bool mask: you " \
               "marked the forbidden positions)"
    return "(True where j <= i: torch.ones(T, T).tril())"


def check_causal_mask(candidate):
    """A (T, T) bool tensor, True where j <= i, for T = 1..9 (1 included), on the device asked for
    (CPU, and the GPU or PyTorch's meta device); the transpose, a missing diagonal and the inverted
    mask each get named."""
    for T in (5, 1, 2, 9, 3):
        want = causal_mask(T)
        got = call(candidate, T, None, case=f"T = {T}")
        if isinstance(got, torch.Tensor) and got.dtype != torch.bool and tuple(got.shape) == (T, T):
            raise Mismatch(f"on T = {T}: returned dtype {got.dtype}; expected torch.bool (True = may attend): "
                           f"a float mask is ADDED to the scores by F.scaled_dot_product_attention, so 1.0 and "
                           f"0.0 would mask nothing")
        expect_tensor(got, want, f"on T = {T}", hint=_mask_hint(got, T))
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

def _probs_hint(got, logits, temperature, top_k) -> str:
    if not isinstance(got, torch.Tensor) or got.shape != logits.shape:
        return ""
    g = got.detach().double().cpu()
    lg = logits.detach().double().cpu()
    tries = [(torch.softmax(sampling.top_k_filter(lg, top_k) * temperature, -1),
              "(you multiplied by the temperature: divide, logits / temperature, so T < 1 sharpens)"),
             (torch.softmax(lg / temperature, -1), "(top-k is missing: only the k largest logits keep a "
                                                  "probability, the others get 0)"),
             (torch.softmax(lg / temperature, -1) * (sampling.top_k_filter(lg, top_k) > -float("inf")),
              "(you zeroed the probabilities outside the top k but did not renormalise: filter the logits "
              "to -inf BEFORE the softmax)"),
             (torch.softmax(sampling.top_k_filter(lg, top_k), -1),
              "(the temperature is missing: softmax(logits / temperature))")]
    if top_k is not None and top_k + 1 <= lg.shape[-1]:
        tries.append((torch.softmax(sampling.top_k_filter(lg, top_k + 1) / temperature, -1),
                      f"(you kept k + 1 = {top_k + 1} values, expected exactly k = {top_k})"))
    for cand, text in tries:
        if torch.isfinite(cand).all() and torch.allclose(g, cand, atol=1e-6):
            return text
    return "(softmax over the top-k logits divided by the temperature)"


def check_next_token_probs(candidate):
    """Probabilities (..., V) with rows summing to 1, for V from 1 to 50, batch shapes (N, V) and
    (2, 3, V), temperatures 0.3 to 5, top_k None, 1, k in between and k >= V; logits of size 1e4
    (a naive exp overflows); float64 in, float64 out; inputs unchanged; another device."""
    g = _gen(0)
    cases = [("logits (4, 10), temperature 1, top_k None", torch.randn(4, 10, generator=g), 1.0, None),
             ("logits (6, 12), temperature 0.5, top_k 3", torch.randn(6, 12, generator=g) * 2, 0.5, 3),
             ("logits (3, 8), temperature 2.0, top_k 5", torch.randn(3, 8, generator=g), 2.0, 5),
             ("logits (2, 3, 7), temperature 0.3, top_k 2", torch.randn(2, 3, 7, generator=g), 0.3, 2),
             ("one row (1, 5), top_k 1 (greedy)", torch.randn(1, 5, generator=g), 1.0, 1),
             ("V = 1, logits (3, 1)", torch.randn(3, 1, generator=g), 1.0, None),
             ("top_k 50 >= V = 6", torch.randn(5, 6, generator=g), 1.3, 50),
             ("huge logits (size 1e4), temperature 5, top_k 4", torch.randn(4, 9, generator=g) * 1e4, 5.0, 4),
             ("float64 logits (3, 11), temperature 0.7, top_k 6", torch.randn(3, 11, generator=g,
                                                                               dtype=torch.float64), 0.7, 6)]
    for desc, logits, temp, k in cases:
        want = next_token_probs(logits, temp, k)
        got = call(candidate, logits, temp, k, case=desc)
        atol, rtol = _tol(want.dtype)
        expect_tensor(got, want, f"on {desc}", atol, rtol, hint=_probs_hint(got, logits, temp, k))
    logits = torch.randn(4, 7, generator=g)
    expect_on_another_device(candidate, (logits, 0.8, 3), next_token_probs(logits, 0.8, 3), "logits (4, 7), top_k 3")


# ----------------------------------------------------------------------------- cfg_logits

def _cfg_hint(got, cond, uncond, w) -> str:
    if not isinstance(got, torch.Tensor) or got.shape != cond.shape:
        return ""
    g, c, u = (t.detach().double().cpu() for t in (got, cond, uncond))
    tries = [((1 + w) * c - w * u, "(this is VAR's form (1 + w) cond - w uncond, where w = 0 means no "
                                   "guidance; here scale 1 must give cond back: uncond + w (cond - uncond))"),
             (w * (c - u), "(you returned only the guidance term w (cond - uncond): add it to uncond)"),
             (u + w * (u - c), "(the difference is the wrong way round: cond - uncond points towards the prompt)"),
             (w * c + u, "(uncond + w (cond - uncond): the w * uncond term is missing)"),
             (w * c, "(guidance mixes both: uncond + w (cond - uncond))")]
    for cand, text in tries:
        if torch.allclose(g, cand, atol=1e-6):
            return text
    return "(uncond + scale * (cond - uncond))"


def check_cfg_logits(candidate):
    """uncond + w (cond - uncond) on (N, V) logits with N, V down to 1, w = 0, 1, 2.5, 7 and a
    negative w, an int scale, a (2, 3, V) batch, float64 (out float64), inputs unchanged, another
    device; a wrong form (VAR's, the guidance term alone, the difference reversed) gets named."""
    g = _gen(1)
    cases = []
    for desc, shape, w, dtype in [("(4, 10), scale 2.5", (4, 10), 2.5, torch.float32),
                                  ("(3, 6), scale 1 (no guidance)", (3, 6), 1.0, torch.float32),
                                  ("(2, 5), scale 0 (unconditional)", (2, 5), 0.0, torch.float32),
                                  ("(1, 1), scale 7", (1, 1), 7.0, torch.float32),
                                  ("(2, 3, 8), scale -0.5", (2, 3, 8), -0.5, torch.float32),
                                  ("(5, 4), int scale 3", (5, 4), 3, torch.float32),
                                  ("float64 (3, 9), scale 1.5", (3, 9), 1.5, torch.float64)]:
        cases.append((desc, torch.randn(*shape, generator=g, dtype=dtype),
                      torch.randn(*shape, generator=g, dtype=dtype), w))
    for desc, c, u, w in cases:
        want = cfg_logits(c, u, w)
        got = call(candidate, c, u, w, case=desc)
        atol, rtol = _tol(want.dtype)
        expect_tensor(got, want, f"on {desc}", atol, rtol, hint=_cfg_hint(got, c, u, w))
    c, u = torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g)
    expect_on_another_device(candidate, (c, u, 2.0), cfg_logits(c, u, 2.0), "(3, 5), scale 2")


EXERCISES = [
    Exercise("chaining.causal_mask", reference=causal_mask, checker=check_causal_mask,
             description=check_causal_mask.__doc__),
    Exercise("chaining.next_token_probs", reference=next_token_probs, checker=check_next_token_probs,
             description=check_next_token_probs.__doc__),
    Exercise("chaining.cfg_logits", reference=cfg_logits, checker=check_cfg_logits,
             description=check_cfg_logits.__doc__),
]
