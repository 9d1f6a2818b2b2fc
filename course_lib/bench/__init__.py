"""Benchmarks: figures that take minutes (quality bars, timings), printed as JSON.

``python -m course_lib.bench NAME [--json] [--mode MODE] [args...]`` imports
``course_lib.bench.NAME`` and calls its ``run(args: list[str]) -> dict``. Each content notebook adds
one module here; ``notebooks`` times every notebook.

Every benchmark prints one envelope (:func:`measure`): ``bench``, ``mode``, ``device``, ``threads``,
``torch`` (its version) and ``seconds`` (the whole run's wall time), then the figures ``run`` returned,
with its bars under ``bars``: ``{name: {"value", "limit", "passed"}}`` (:func:`at_most`,
:func:`at_least`; ``{}`` for a benchmark without bars). ``run`` returns only its own figures; what a
benchmark prints on stdout while it runs (progress, cache messages) goes to stderr, so ``--json``
stdout is one JSON object.
"""
import contextlib
import importlib
import pkgutil
import sys
import time

ENVELOPE = ("bench", "mode", "device", "threads", "torch", "seconds")


def available() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def load(name: str):
    if name not in available():
        raise SystemExit(f"unknown benchmark {name!r}: expected one of {', '.join(available())}")
    return importlib.import_module(f"course_lib.bench.{name}")


def at_most(value: float, limit: float) -> dict:
    """A bar met when ``value <= limit``."""
    return {"value": value, "limit": limit, "passed": bool(value <= limit)}


def at_least(value: float, limit: float) -> dict:
    """A bar met when ``value >= limit``."""
    return {"value": value, "limit": limit, "passed": bool(value >= limit)}


def measure(name: str, args: list[str] = ()) -> dict:
    """Run benchmark ``name`` with ``args`` (its stdout sent to stderr) and wrap its figures in the
    envelope: bench, mode, device, threads, torch, seconds, the figures, bars."""
    import torch

    from course_lib import runtime
    module = load(name)
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):        # progress and cache messages must not break --json
        figures = module.run(list(args))
    seconds = time.perf_counter() - t0
    clash = sorted(set(figures) & set(ENVELOPE))
    if clash:
        raise RuntimeError(f"bench {name}: run() returned {clash}, which the envelope sets")
    return {"bench": name, "mode": runtime.mode(), "device": str(runtime.device()),
            "threads": torch.get_num_threads(), "torch": torch.__version__, "seconds": round(seconds, 1),
            **figures, "bars": figures.get("bars", {})}
