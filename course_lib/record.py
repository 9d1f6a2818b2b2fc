"""What a model's training returned, kept beside its weights: the loss curve a notebook plots and the
figures it prints come back with a cached or shipped model, as if it had just trained.

``fit(model)`` (the function :func:`course_lib.cache.cached` trains with) may return None, a
:class:`History` (what ``train.train`` returns), or a dict (nested dicts and lists too) of Histories and JSON values
(numbers, strings, booleans, None, 0-d tensors). :func:`dumps` writes it as JSON text, Histories
marked as such; :func:`loads` gives back the same structure with Histories rebuilt (losses, logs and
training seconds; not the EMA copy: a recipe that samples from the EMA copies it into the model first).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import torch


@dataclass
class History:
    """What a training run returns: per-step losses, other logged scalars, timing, the EMA model."""
    losses: list = field(default_factory=list)
    logs: dict = field(default_factory=dict)
    seconds: float = 0.0
    ema: object | None = None      # train.EMA: the moving average of the weights (not kept with them)

    @property
    def steps_per_second(self) -> float:
        return len(self.losses) / self.seconds if self.seconds > 0 else float("nan")

    def smoothed(self, window: int = 50) -> list:
        """Running mean of the loss over ``window`` steps (for plots)."""
        out, acc = [], 0.0
        for i, v in enumerate(self.losses):
            acc += v
            if i >= window:
                acc -= self.losses[i - window]
            out.append(acc / min(i + 1, window))
        return out

_HISTORY = "__history__"


def _plain(value, where: str):
    if isinstance(value, History):
        return {_HISTORY: {"losses": [float(v) for v in value.losses], "seconds": float(value.seconds),
                           "logs": {k: [float(v) for v in vs] for k, vs in value.logs.items()}}}
    if isinstance(value, dict):
        bad = [k for k in value if not isinstance(k, str)]
        if bad:
            raise TypeError(f"fit's return value: the keys of {where or 'the dict'} must be strings, got {bad[0]!r}")
        return {k: _plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, torch.Tensor):
        if value.dim() != 0:
            raise TypeError(f"fit's return value{where}: a tensor of shape {tuple(value.shape)} cannot be kept "
                            "with the weights: return numbers (tensor.tolist()), or a 0-d tensor")
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"fit's return value{where}: expected None, a History, or dicts/lists of Histories, numbers "
                    f"and strings (kept with the weights as JSON), got {type(value).__name__}")


def dumps(value) -> str | None:
    """``value`` (what ``fit`` returned) as JSON text, or None for None."""
    return None if value is None else json.dumps(_plain(value, ""), sort_keys=True)


def _rebuilt(value):
    if isinstance(value, dict):
        if set(value) == {_HISTORY}:
            h = value[_HISTORY]
            return History(losses=list(h["losses"]), logs={k: list(v) for k, v in h["logs"].items()},
                           seconds=float(h["seconds"]))
        return {k: _rebuilt(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rebuilt(v) for v in value]
    return value


def loads(text: str | None):
    """The structure :func:`dumps` wrote (Histories rebuilt), or None."""
    return None if text is None else _rebuilt(json.loads(text))


def history_of(record):
    """The History in ``record``: itself, or its one History entry at the top level; else None."""
    if isinstance(record, History):
        return record
    if isinstance(record, dict):
        found = [v for v in record.values() if isinstance(v, History)]
        return found[0] if len(found) == 1 else None
    return None


