"""Time every solution notebook (or those named) in the current mode.

    python -m course_lib.bench notebooks --json [--mode lecture] [NAME...]
    -> {"mode": ..., "device": ..., "seconds": {"00_welcome": ..., ...}}
"""
import argparse

from course_lib import runtime
from course_lib.course import runner


def run(args: list[str]) -> dict:
    p = argparse.ArgumentParser(prog="bench notebooks")
    p.add_argument("names", nargs="*")
    p.add_argument("--source", default="solutions", choices=("solutions", "notebooks"))
    a = p.parse_args(args)
    seconds = runner.run_all(a.names, runtime.mode(), a.source)
    return {"mode": runtime.mode(), "device": str(runtime.device()), "source": a.source,
            "seconds": seconds}
