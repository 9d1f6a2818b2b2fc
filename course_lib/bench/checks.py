"""Benchmark of the homework checks: how long each exercise's check takes on the course's own answer.

A check runs every time a learner executes the cell after an exercise, so it should answer in about
a second. How long it takes depends on the machine and its load, so the figure is measured here, not
asserted in tests (tests/ only assert that the reference passes every check).

    python -m course_lib.bench checks --json [--bar 2.0] [--repeat 3]

Figures: ``check_seconds`` per exercise (the median of ``--repeat`` runs), ``max_seconds``,
``slower_than_bar``, ``failures``; bars: ``max_check_seconds`` (at most ``--bar``) and
``reference_passes`` (the number of checks that reject the course's own answer, at most 0).
"""
from __future__ import annotations

import argparse
import time

import torch

from course_lib.bench import at_most
from course_lib.course.exercises import REGISTRY

BAR = 2.0               # seconds per check, at most (the median of --repeat runs)


def run(args: list[str]) -> dict:
    p = argparse.ArgumentParser(prog="python -m course_lib.bench checks")
    p.add_argument("--bar", type=float, default=BAR, help="seconds per check, at most")
    p.add_argument("--repeat", type=int, default=3, help="runs per check; the median is reported")
    a = p.parse_args(args)
    torch.zeros(2, device="meta").clamp(-1, 1)        # PyTorch's one-time set-up of the meta device (~1 s)
    seconds, failed = {}, []
    for name, ex in REGISTRY.items():
        runs = []
        for _ in range(max(1, a.repeat)):
            start = time.perf_counter()
            try:
                ex.checker(ex.reference)          # the check itself, on the course's answer
            except Exception as e:                # a check that rejects its own reference is a bug
                failed.append(f"{name}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            runs.append(time.perf_counter() - start)
        seconds[name] = round(sorted(runs)[len(runs) // 2], 3)
    slow = sorted(n for n, s in seconds.items() if s > a.bar)
    return {"n_checks": len(seconds), "check_seconds": seconds, "max_seconds": max(seconds.values()),
            "slower_than_bar": slow, "failures": failed,
            "bars": {"max_check_seconds": at_most(max(seconds.values()), a.bar),
                     "reference_passes": at_most(len(failed), 0)}}
