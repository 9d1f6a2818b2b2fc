"""Where the course runs: the mode switch, the device, seeding, autocast.

Everything that depends on how much compute a learner has is switched here, in one place:

* the **mode**: ``COURSE_MODE`` = ``quick`` (CI, a first skim, well under 90 s a notebook on 2 CPU
  cores), ``lecture`` (default: a laptop CPU, about 5 minutes a notebook, results that look right)
  or ``full`` (a GPU: bigger models, longer training); override with :func:`set_mode`. A notebook's
  budgets (step counts, model sizes) live beside its experiments in its recipe
  (:mod:`course_lib.recipes`), one frozen dataclass instance per mode, and :func:`pick` reads the
  current mode's instance;
* the **device**: ``cuda``, then ``mps``, then ``cpu``; override with ``COURSE_DEVICE=cpu`` (or
  :func:`set_device`); :func:`validate_device` turns a learner's ``device=...`` into a device that
  exists here, or a clear error;
* **seeding** of python, numpy and torch (:func:`seed_everything`), and bf16 **autocast** on a CUDA
  GPU only (:func:`autocast`);
* **eval mode for a block** (:func:`evaluating`, every submodule's mode restored after it) and
  **timing** (:func:`seconds_per_step`, :func:`timed`: the GPU waited for before the clock is read);
* the **cache folder** of trained models that several notebooks share (:func:`cache_dir`:
  ``$COURSE_CACHE``, else ``~/.cache/two-world-lines``).
* the **weights switch** (:func:`weights`): load the trained weights the course ships in
  ``data/weights/`` (``"load"``, the default outside quick mode) or train (``"train"``;
  ``COURSE_WEIGHTS`` or :func:`set_weights`).

**CPU threads** are set once, here: ``COURSE_THREADS`` if set (or :func:`set_threads`), else torch's
own choice (one per core, or ``OMP_NUM_THREADS``). And OpenMP's waiting threads sleep after a short
spin instead of spinning for long: measured on 2 cores, two torch processes with 2 threads each ran
at 6 and 6 steps/s (31 alone) with the default spin and at 15 and 15 with it shortened, while one
process alone lost nothing measurable. So a notebook beside another kernel or a training run gets
its fair half of the machine instead of a sixth. :func:`describe` reports the count.

Usage::

    from course_lib import runtime
    runtime.describe()                 # device, mode, torch version, threads
    runtime.set_mode("quick")          # or COURSE_MODE=quick in the environment
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import time
from pathlib import Path
from typing import Callable

import numpy as np

# OpenMP reads these once, when torch loads, so they are set before the first `import torch` (a
# notebook imports runtime first); a value already in the environment wins. GOMP_SPINCOUNT is GNU
# OpenMP's (Linux wheels), KMP_BLOCKTIME (ms) LLVM/Intel OpenMP's (macOS wheels).
for _var, _value in (("GOMP_SPINCOUNT", "1000"), ("KMP_BLOCKTIME", "1")):
    os.environ.setdefault(_var, _value)

import torch  # noqa: E402  (after the OpenMP settings above)

MODES = ("quick", "lecture", "full")
DEFAULT_MODE = "lecture"
_state = {"mode": None, "device": None}


def set_threads(n: int | None = None) -> int:
    """Use ``n`` CPU threads for torch's operators (None: ``$COURSE_THREADS`` if set, else leave
    torch's choice). Returns the count in use. Called once when runtime is imported."""
    if n is None:
        wanted = os.environ.get("COURSE_THREADS", "").strip()
        if not wanted:
            return torch.get_num_threads()
        if not wanted.isdigit() or int(wanted) < 1:
            raise ValueError(f"COURSE_THREADS must be a positive integer, got {wanted!r}")
        n = int(wanted)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"threads must be a positive int, got {n!r}")
    torch.set_num_threads(n)
    return n


set_threads()


def _check_mode(name: str) -> str:
    if name not in MODES:
        raise ValueError(f"unknown course mode {name!r}: expected one of {', '.join(MODES)}")
    return name


