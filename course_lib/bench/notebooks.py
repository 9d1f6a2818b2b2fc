"""Time every solution notebook (or those named) of the course folder in the current mode.

    python -m course_lib.bench notebooks --json [--mode lecture] [--course DIR] [NAME...]
    -> {"bench": "notebooks", "mode": ..., "device": ..., ..., "source": ...,
        "notebooks": {"00_welcome": seconds, ...}, "bars": {}}

The course folder is ``--course DIR``, or else the nearest folder at or above the current directory
that holds ``solutions/`` (:func:`course_lib.course.folder.course_folder`).
"""
import argparse
from pathlib import Path

from course_lib import runtime
from course_lib.course import runner
from course_lib.course.folder import CourseNotFound


def run(args: list[str]) -> dict:
    p = argparse.ArgumentParser(prog="bench notebooks")
    p.add_argument("names", nargs="*")
    p.add_argument("--source", default="solutions", choices=runner.SOURCES)
    p.add_argument("--course", type=Path, default=None,
                   help="the course folder, holding solutions/ (default: found from the current directory)")
    a = p.parse_args(args)
    try:
        seconds = runner.run_all(a.names, runtime.mode(), a.source, course=a.course)
    except CourseNotFound as e:
        raise SystemExit(f"error: {e}") from None
    return {"source": a.source, "notebooks": seconds, "bars": {}}
