"""Exercises of notebook 05 (MaskGIT); see course_lib.course.homework for the mechanism.

* maskgit.mask_count: how many tokens stay masked after a decoding step (the cosine schedule);
* maskgit.choose_to_mask: which tokens to mask again: the least confident of the undecided ones,
  never a decided token;
* maskgit.masked_loss: cross-entropy on the masked positions only, with label smoothing.

Every check calls the learner's function through :func:`~course_lib.course.checking.call` (inputs
changed in place, time limit, the reference handed in), on sizes that change from call to call (down
to one token), at both ends of the schedule, on a float64 case for the loss, and on another device
(the GPU, or without one PyTorch's meta device).
"""
from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F

from course_lib.orders import maskgit as mg
from course_lib.course.checking import (Exercise, Mismatch, call, expect_loss, expect_on_another_device,
                                        expect_tensor)


# ----------------------------------------------------------------------------- references

def mask_count(step: int, steps: int, n_start: int, n_unknown: int) -> int:
    """After decoding step ``step`` (0-based) of ``steps``: floor(n_start * cos(pi/2 * (step+1)/steps))
    clipped to [1, n_unknown - 1]; 0 after the last step (MaskGIT's cosine schedule)."""
    return mg.masked_after_step(step, steps, n_start, n_unknown)


def choose_to_mask(confidence: torch.Tensor, unknown: torch.Tensor, n_mask: int) -> torch.Tensor:
    """(B, N) bool, True at the n_mask least confident positions of each row among the unknown ones."""
    return mg.choose_to_mask(confidence, unknown, n_mask)


def masked_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
                label_smoothing: float = 0.1) -> torch.Tensor:
    """Mean cross-entropy with label smoothing over the masked positions only."""
    return mg.masked_loss(logits, targets, mask, label_smoothing)


# ----------------------------------------------------------------------------- helpers

def _gen(seed):
    return torch.Generator().manual_seed(seed)



# ----------------------------------------------------------------------------- mask_count

def _schedule(steps, n_start, rule):
    """The counts after each step, with the learner-style rule(step, steps, n_start, unknown)."""
    out, unknown = [], n_start
    for t in range(steps):
        unknown = rule(t, steps, n_start, unknown)
        out.append(unknown)
    return out


def _count_hint(got, step, steps, n_start, n_unknown) -> str:
    ratio = (step + 1) / steps
    raw = math.floor(n_start * math.cos(math.pi / 2 * ratio))
    if step == steps - 1 and got != 0:
        return ("after the last step nothing stays masked: the last step keeps all its samples, so "
                "return 0 there")
    alternatives = [
        (max(1, min(n_unknown - 1, math.floor(n_start * math.cos(math.pi / 2 * step / steps)))),
         "ratio = (step + 1) / steps, the share done AFTER this step, not step / steps"),
        (max(1, min(n_unknown - 1, math.floor(n_unknown * math.cos(math.pi / 2 * ratio)))),
         "the schedule scales the number of unknown tokens at the START of decoding (n_start), not the "
         "current n_unknown"),
        (max(1, min(n_unknown - 1, math.ceil(n_start * math.cos(math.pi / 2 * ratio)))),
         "round down (floor), as MaskGIT's decoder does, not up"),
        (raw, "clip the count to [1, n_unknown - 1]: each step must decide at least one token and "
              "keep at least one masked (but the last)"),
        (max(1, min(n_unknown - 1, math.floor(n_start * math.sin(math.pi / 2 * ratio)))),
         "gamma(r) = cos(pi r / 2) is the share still MASKED (1 at the start, 0 at the end), not sin"),
        (max(1, min(n_unknown - 1, math.floor(n_start * (1 - ratio)))),
         "that is a linear schedule; MaskGIT's is the cosine gamma(r) = cos(pi r / 2)"),
        (n_unknown - max(1, min(n_unknown - 1, raw)),
         "return how many stay MASKED after the step, not how many this step decides"),
    ]
    return "; or ".join(text for value, text in alternatives if got == value)