def mode() -> str:
    """The current course mode: set_mode() if called, else $COURSE_MODE, else 'lecture'."""
    if _state["mode"] is not None:
        return _state["mode"]
    return _check_mode(os.environ.get("COURSE_MODE", DEFAULT_MODE).strip().lower() or DEFAULT_MODE)


def set_mode(name: str) -> str:
    """Set the mode for this process (a notebook's first cell may call this)."""
    _state["mode"] = _check_mode(str(name).strip().lower())
    return _state["mode"]


def pick(budgets: dict, mode_name: str | None = None):
    """The entry of ``budgets`` (one frozen dataclass instance per mode, each with a ``mode`` field)
    for the current (or given) mode.

    Each recipe in :mod:`course_lib.recipes` keeps its notebook's budget type and reads it with this::

        @dataclass(frozen=True)
        class Budget:
            mode: str       # the course mode this budget is for
            steps: int      # training steps

        BUDGETS = {m: Budget(m, steps) for m, steps in (("quick", 800), ("lecture", 5000), ("full", 20000))}
        B = runtime.pick(BUDGETS)          # B.steps, B.mode
    """
    m = _check_mode(mode_name) if mode_name is not None else mode()
    missing = [k for k in MODES if k not in budgets]
    if missing:
        raise KeyError(f"budgets must have an entry for every mode {MODES}; missing {missing}")
    entry = budgets[m]
    if not dataclasses.is_dataclass(entry) or isinstance(entry, type) or getattr(entry, "mode", None) != m:
        raise TypeError(f"budgets[{m!r}]: expected a dataclass instance with mode={m!r}, got {entry!r}")
    for f in dataclasses.fields(entry):                 # a nested budget of another mode: a typo
        part_mode = getattr(getattr(entry, f.name), "mode", m)
        if part_mode != m:
            raise TypeError(f"budgets[{m!r}].{f.name}: a budget of mode {part_mode!r} inside the {m!r} budget")
    return entry


WEIGHTS = ("load", "train")


def weights() -> str:
    """Whether trained models come from the weights the course ships (``data/weights/``, see
    :mod:`course_lib.weights`): ``"load"`` (the default in lecture and full mode: a shipped file whose
    budget matches is loaded, else the disk cache, else the model trains) or ``"train"`` (shipped
    weights are ignored: the model comes from this machine's disk cache, else trains while you watch;
    delete the cache, or point ``COURSE_CACHE`` elsewhere, to watch it again). Quick mode always
    trains. Set with :func:`set_weights` (a notebook's ``WEIGHTS = "train"``) or ``COURSE_WEIGHTS``."""
    if mode() == "quick":
        return "train"
    if _state.get("weights") is not None:
        return _state["weights"]
    wanted = os.environ.get("COURSE_WEIGHTS", "").strip().lower() or "load"
    if wanted not in WEIGHTS:
        raise ValueError(f"COURSE_WEIGHTS: expected one of {', '.join(WEIGHTS)}, got {wanted!r}")
    return wanted


def set_weights(choice: str | None) -> str:
    """``"load"`` or ``"train"`` for this process (None: back to ``$COURSE_WEIGHTS``); returns
    :func:`weights` (which stays ``"train"`` in quick mode)."""
    if choice is not None and choice not in WEIGHTS:
        raise ValueError(f"weights: expected one of {', '.join(map(repr, WEIGHTS))}, got {choice!r}")
    _state["weights"] = choice
    return weights()


def _auto_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def device() -> torch.device:
    """The device every tensor of the course lives on: set_device(), $COURSE_DEVICE, else auto."""
    if _state["device"] is not None:
        return _state["device"]
    wanted = os.environ.get("COURSE_DEVICE", "").strip()
    return validate_device(wanted, "COURSE_DEVICE") if wanted else _auto_device()


