"""Notebook 05's exercises (MaskGIT): each known mistake (Exercise.mistakes, in
course_lib/course/exercises/maskgit.py) is caught with its own message and each correct alternative
passes (tests/mistakes.py); the wrong answers below are not named mistakes but kinds the checks must
catch (no gradient, a float, a device, a dtype, an input changed in place); the correct ones, written
otherwise than the reference, pass. tests/test_homework.py runs WRONG and CORRECT_ANSWERS."""
import math

import torch
import torch.nn.functional as F

from course_lib.course import homework
from course_lib.course.exercises import maskgit as topic
from tests.mistakes import known_mistake_tests

test_known_mistake_named, test_correct_alternative_passes = known_mistake_tests(topic)


# ----------------------------------------------------------------------------- masked_loss

def loss_item(logits, targets, mask, label_smoothing=0.1):
    return F.cross_entropy(logits[mask], targets[mask], label_smoothing=label_smoothing).item()


def loss_detached(logits, targets, mask, label_smoothing=0.1):
    return F.cross_entropy(logits[mask].detach(), targets[mask], label_smoothing=label_smoothing)


def loss_half_gradient(logits, targets, mask, label_smoothing=0.1):   # the right value, half the gradient
    loss = F.cross_entropy(logits[mask], targets[mask], label_smoothing=label_smoothing)
    return loss.detach() + 0.5 * (loss - loss.detach())


def test_a_gradient_only_mistake_is_not_blamed_on_label_smoothing():
    r = homework.run_check("maskgit.masked_loss", loss_half_gradient)
    assert r.status == "failed" and "gradient with respect to logits" in r.message, r.message
    assert not any(m.message in r.message for m in topic.MASKED_LOSS_MISTAKES), r.message


# ----------------------------------------------------------------------------- mask_count

def count_as_one_element_tensor(step, steps, n_start, n_unknown):   # shape (1,), not a number
    n = 0 if step == steps - 1 else max(1, min(n_unknown - 1, math.floor(n_start * math.cos(math.pi / 2 * (step + 1) / steps))))
    return torch.tensor([n])

def count_float(step, steps, n_start, n_unknown):
    if step == steps - 1:
        return 0.0
    return float(max(1, min(n_unknown - 1, math.floor(n_start * math.cos(math.pi / 2 * (step + 1) / steps)))))


# ----------------------------------------------------------------------------- choose_to_mask

def remask_decided(confidence, unknown, n_mask):
    low = confidence.topk(n_mask, dim=1, largest=False).indices
    return torch.zeros_like(unknown).scatter(1, low, True)


def mask_one_too_many(confidence, unknown, n_mask):
    conf = torch.where(unknown, confidence, torch.full_like(confidence, float("inf")))
    low = conf.topk(min(n_mask + 1, conf.shape[1]), dim=1, largest=False).indices
    return torch.zeros_like(unknown).scatter(1, low, True)


def returns_keep(confidence, unknown, n_mask):
    conf = torch.where(unknown, confidence, torch.full_like(confidence, float("inf")))
    low = conf.topk(n_mask, dim=1, largest=False).indices
    return ~torch.zeros_like(unknown).scatter(1, low, True)


def in_place_inf(confidence, unknown, n_mask):
    confidence[~unknown] = float("inf")
    low = confidence.topk(n_mask, dim=1, largest=False).indices
    return torch.zeros_like(unknown).scatter(1, low, True)


def cpu_mask(confidence, unknown, n_mask):
    conf = torch.where(unknown, confidence, torch.full_like(confidence, float("inf")))
    low = conf.topk(n_mask, dim=1, largest=False).indices
    return torch.zeros(unknown.shape, dtype=torch.bool).scatter(1, low, True)


def float_mask(confidence, unknown, n_mask):
    conf = torch.where(unknown, confidence, torch.full_like(confidence, float("inf")))
    low = conf.topk(n_mask, dim=1, largest=False).indices
    return torch.zeros_like(confidence).scatter(1, low, 1.0)


WRONG = {
    "maskgit.masked_loss": [
        (loss_item, "did you call .item()"),
        (loss_detached, "the loss has no gradient"),
        (loss_half_gradient, "the gradient with respect to logits"),
    ],
    "maskgit.mask_count": [
        (count_float, "expected the int"),
        (count_as_one_element_tensor, "expected an int, got Tensor"),
    ],
    "maskgit.choose_to_mask": [
        (remask_decided, "never re-masked"),
        (mask_one_too_many, "exactly n_mask"),
        (returns_keep, ("never re-masked", "exactly n_mask")),
        (in_place_inf, "changed its input `confidence` in place"),
        (cpu_mask, ("made on another device", "returned a tensor on cpu")),
        (float_mask, "expected a bool mask"),
    ],
}
WRONG_ANSWERS = {name: [fn for fn, _ in pairs] for name, pairs in WRONG.items()}


def loss_by_hand(logits, targets, mask, label_smoothing=0.1):
    K = logits.shape[-1]
    logp = logits.log_softmax(-1)                                           # (B, N, K)
    soft = torch.full_like(logp, label_smoothing / K)
    soft = soft.scatter(-1, targets[..., None], 1 - label_smoothing + label_smoothing / K)
    per = -(soft * logp).sum(-1)                                            # (B, N)
    m = mask.to(per.dtype)
    return (per * m).sum() / m.sum()


def count_with_numpy(step, steps, n_start, n_unknown):
    import numpy as np
    if step + 1 == steps:
        return 0
    n = int(np.floor(n_start * np.cos(np.pi / 2 * (step + 1) / steps)))
    return int(np.maximum(1, np.minimum(n_unknown - 1, n)))      # at least 1, even with 1 token unknown


def mask_by_sorting(confidence, unknown, n_mask):
    big = confidence.abs().max() + 1 if confidence.numel() else 1.0
    conf = confidence + (~unknown) * (2 * big + 1e6)
    order = conf.argsort(dim=1)                                             # least confident first
    rank = order.argsort(dim=1)
    return rank < n_mask


CORRECT_ANSWERS = {
    "maskgit.masked_loss": [loss_by_hand],
    "maskgit.mask_count": [count_with_numpy],
    "maskgit.choose_to_mask": [mask_by_sorting],
}