def check_mask_count(candidate):
    """An int for every step of schedules of 1, 2, 4, 8 and 16 steps over 1, 2, 16, 64 and 256 tokens:
    floor(n_start cos(pi/2 (step+1)/steps)) clipped to [1, n_unknown - 1], and 0 after the last step,
    where n_unknown is the previous step's answer (so an early mistake is named where it happens)."""
    for steps, n in [(8, 16), (1, 16), (2, 16), (4, 16), (16, 16), (8, 256), (4, 64), (12, 64),
                     (3, 1), (5, 2), (16, 256)]:
        unknown = n
        for t in range(steps):
            case = f"step {t} of {steps}, {n} tokens at the start, {unknown} still unknown"
            got = call(candidate, t, steps, n, unknown, case=case)
            want = mask_count(t, steps, n, unknown)
            if isinstance(got, torch.Tensor) and got.numel() == 1 and not got.is_floating_point():
                got = int(got)
            if isinstance(got, bool) or not isinstance(got, numbers.Integral):
                if isinstance(got, numbers.Real) and float(got) == want:
                    raise Mismatch(f"on {case}: got {got!r} of type {type(got).__name__}; expected the int "
                                   f"{want} (a count of tokens: int(math.floor(...)))")
                raise Mismatch(f"on {case}: expected an int, got {type(got).__name__} {got!r}")
            if got != want:
                hint = _count_hint(int(got), t, steps, n, unknown)
                raise Mismatch(f"on {case}: got {int(got)} tokens still masked, expected {want}"
                               + (f" ({hint})" if hint else ""))
            unknown = want


# ----------------------------------------------------------------------------- choose_to_mask

def _mask_hint(got, conf, unknown, n_mask) -> str:
    if not isinstance(got, torch.Tensor) or got.shape != unknown.shape:
        return ""
    g = got.detach().cpu().bool() if got.device.type != "meta" else None
    if g is None:
        return ""
    c, u = conf.detach().cpu(), unknown.cpu()
    if (g & ~u).any():
        return ("a token that was already decided is masked again: decided tokens are never re-masked; "
                "give them confidence +inf, or pick only among the unknown ones")
    counts = g.sum(1)
    if (counts != n_mask).any():
        return f"each row must mask exactly n_mask = {n_mask} positions, yours masks {counts.tolist()}"
    most = mg.choose_to_mask(-c, u, n_mask)
    if torch.equal(g, most):
        return "you masked the MOST confident tokens; keep those, and mask the least confident ones"
    return "mask the n_mask lowest-confidence positions among the unknown ones"


def check_choose_to_mask(candidate):
    """(B, N) bool on the input's device: in each row exactly n_mask positions, the least confident
    among the unknown ones, never a decided one (even where a decided token has the lowest
    confidence); rows with different decided positions; N = 1..64, n_mask = 0..unknown; confidence
    unchanged; one case on another device."""
    g = _gen(5)
    cases = [(4, 16, 8, 6, "the notebook's 16 tokens"), (1, 1, 0, 0, "1 token, nothing to mask"),
             (3, 9, 4, 2, "decided tokens with the lowest confidence"), (2, 64, 40, 30, "64 tokens"),
             (5, 6, 6, 5, "all unknown"), (3, 12, 7, 7, "mask every unknown token"),
             (2, 8, 5, 1, "mask one token")]
    for b, n, n_unknown, n_mask, what in cases:
        conf = torch.randn(b, n, generator=g)
        unknown = torch.zeros(b, n, dtype=torch.bool)
        for i in range(b):
            unknown[i, torch.randperm(n, generator=g)[:n_unknown]] = True
        if "lowest" in what:
            conf = torch.where(unknown, conf.abs() + 1.0, -conf.abs() - 1.0)          # decided ones lowest
        case = f"{what}: confidence ({b}, {n}), {n_unknown} unknown per row, n_mask={n_mask}"
        want = choose_to_mask(conf, unknown, n_mask)
        got = call(candidate, conf, unknown, n_mask, case=case)
        if isinstance(got, torch.Tensor) and got.shape == want.shape and got.dtype != torch.bool:
            raise Mismatch(f"on {case}: returned dtype {got.dtype}; expected a bool mask (True = mask again)")
        try:
            expect_tensor(got, want, f"on {case}")
        except Mismatch as e:
            hint = _mask_hint(got, conf, unknown, n_mask)
            raise Mismatch(f"{e} ({hint})" if hint else str(e)) from None
    conf = torch.randn(3, 16, generator=g)
    unknown = torch.rand(3, 16, generator=g) < 0.7
    unknown[:, :12] = True
    expect_on_another_device(candidate, (conf, unknown, 4), choose_to_mask(conf, unknown, 4),
                       "confidence (3, 16), n_mask=4")


# ----------------------------------------------------------------------------- masked_loss

