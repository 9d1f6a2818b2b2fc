"""The disk cache of trained models: a model that several notebooks (or a notebook and its benchmark)
share is trained once per budget and kept on disk.

Usage (also as ``course_lib.train.cached``)::

    model = cached("token-gpt", B, build=lambda: GPT(cfg), fit=lambda m: train(m, loss_fn, B.steps))
    # B: the recipe's budget, a frozen dataclass (mode, sizes, steps): every field is in the key

A file is written atomically and read with ``weights_only=True``; one that cannot be used is moved
aside, never deleted or overwritten (:func:`cached`).

The weights a course ships (``data/weights/``, :mod:`course_lib.weights`) are the same mechanism's
first place: :func:`cached` loads a shipped file whose manifest entry matches the model's name and
budget before it looks in the disk cache, unless shipped weights are switched off
(``runtime.weights() == "train"``, always in quick mode).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import warnings
from typing import Callable

import torch
from torch import nn

from course_lib import checks, distributed, record, runtime, weights
from course_lib.weights import plain as _plain


# Bumped when a change of the course's code (not of a budget) changes what training produces, so that a
# learner's cache retrains instead of loading weights of the old code. 2: FSQ's bound, BSQ's straight-through
# and MaskGIT's per-image loss as their official code, MAR's AdaLN init, Infinity's bilinear next-scale inputs.
# 3: the file keeps what training returned (course_lib.record: the loss curve), which notebooks now read back.
CODE_VERSION = 3


def cache_path(name: str, config) -> "os.PathLike":
    """Where :func:`cached` keeps the model ``name`` trained with ``config``:
    ``runtime.cache_dir() / f"{name}-{hash of config}.pt"`` (every field as sorted JSON, sha256)."""
    if not isinstance(name, str) or not name or not all(c.isalnum() or c in "-_." for c in name):
        raise ValueError(f"name: expected a non-empty string of letters, digits, '-', '_', '.', got {name!r}")
    if not isinstance(config, dict) and not (dataclasses.is_dataclass(config) and not isinstance(config, type)):
        raise TypeError(f"config: expected the budget that defines the model (a dataclass instance, or a dict "
                        f"of budgets and settings), got {type(config).__name__}")
    try:
        text = json.dumps(_plain(config), sort_keys=True)
    except TypeError as e:
        raise TypeError(f"config: every value must be a number, string, list, dict or dataclass of them "
                        f"(written as JSON): {e}") from e
    text = f"code {CODE_VERSION}: {text}"
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return runtime.cache_dir() / f"{name}-{digest}.pt"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0][:200]}" if text else type(error).__name__


def _why_unreadable(path, error: Exception) -> str:
    """What is wrong with a file ``torch.load(..., weights_only=True)`` raised ``error`` on, in words."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        return f"it cannot be opened ({_first_line(e)})"
    if not head:
        return "it is empty"
    if not head.startswith(b"PK") and not head.startswith(b"\x80"):    # torch.save's zip, or an old pickle
        return f"it is not a file torch.save writes (it starts with {head!r})"
    if "weights only load failed" in str(error).lower():
        return "it holds objects that weights_only=True refuses to load (only tensors and plain containers)"
    return f"it is damaged or truncated ({_first_line(error)})"


def _load_into(model: nn.Module, path) -> tuple[str, str] | None:
    """Load the weights at ``path`` into ``model``: None if they fit (``model.record`` then holds what
    training returned), else (kind, what is wrong) with kind "unreadable" (not a weights file torch can
    read with weights_only) or "mismatch" (readable, but not this model's keys and shapes; the model
    may then be half-loaded)."""
    try:
        state = torch.load(path, map_location=checks.model_device(model) or "cpu", weights_only=True)
    except Exception as e:      # random bytes, text, a truncated zip, a pickle weights_only refuses, a folder
        return "unreadable", f"cannot be read as weights: {_why_unreadable(path, e)}"
    text = None
    if isinstance(state, dict) and set(state) == {"state_dict", "record"}:     # weights + what fit returned
        state, text = state["state_dict"], state["record"]
        if not isinstance(text, str):
            return "mismatch", f"hold a record of type {type(text).__name__}, not JSON text"
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        return "mismatch", f"hold a {type(state).__name__}, not a state_dict of tensors"
    want = model.state_dict()
    wrong = [f"missing {k}" for k in want if k not in state][:3]
    wrong += [f"unexpected {k}" for k in state if k not in want][:3]
    wrong += [f"{k} of shape {tuple(state[k].shape)}, the model's {tuple(v.shape)}"
              for k, v in want.items() if k in state and state[k].shape != v.shape][:3]
    if wrong:
        return "mismatch", "do not fit the model (" + "; ".join(wrong) + ")"
    try:
        model.load_state_dict(state)
        model.record = record.loads(text)
    except (RuntimeError, ValueError, TypeError, KeyError) as e:
        return "mismatch", f"do not fit the model ({_first_line(e)})"
    return None


