"""Exercises of notebook 05 (MaskGIT); see course_lib.course.homework for the mechanism.

* maskgit.mask_count: how many tokens stay masked after a decoding step (the cosine schedule);
* maskgit.choose_to_mask: which tokens to mask again: the least confident of the undecided ones,
  never a decided token;
* maskgit.masked_loss: cross-entropy on the masked positions only, with label smoothing.

Every check calls the learner's function through :func:`~course_lib.course.checking.call` (inputs
changed in place, time limit, the reference handed in), on sizes that change from call to call (down
to one token), at both ends of the schedule, on a float64 case for the loss, and on another device
(the GPU, or without one PyTorch's meta device). Each exercise lists its known mistakes once
(:class:`~course_lib.course.checking.Mistake`); a check names one only when it reproduces the
learner's values (and, for the loss, gradients) on the failing case.
"""
from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F

from course_lib.orders import maskgit as mg
from course_lib.course.checking import (Exercise, Mismatch, Mistake, call, expect_loss, expect_on_another_device,
                                        expect_tensor, generator, gradients, naming)


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
    """Mean cross-entropy with label smoothing over the masked positions only, one mean over all the
    masked tokens of the batch (the exercise's form; the library's
    :func:`~course_lib.orders.maskgit.masked_loss` averages per image first, as MaskGIT's code does:
    the two agree when every image has as many masked tokens)."""
    return F.cross_entropy(logits[mask], targets[mask], label_smoothing=label_smoothing)


# ----------------------------------------------------------------------------- masked_loss

def _ce(where=lambda mask: mask, smoothing=None, reduction="mean"):
    """Cross-entropy over the positions where(mask), with label smoothing ``smoothing`` (None: the
    argument's), reduced by ``reduction``: a known mistake's shape."""
    def loss(logits, targets, mask, label_smoothing=0.1):
        m = where(mask)
        s = label_smoothing if smoothing is None else smoothing
        return F.cross_entropy(logits[m], targets[m], label_smoothing=s, reduction=reduction)
    return loss


def _over_all_positions(logits, targets, mask, label_smoothing=0.1):
    return _ce(reduction="sum")(logits, targets, mask, label_smoothing) / mask.numel()


MASKED_LOSS_MISTAKES = (
    Mistake("everywhere", _ce(where=torch.ones_like),
            "that is the loss over ALL positions; MaskGIT takes it on the masked ones only"),
    Mistake("on_visible", _ce(where=lambda mask: ~mask),
            "that is the loss on the VISIBLE positions; take it where mask is True"),
    Mistake("no_smoothing", _ce(smoothing=0.0),
            "that is the loss without label smoothing: pass label_smoothing to the cross-entropy"),
    Mistake("fixed_smoothing", _ce(smoothing=0.1),
            "label_smoothing is an argument: use the value passed in, not a fixed 0.1"),
    Mistake("sum", _ce(reduction="sum"), "that is a sum over the masked positions; take the mean"),
    Mistake("over_all_positions", _over_all_positions,
            "that divides by all positions; average over the masked positions only"),
)


