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
:func:`expect_tensor` and :func:`compare` write those messages. Each exercise lists its known
mistakes once (``Exercise.mistakes``: a wrong implementation and its message); the check names the
one that reproduces the learner's values, and ``tests/`` submits every one and asserts it is caught
with its own message, beside wrong answers of the kinds every check catches.

When ``$COURSE_GRADE_LOG`` names a file, every check also appends a JSON line there; this is how
``python -m course_lib.course.assignments grade`` scores a submitted notebook.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Callable

from course_lib.course.checking import (Case, Exercise, Mismatch, Progress, UsesReference,  # noqa: F401
                                        compare, expect_tensor, fingerprint, is_reference, tracking)
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


def _is_not_implemented(err: BaseException) -> bool:
    while err is not None:
        if isinstance(err, NotImplementedError):
            return True
        err = err.__cause__ or err.__context__
    return False


def _not_attempted(name: str, ex: Exercise, progress: Progress, err: BaseException | None) -> Result:
    """Not attempted; but if the function already returned on some cases, say that those parts work."""
    if not progress.returned:
        return Result(name, "not attempted", "", ex.points)
    done = progress.returned[0] or "the first inputs"
    where = str(err).split(": your function raised")[0] if err is not None else ""
    where = f" ({where})" if where and where.startswith("on ") else ""
    return Result(name, "not attempted",
                  f"your function works on {done}, but still raises NotImplementedError{where}: finish "
                  f"the part that is left", ex.points)


def run_check(name: str, candidate) -> Result:
    """Check ``candidate`` silently; returns a :class:`Result` (used by tests and the grader).

    Handing in the course's reference (the same function, a partial of it, or a wrapper that calls
    it) is never counted as the learner's work: when grading it fails; in a notebook the usual cause
    is a check cell run again after it fell back to the reference, and it reports "not attempted"
    with that explanation."""
    ex = get(name)
    if candidate is None:
        return Result(name, "not attempted", "", ex.points)
    grading = bool(os.environ.get("COURSE_GRADE_LOG"))
    if candidate is ex.reference and not grading:
        return Result(name, "not attempted", "this variable holds the course's reference (the check falls "
                      "back to it); run your exercise cell again, then this check", ex.points)
    if is_reference(candidate, ex.reference):      # the reference itself, a partial of it, its code
        return Result(name, "failed", "this is the course's reference implementation, not your code", ex.points)
    with tracking(ex.reference) as progress:
        try:
            ex.checker(candidate)
        except UsesReference as e:
            return Result(name, "failed", str(e), ex.points)
        except Mismatch as e:
            if _is_not_implemented(e):
                return _not_attempted(name, ex, progress, e)
            return Result(name, "failed", str(e), ex.points)
        except NotImplementedError as e:
            return _not_attempted(name, ex, progress, e)
        except Exception as e:  # the check could not use what the function returned
            if _is_not_implemented(e):
                return _not_attempted(name, ex, progress, e)
            return Result(name, "failed", f"the check could not use what your function returned "
                          f"({type(e).__name__}: {e}); return what the exercise asks for", ex.points)
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


def notebook_exercises(notebook: str, start: str | os.PathLike | None = None) -> tuple[list[str] | None, str]:
    """The exercises that ``solutions/<notebook>.ipynb`` checks, in order, and where they were read;
    ``(None, why)`` when the course folder or the notebook cannot be found from ``start`` (default:
    the current directory, which in Jupyter is the notebook's folder)."""
    from course_lib.course.folder import CourseNotFound, course_folder, exercises_in
    name = notebook if notebook.endswith(".ipynb") else f"{notebook}.ipynb"
    try:
        path = course_folder(start=start) / "solutions" / name
    except CourseNotFound as e:
        return None, str(e)
    if not path.exists():
        return None, f"{path} does not exist"
    return exercises_in(path), str(path)


def summary(notebook: str | None = None) -> list[Result]:
    """Print the results of this notebook's checks and the score.

    With ``notebook`` (e.g. ``"02_tokens"``) every exercise that ``solutions/<notebook>.ipynb`` checks
    is counted, run or not (an exercise whose check cell has not run yet counts as not attempted);
    without it, or when the course folder cannot be found, only the checks run so far in this
    session are counted, and the summary says so."""
    expected, where = notebook_exercises(notebook) if notebook else (None, "")
    if expected is None:
        results = list(_RESULTS.values())
    else:
        results = [_RESULTS.get(n) or Result(n, "not attempted", "its check cell has not run yet",
                                             get(n).points if n in REGISTRY else 1) for n in expected]
    for r in results:
        print(r.line().split(" — ")[0])
    got = sum(r.score for r in results)
    total = sum(r.points for r in results)
    print(f"score: {got}/{total}")
    if notebook and expected is None:
        print(f"(could not list {notebook}'s exercises: {where}; the score counts only the checks run "
              f"so far in this session)")
    return results
