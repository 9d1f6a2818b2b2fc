"""Wrong and correct answers to notebook 05's exercises (MaskGIT): each wrong one is caught with a
message that names its mistake; each correct one, written otherwise than the reference, passes.
tests/test_homework.py runs them."""
import math

import torch
import torch.nn.functional as F


# ----------------------------------------------------------------------------- masked_loss

def loss_everywhere(logits, targets, mask, label_smoothing=0.1):
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), label_smoothing=label_smoothing)


def loss_on_visible(logits, targets, mask, label_smoothing=0.1):
    return F.cross_entropy(logits[~mask], targets[~mask], label_smoothing=label_smoothing)


def loss_no_smoothing(logits, targets, mask, label_smoothing=0.1):
    return F.cross_entropy(logits[mask], targets[mask])


def loss_fixed_smoothing(logits, targets, mask, label_smoothing=0.1):
    return F.cross_entropy(logits[mask], targets[mask], label_smoothing=0.1)


def loss_sum(logits, targets, mask, label_smoothing=0.1):
    return F.cross_entropy(logits[mask], targets[mask], label_smoothing=label_smoothing, reduction="sum")


def loss_over_all_positions(logits, targets, mask, label_smoothing=0.1):
    per = F.cross_entropy(logits.transpose(1, 2), targets, label_smoothing=label_smoothing, reduction="none")
    return (per * mask).sum() / mask.numel()


def loss_item(logits, targets, mask, label_smoothing=0.1):
    return F.cross_entropy(logits[mask], targets[mask], label_smoothing=label_smoothing).item()


def loss_detached(logits, targets, mask, label_smoothing=0.1):
    return F.cross_entropy(logits[mask].detach(), targets[mask], label_smoothing=label_smoothing)


# ----------------------------------------------------------------------------- mask_count

def count_t_over_T(step, steps, n_start, n_unknown):
    if step == steps - 1:
        return 0
    return max(1, min(n_unknown - 1, math.floor(n_start * math.cos(math.pi / 2 * step / steps))))


def count_from_unknown(step, steps, n_start, n_unknown):
    if step == steps - 1:
        return 0
    return max(1, min(n_unknown - 1, math.floor(n_unknown * math.cos(math.pi / 2 * (step + 1) / steps))))


def count_ceil(step, steps, n_start, n_unknown):
    if step == steps - 1:
        return 0
    return max(1, min(n_unknown - 1, math.ceil(n_start * math.cos(math.pi / 2 * (step + 1) / steps))))


def count_unclipped(step, steps, n_start, n_unknown):
    return math.floor(n_start * math.cos(math.pi / 2 * (step + 1) / steps))


def count_sin(step, steps, n_start, n_unknown):
    if step == steps - 1:
        return 0
    return max(1, min(n_unknown - 1, math.floor(n_start * math.sin(math.pi / 2 * (step + 1) / steps))))


def count_linear(step, steps, n_start, n_unknown):
    if step == steps - 1:
        return 0
    return max(1, min(n_unknown - 1, math.floor(n_start * (1 - (step + 1) / steps))))


def count_float(step, steps, n_start, n_unknown):
    if step == steps - 1:
        return 0.0
    return float(max(1, min(n_unknown - 1, math.floor(n_start * math.cos(math.pi / 2 * (step + 1) / steps)))))


def count_keeps_last(step, steps, n_start, n_unknown):
    return max(1, min(n_unknown - 1, math.floor(n_start * math.cos(math.pi / 2 * (step + 1) / steps))))


# ----------------------------------------------------------------------------- choose_to_mask

def remask_decided(confidence, unknown, n_mask):
    low = confidence.topk(n_mask, dim=1, largest=False).indices
    return torch.zeros_like(unknown).scatter(1, low, True)


def mask_most_confident(confidence, unknown, n_mask):
    conf = torch.where(unknown, confidence, torch.full_like(confidence, -float("inf")))
    top = conf.topk(n_mask, dim=1).indices
    return torch.zeros_like(unknown).scatter(1, top, True)


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
        (loss_everywhere, "ALL positions"),
        (loss_on_visible, "VISIBLE positions"),
        (loss_no_smoothing, "without label smoothing"),
        (loss_fixed_smoothing, "not a fixed 0.1"),
        (loss_sum, ("a sum over the masked", "times the expected")),
        (loss_over_all_positions, "divides by all positions"),
        (loss_item, "did you call .item()"),
        (loss_detached, "the loss has no gradient"),
    ],
    "maskgit.mask_count": [
        (count_t_over_T, "not step / steps"),
        (count_from_unknown, "at the START of decoding"),
        (count_ceil, "round down"),
        (count_unclipped, ("clip the count", "after the last step nothing stays masked")),
        (count_sin, "not sin"),
        (count_linear, "linear schedule"),
        (count_float, "expected the int"),
        (count_keeps_last, "after the last step nothing stays masked"),
    ],
    "maskgit.choose_to_mask": [
        (remask_decided, "never re-masked"),
        (mask_most_confident, "MOST confident"),
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