def check_masked_loss(candidate):
    """A 0-d loss attached to the graph, with the reference's value and its gradient w.r.t. the
    logits (zero at visible positions): the notebook's shapes (B, 16, 64) up to B = 160, a single masked token,
    every token masked, label_smoothing 0, 0.1 (and left out) and 0.3, a float64 case, and one on
    another device; the inputs unchanged. A known mistake is named only when the learner's value AND
    gradient are that mistake's."""
    g = generator(3)
    cases = [("the notebook's shapes: logits (8, 16, 64), 6 masked per row", 8, 16, 64, 6, 0.1, torch.float32),
             ("logits (3, 5, 7), one masked token", 3, 5, 7, -1, 0.1, torch.float32),
             ("logits (2, 4, 5), every token masked", 2, 4, 5, 4, 0.1, torch.float32),
             ("logits (4, 6, 9), label_smoothing=0", 4, 6, 9, 3, 0.0, torch.float32),
             ("logits (4, 6, 9), label_smoothing left out (the default 0.1)", 4, 6, 9, 2, None, torch.float32),
             ("logits (5, 10, 8), label_smoothing=0.3", 5, 10, 8, 5, 0.3, torch.float32),
             ("float64 logits (3, 8, 6), label_smoothing=0.2", 3, 8, 6, 4, 0.2, torch.float64),
             ("beyond the notebook's batches of up to 128: logits (160, 16, 64)", 160, 16, 64, 9, 0.1, torch.float32)]
    for desc, b, n, k, n_masked, ls, dtype in cases:
        logits = (2 * torch.randn(b, n, k, generator=g, dtype=dtype)).requires_grad_(True)
        targets = torch.randint(k, (b, n), generator=g)
        if n_masked == -1:
            mask = torch.zeros(b, n, dtype=torch.bool)
            mask[1, 2] = True
        else:
            mask = torch.rand(b, n, generator=g).argsort(1) < n_masked
        want = masked_loss(logits, targets, mask, 0.1 if ls is None else ls)
        args = (logits, targets, mask) if ls is None else (logits, targets, mask, ls)
        got = call(candidate, *args, case=desc)
        atol, rtol = (1e-10, 1e-9) if dtype == torch.float64 else (1e-5, 1e-4)
        with naming(MASKED_LOSS_MISTAKES, (got, gradients(got, [logits])), *args, wrt=(0,)):
            expect_loss(got, want, f"on {desc}, the loss", {"logits": logits}, atol=atol, rtol=rtol)
    logits = torch.randn(2, 16, 8, generator=g).requires_grad_(True)
    targets = torch.randint(8, (2, 16), generator=g)
    mask = torch.rand(2, 16, generator=g) < 0.5
    mask[:, 0] = True
    expect_on_another_device(candidate, (logits, targets, mask, 0.1), masked_loss(logits, targets, mask, 0.1),
                             "logits (2, 16, 8)")


# ----------------------------------------------------------------------------- mask_count

def _count(share=lambda r: math.cos(math.pi / 2 * r), done=lambda step, steps: (step + 1) / steps,
           of_unknown=False, rounding=math.floor, clip=True, last=True):
    """A schedule with one part swapped for a known mistake's: the share still masked, the share
    done, which count it scales, the rounding, the clip, the last step."""
    def count(step, steps, n_start, n_unknown):
        if last and step == steps - 1:
            return 0
        n = rounding((n_unknown if of_unknown else n_start) * share(done(step, steps)))
        return max(1, min(n_unknown - 1, n)) if clip else n
    return count


def _decided(step, steps, n_start, n_unknown):
    return n_unknown - _count()(step, steps, n_start, n_unknown)


def _float32(step, steps, n_start, n_unknown):
    share = torch.cos(torch.tensor(math.pi / 2 * (step + 1) / steps))            # float32
    return 0 if step == steps - 1 else max(1, min(n_unknown - 1, int(torch.floor(n_start * share))))


def _clip_other_order(step, steps, n_start, n_unknown):        # differs only where n_unknown = 1
    n = math.floor(n_start * math.cos(math.pi / 2 * (step + 1) / steps))
    return 0 if step == steps - 1 else min(n_unknown - 1, max(1, n))


MASK_COUNT_MISTAKES = (
    Mistake("keeps_last", _count(last=False),
            "after the last step nothing stays masked: the last step decides every token left, so return 0 there"),
    Mistake("share_before_step", _count(done=lambda step, steps: step / steps),
            "ratio = (step + 1) / steps, the share done AFTER this step, not step / steps"),
    Mistake("of_unknown", _count(of_unknown=True),
            "the schedule scales the number of unknown tokens at the START of decoding (n_start), not the "
            "current n_unknown"),
    Mistake("ceil", _count(rounding=math.ceil), "round down (floor), as MaskGIT's decoder does, not up"),
    Mistake("unclipped", _count(clip=False, last=False),
            "clip the count to [1, n_unknown - 1]: each step must decide at least one token and keep at "
            "least one masked (but the last)"),
    Mistake("sin", _count(share=lambda r: math.sin(math.pi / 2 * r)),
            "gamma(r) = cos(pi r / 2) is the share still MASKED (1 at the start, 0 at the end), not sin"),
    Mistake("linear", _count(share=lambda r: 1 - r),
            "that is a linear schedule; MaskGIT's is the cosine gamma(r) = cos(pi r / 2)"),
    Mistake("decided", _decided, "return how many stay MASKED after the step, not how many this step decides"),
    Mistake("float32", _float32,
            "n_start * cos(...) computed in float32 (torch.cos of a float32 tensor) lands just below a whole "
            "number where the exact value is one (cos(pi/3) = 1/2 is 0.49999997 in float32), and floor loses a "
            "token: compute with Python floats (math.cos) or float64"),
)


