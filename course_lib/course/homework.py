"""Exercise checks with specific feedback, and fallback to the course's reference.

A solution notebook has the answer between ``### BEGIN SOLUTION`` and ``### END SOLUTION``; the
student build replaces it by ``raise NotImplementedError()``. The cell after it calls::

    euler_step = homework.check("welcome.euler_step", euler_step)

which tests the learner's function against the reference on random inputs and on properties, prints
one line, and returns the function the rest of the notebook should use:

* ``passed``         -> the learner's own function;
* ``not attempted``  -> (it raised NotImplementedError) the reference, so the lecture goes on;
* ``failed``         -> the first thing wrong (which input, what was expected, what came), and the
  reference.

Exercises are listed in ``EXERCISES`` of ``course_lib/course/exercises/<topic>.py``. A checker gets
the candidate and raises :class:`Mismatch` with a message naming the first wrong thing; the helpers
:func:`expect_tensor` and :func:`compare` write those messages. ``tests/`` holds deliberately wrong
answers for every exercise and asserts each one is caught.

When ``$COURSE_GRADE_LOG`` names a file, every check also appends a JSON line there; this is how
``python -m course_lib.course.assignments grade`` scores a submitted notebook.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Callable

from course_lib.course.checking import Case, Exercise, Mismatch, compare, expect_tensor, fingerprint  # noqa: F401
from course_lib.course.exercises import REGISTRY

STATUSES = ("passed", "not attempted", "failed")


@dataclass
class Result:
    name: str
    status: str  # one of STATUSES
    message: str = ""
    points: int = 1

    @property
    def score(self) -> int:
        return self.points if self.status == "passed" else 0

    def line(self) -> str:
        mark = {"passed": "✅", "not attempted": "⬜", "failed": "❌"}[self.status]
        text = f"{mark} [{self.name}] {self.status}"
        if self.message:
            text += f": {self.message}"
        if self.status != "passed":
            text += " — the notebook goes on with the course's reference implementation."
        return text


_RESULTS: dict[str, Result] = {}


def registry() -> dict[str, Exercise]:
    """Every exercise of the course, by name (the explicit registry of course_lib.course.exercises)."""
    return dict(REGISTRY)


def get(name: str) -> Exercise:
    exercises = registry()
    if name not in exercises:
        raise KeyError(f"no exercise named {name!r}; known: {', '.join(sorted(exercises))}")
    return exercises[name]


def reference(name: str) -> Callable:
    """The course's reference implementation of exercise ``name``."""
    return get(name).reference


class _NotAttempted(Exception):
    pass


def _is_not_implemented(err: BaseException) -> bool:
    while err is not None:
        if isinstance(err, NotImplementedError):
            return True
        err = err.__cause__ or err.__context__
    return False


def run_check(name: str, candidate) -> Result:
    """Check ``candidate`` silently; returns a :class:`Result` (used by tests and the grader)."""
    ex = get(name)
    if candidate is None:
        return Result(name, "not attempted", "", ex.points)
    if candidate is ex.reference and os.environ.get("COURSE_GRADE_LOG"):
        return Result(name, "failed", "this is the course's reference implementation, not your code", ex.points)
    try:
        ex.checker(candidate)
    except Mismatch as e:
        if _is_not_implemented(e):
            return Result(name, "not attempted", "", ex.points)
        return Result(name, "failed", str(e), ex.points)
    except NotImplementedError:
        return Result(name, "not attempted", "", ex.points)
    except Exception as e:  # the learner's code crashed: say where, not just "fail"
        if _is_not_implemented(e):
            return Result(name, "not attempted", "", ex.points)
        return Result(name, "failed", f"your code raised {type(e).__name__}: {e}", ex.points)
    return Result(name, "passed", "", ex.points)


def check(name: str, candidate) -> Callable:
    """Check, print one line, log for grading, and return what the notebook should use next."""
    result = run_check(name, candidate)
    _RESULTS[name] = result
    print(result.line())
    log = os.environ.get("COURSE_GRADE_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(json.dumps({"name": name, "status": result.status, "message": result.message,
                                "points": result.points}) + "\n")
    return candidate if result.status == "passed" else reference(name)


def summary() -> list[Result]:
    """Print the results of the checks run so far in this session."""
    results = list(_RESULTS.values())
    for r in results:
        print(r.line().split(" — ")[0])
    got = sum(r.score for r in results)
    total = sum(r.points for r in results)
    print(f"score: {got}/{total}")
    return results
