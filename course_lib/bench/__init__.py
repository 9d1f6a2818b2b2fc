"""Benchmarks: figures that take minutes (quality bars, timings), printed as JSON.

``python -m course_lib.bench NAME [--json] [--mode MODE] [args...]`` imports
``course_lib.bench.NAME`` and calls its ``run(args: list[str]) -> dict``. Each content notebook adds
one module here; ``notebooks`` times every notebook.
"""
import importlib
import pkgutil


def available() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def load(name: str):
    if name not in available():
        raise SystemExit(f"unknown benchmark {name!r}: expected one of {', '.join(available())}")
    return importlib.import_module(f"course_lib.bench.{name}")