def _loss_hint(value, logits, targets, mask, ls) -> str:
    lg, tg = logits.detach().double(), targets
    flat = lambda m, s, red="mean": F.cross_entropy(lg[m], tg[m], label_smoothing=s, reduction=red).item()  # noqa: E731
    everywhere = torch.ones_like(mask)
    alternatives = [
        (flat(everywhere, ls), "that is the loss over ALL positions; MaskGIT takes it on the masked ones only"),
        (flat(~mask, ls) if (~mask).any() else math.nan, "that is the loss on the VISIBLE positions; take it "
                                                          "where mask is True"),
        (flat(mask, 0.0), "that is the loss without label smoothing: pass label_smoothing to the cross-entropy"),
        (flat(mask, 0.1), "label_smoothing is an argument: use the value passed in, not a fixed 0.1"),
        (flat(mask, ls, "sum"), "that is a sum over the masked positions; take the mean"),
        (flat(mask, ls, "sum") / mask.numel(), "that divides by all positions; average over the masked "
                                                 "positions only"),
    ]
    for alt, text in alternatives:
        if math.isfinite(alt) and math.isclose(value, alt, rel_tol=1e-6, abs_tol=1e-9):
            return text
    return ""


def check_masked_loss(candidate):
    """A 0-d loss attached to the graph, with the reference's value and its gradient w.r.t. the
    logits (zero at visible positions): the notebook's shapes (B, 16, 64), a single masked token,
    every token masked, label_smoothing 0, 0.1 (and left out) and 0.3, a float64 case, and one on
    another device; the inputs unchanged."""
    g = _gen(3)
    cases = [("the notebook's shapes: logits (8, 16, 64), 6 masked per row", 8, 16, 64, 6, 0.1, torch.float32),
             ("logits (3, 5, 7), one masked token", 3, 5, 7, -1, 0.1, torch.float32),
             ("logits (2, 4, 5), every token masked", 2, 4, 5, 4, 0.1, torch.float32),
             ("logits (4, 6, 9), label_smoothing=0", 4, 6, 9, 3, 0.0, torch.float32),
             ("logits (4, 6, 9), label_smoothing left out (the default 0.1)", 4, 6, 9, 2, None, torch.float32),
             ("logits (5, 10, 8), label_smoothing=0.3", 5, 10, 8, 5, 0.3, torch.float32),
             ("float64 logits (3, 8, 6), label_smoothing=0.2", 3, 8, 6, 4, 0.2, torch.float64)]
    for desc, b, n, k, n_masked, ls, dtype in cases:
        logits = (2 * torch.randn(b, n, k, generator=g, dtype=dtype)).requires_grad_(True)
        targets = torch.randint(k, (b, n), generator=g)
        if n_masked == -1:
            mask = torch.zeros(b, n, dtype=torch.bool)
            mask[1, 2] = True
        else:
            mask = torch.rand(b, n, generator=g).argsort(1) < n_masked
        s = 0.1 if ls is None else ls
        want = masked_loss(logits, targets, mask, s)
        args = (logits, targets, mask) if ls is None else (logits, targets, mask, ls)
        got = call(candidate, *args, case=desc)
        atol, rtol = (1e-10, 1e-9) if dtype == torch.float64 else (1e-5, 1e-4)
        try:
            expect_loss(got, want, f"on {desc}, the loss", {"logits": logits}, atol=atol, rtol=rtol)
        except Mismatch as e:
            if isinstance(got, torch.Tensor) and got.dim() == 0:
                hint = _loss_hint(float(got.detach()), logits, targets, mask, s)
                if hint:
                    raise Mismatch(f"{e} ({hint})") from None
            raise
    logits = torch.randn(2, 16, 8, generator=g).requires_grad_(True)
    targets = torch.randint(8, (2, 16), generator=g)
    mask = torch.rand(2, 16, generator=g) < 0.5
    mask[:, 0] = True
    expect_on_another_device(candidate, (logits, targets, mask, 0.1), masked_loss(logits, targets, mask, 0.1),
                       "logits (2, 16, 8)")


# the exercises of this topic, in notebook order
EXERCISES = [
    Exercise("maskgit.masked_loss", reference=masked_loss, checker=check_masked_loss,
             description=check_masked_loss.__doc__),
    Exercise("maskgit.mask_count", reference=mask_count, checker=check_mask_count,
             description=check_mask_count.__doc__),
    Exercise("maskgit.choose_to_mask", reference=choose_to_mask, checker=check_choose_to_mask,
             description=check_choose_to_mask.__doc__),
]