def _move_aside(path, kind: str):
    """Move ``path`` to the first free ``<path>.<kind>-<n>`` beside it and return that path; if it
    cannot be moved, refuse (nothing is ever overwritten) with an error naming it."""
    n = 1
    while (aside := path.with_name(f"{path.name}.{kind}-{n}")).exists():
        n += 1
    try:
        os.rename(path, aside)
    except OSError as e:
        raise RuntimeError(f"the model cache cannot move {path} aside to {aside} ({_first_line(e)}): move or "
                           "delete it by hand, or set COURSE_CACHE to another folder") from e
    return aside


def _finish(model: nn.Module, from_cache: bool, rec) -> nn.Module:
    model.from_cache, model.record, model.history = from_cache, rec, record.history_of(rec)
    return model.eval()


def cached(name: str, config, build: Callable[[], nn.Module], fit: Callable[[nn.Module], object],
           verbose: bool = True, *, share: bool = True) -> nn.Module:
    """``build()`` a model, then load its weights from the disk cache if they are there, else
    ``fit(model)`` and save them. Returns the model in eval mode, on the device ``build`` put it on.

    ``config`` is the recipe's budget (a frozen dataclass: mode, sizes, steps, the code's version),
    or a dict of budgets and the other settings of this model (a seed): it must hold everything that
    changes the trained weights, and every field of it is in the hash, the cache key
    (:func:`cache_path`), so changing any field, even one only the evaluation reads, trains again. Weights are saved
    atomically (a second process never reads half a file) as a plain ``state_dict`` and loaded with
    ``torch.load(..., weights_only=True)``. ``model.from_cache`` tells which way it went.
    Set ``COURSE_CACHE`` to use another folder; delete the file (or the folder) to retrain.

    A file there that cannot be used is never deleted or overwritten: one torch cannot read (random
    bytes, text, a truncated file, a pickle that ``weights_only`` refuses) is moved to
    ``<file>.unreadable-<n>``, one it reads whose keys or shapes do not fit the model to
    ``<file>.mismatch-<n>``, with a warning naming both paths; then the model trains again, so a
    notebook keeps running. If the file cannot be moved, a RuntimeError names it.
    ``fit`` runs with gradients enabled even if the caller is inside ``torch.no_grad()``.

    What ``fit`` returns (None, a ``train.History``, or a dict of Histories and JSON values: a loss
    curve, figures measured while training; :mod:`course_lib.record`) is kept in the same file and
    comes back as ``model.record`` (``model.history``: its History), so that a notebook that loads
    a model still plots the curve of the run that made it.

    ``share=False``: the model is trained with a learner's own function (a loss written in an
    exercise). Shipped weights (the course's, trained with the course's function) are still loaded
    when the weights switch says "load"; otherwise it trains and is written nowhere, so that what
    another notebook or a benchmark reads from the cache never depends on a learner's answer.

    First of all, shipped weights (:func:`course_lib.weights.find`): a checked file is loaded
    (``model.from_cache`` is True, ``model.shipped`` its path); a shipped file that is missing,
    corrupted or stale stops with a :class:`~course_lib.weights.WeightsError` and is never replaced.
    Inside :func:`course_lib.weights.exporting` (``course_lib.pretrain``) the disk cache is skipped and
    the trained model goes to the export folder. Under torchrun only rank 0 writes."""
    path = cache_path(name, config)
    model = build()
    if not isinstance(model, nn.Module):
        raise TypeError(f"build: expected a function returning an nn.Module, got {type(model).__name__}")
    shipped = weights.find(path.stem, name, config)
    if shipped is not None:
        rec = weights.load_into(model, shipped)
        model.shipped = shipped
        if verbose:
            print(f"{name}: loaded the course's trained weights ({shipped}); WEIGHTS = \"train\" trains it here")
        return _finish(model, True, rec)
    export = weights.export_folder()
    if not share:
        with torch.enable_grad():
            rec = fit(model)
        return _finish(model, False, record.loads(record.dumps(rec)))
    if path.exists() and export is None:
        problem = _load_into(model, path)
        if problem is None:
            if verbose:
                print(f"{name}: loaded from the cache ({path})")
            return _finish(model, True, model.record)
        kind, what = problem
        aside = _move_aside(path, kind)
        warnings.warn(f"{name}: the cached weights {path} {what}; kept as {aside}, training again",
                      RuntimeWarning, stacklevel=2)
        model = build()                                     # from scratch, not half-loaded
    with torch.enable_grad(), weights.recording() as rec_time:   # even when called under no_grad
        text = record.dumps(fit(model))
    rec = record.loads(text)                   # the same structure a later load gives back
    if not distributed.is_main():
        return _finish(model, False, rec)
    if export is not None:
        weights.save(model, export, path.stem, name, config, steps=rec_time["steps"], seconds=rec_time["seconds"],
                     fp16=weights.stores_fp16(name), record=text)
        return _finish(model, False, rec)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        state = model.state_dict()
        torch.save(state if text is None else {"state_dict": state, "record": text}, tmp)
        os.chmod(tmp, 0o644)                                # mkstemp makes it private
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return _finish(model, False, rec)