def check_mask_count(candidate):
    """A Python int (or a 0-d integer tensor) for every step of schedules of 1 to 16 steps over 1, 2,
    16 (the notebook's), 64 and 256 tokens: floor(n_start cos(pi/2 (step+1)/steps)) clipped to
    [1, n_unknown - 1], and 0 after the last step, where n_unknown is the previous step's answer (so
    an early mistake is named where it happens). Where n_unknown = 1 before the last step the
    interval [1, 0] is empty: 1 (nothing decided) and 0 (the token decided early) are both accepted."""
    for steps, n in [(8, 256), (8, 16), (1, 16), (2, 16), (4, 16), (16, 16), (4, 64), (12, 64),
                     (3, 1), (5, 2), (16, 256)]:                # 256 first: there no clip hides a mistake
        unknown = n
        for t in range(steps):
            case = f"step {t} of {steps}, {n} tokens at the start, {unknown} still unknown"
            got = call(candidate, t, steps, n, unknown, case=case)
            want = mask_count(t, steps, n, unknown)
            if isinstance(got, torch.Tensor) and got.dim() == 0 and not got.is_floating_point():
                got = int(got)
            if isinstance(got, bool) or not isinstance(got, numbers.Integral):
                if isinstance(got, numbers.Real) and float(got) == want:
                    raise Mismatch(f"on {case}: got {got!r} of type {type(got).__name__}; expected the int "
                                   f"{want} (a count of tokens: int(math.floor(...)))")
                raise Mismatch(f"on {case}: expected an int, got {type(got).__name__} {got!r}")
            if got != want and not (unknown == 1 and t < steps - 1 and got == 0):
                with naming(MASK_COUNT_MISTAKES, int(got), t, steps, n, unknown):
                    raise Mismatch(f"on {case}: got {int(got)} tokens still masked, expected {want}")
            unknown = want


# ----------------------------------------------------------------------------- choose_to_mask

def _most_confident(confidence, unknown, n_mask):
    conf = torch.where(unknown, confidence, torch.full_like(confidence, -float("inf")))
    return torch.zeros_like(unknown).scatter(1, conf.topk(n_mask, dim=1).indices, True)


CHOOSE_MISTAKES = (Mistake("most_confident", _most_confident,
                           "you masked the MOST confident tokens; keep those, and mask the least confident ones"),)


def check_choose_to_mask(candidate):
    """(B, N) bool on the input's device: in each row exactly n_mask positions, the least confident
    among the unknown ones, never a decided one (even where a decided token has the lowest
    confidence); rows with different decided positions; N = 1..64 (the notebook's 16), n_mask =
    0..unknown; confidence unchanged; one case on another device."""
    g = generator(5)
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
        with naming(CHOOSE_MISTAKES, got, conf, unknown, n_mask):
            if isinstance(got, torch.Tensor) and got.shape == want.shape and got.device.type != "meta":
                if (got.cpu() & ~unknown).any():
                    raise Mismatch(f"on {case}: a token that was already decided is masked again: decided tokens "
                                   f"are never re-masked; give them confidence +inf, or pick only among the "
                                   f"unknown ones")
                if (got.cpu().sum(1) != n_mask).any():
                    raise Mismatch(f"on {case}: each row must mask exactly n_mask = {n_mask} positions, yours "
                                   f"masks {got.cpu().sum(1).tolist()}")
            expect_tensor(got, want, f"on {case}")
    conf = torch.randn(3, 16, generator=g)
    unknown = torch.rand(3, 16, generator=g) < 0.7
    unknown[:, :12] = True
    expect_on_another_device(candidate, (conf, unknown, 4), choose_to_mask(conf, unknown, 4),
                             "confidence (3, 16), n_mask=4")


# the exercises of this topic, in notebook order
EXERCISES = [
    Exercise("maskgit.masked_loss", reference=masked_loss, checker=check_masked_loss,
             description=check_masked_loss.__doc__, mistakes=MASKED_LOSS_MISTAKES),
    Exercise("maskgit.mask_count", reference=mask_count, checker=check_mask_count,
             description=check_mask_count.__doc__, mistakes=MASK_COUNT_MISTAKES, alternatives=(_clip_other_order,)),
    Exercise("maskgit.choose_to_mask", reference=choose_to_mask, checker=check_choose_to_mask,
             description=check_choose_to_mask.__doc__, mistakes=CHOOSE_MISTAKES),
]