def validate_device(name, arg: str = "device") -> torch.device:
    """``name`` (a string or a ``torch.device``) as a ``torch.device`` that exists on this machine.

    ValueError naming the argument ``arg`` for an unknown device, or for ``"cuda"`` / ``"mps"``
    where torch sees no such accelerator (instead of torch's own assertion deep inside a call).
    Every entry point that takes a ``device`` argument checks it with this."""
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"{arg}: unknown device {name!r}: expected 'cpu', 'cuda', 'cuda:N' or 'mps'") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{arg}: device {name!r} asked for, but torch sees no CUDA GPU here "
                         "(leave device unset to use runtime.device())")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"{arg}: device {name!r} asked for, but MPS is not available here")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"{arg}: device {name!r}: expected 'cpu', 'cuda' or 'mps', got type {dev.type!r}")
    return dev


def set_device(name: str | torch.device | None) -> torch.device:
    """Force a device (``None`` goes back to automatic choice)."""
    _state["device"] = None if name is None else validate_device(name)
    return device()


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed python, numpy and torch (all devices); returns a torch.Generator seeded the same."""
    if not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def autocast(enabled: bool = True):
    """``torch.autocast("cuda", dtype=torch.bfloat16)`` on a CUDA device; elsewhere (or with
    ``enabled=False``) a ``contextlib.nullcontext()``: bf16 on a laptop CPU is far slower than fp32."""
    dev = device()
    if enabled and dev.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def sync() -> None:
    """Wait for the GPU (if the course runs on one), so that a wall-clock time covers its queued work."""
    if device().type == "cuda":
        torch.cuda.synchronize()


def seconds_per_step(step: Callable[[int], object], n: int, warmup: int = 0) -> float:
    """Wall seconds per call of ``step(k)``: ``warmup`` untimed calls (k = 0, 1, ...), then the mean
    over ``n`` timed ones (k goes on counting), the GPU waited for before each clock reading. The
    course's one timing loop (training steps, generation passes, a quantizer's updates)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected a positive int (timed calls), got {n!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup: expected a non-negative int (untimed calls), got {warmup!r}")
    for k in range(warmup):
        step(k)
    sync()
    t0 = time.perf_counter()
    for k in range(warmup, warmup + n):
        step(k)
    sync()
    return (time.perf_counter() - t0) / n


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    """``(fn(), wall seconds it took)``, the GPU waited for before and after."""
    sync()
    t0 = time.perf_counter()
    out = fn()
    sync()
    return out, time.perf_counter() - t0


@contextlib.contextmanager
def evaluating(*modules: torch.nn.Module):
    """Eval mode for ``modules`` inside the block; after it, even when the block raises, every
    submodule gets back the train/eval mode it had (a frozen part that was in eval mode stays so)::

        with runtime.evaluating(model, head):
            ...                                   # dropout off, batch norm on its running statistics
    """
    for i, m in enumerate(modules):
        if not isinstance(m, torch.nn.Module):
            raise TypeError(f"evaluating: argument {i} must be an nn.Module, got {type(m).__name__}")
    before = [(sub, sub.training) for m in modules for sub in m.modules()]
    try:
        for m in modules:
            m.eval()
        yield modules[0] if len(modules) == 1 else modules
    finally:
        for sub, was in before:
            sub.training = was


def cache_dir() -> Path:
    """The folder where trained models are kept between runs (created if missing):
    ``$COURSE_CACHE`` if set, else ``~/.cache/two-world-lines``. Deleting it only costs retraining."""
    where = os.environ.get("COURSE_CACHE", "").strip()
    path = Path(where).expanduser() if where else Path.home() / ".cache" / "two-world-lines"
    path.mkdir(parents=True, exist_ok=True)
    return path


def describe() -> dict:
    """Print and return where the course runs: device, mode, torch version, CPU threads, and whether
    trained models are loaded from the course's weights or trained here (:func:`weights`)."""
    dev = device()
    info = {
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else dev.type,
        "mode": mode(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "weights": weights(),
    }
    print(f"device {info['device']} ({info['device_name']}) · mode {info['mode']} · "
          f"torch {info['torch']} · {info['threads']} CPU threads · weights: {info['weights']}"
          + (" (quick mode always trains)" if info["mode"] == "quick" else ""))
    return info
