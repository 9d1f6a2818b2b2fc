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

Exercises are registered with :func:`exercise` in ``course_lib/exercises/<topic>.py``. A checker gets
the candidate and raises :class:`Mismatch` with a message naming the first wrong thing; the helpers
:func:`expect_tensor` and :func:`compare` write those messages. ``tests/`` holds deliberately wrong
answers for every exercise and asserts each one is caught.

When ``$COURSE_GRADE_LOG`` names a file, every check also appends a JSON line there; this is how
``python -m course_lib.assignments grade`` scores a submitted notebook.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Callable

import torch

STATUSES = ("passed", "not attempted", "failed")


class Mismatch(AssertionError):
    """Raised by a checker: the message says the first thing that is wrong."""


@dataclass
class Exercise:
    name: str
    reference: Callable
    checker: Callable  # checker(candidate) -> None, raises Mismatch
    points: int = 1
    description: str = ""


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


_REGISTRY: dict[str, Exercise] = {}
_RESULTS: dict[str, Result] = {}


def exercise(name: str, reference: Callable, points: int = 1, description: str = ""):
    """Decorator registering ``checker`` as the check of exercise ``name``."""
    def register(checker: Callable) -> Callable:
        _REGISTRY[name] = Exercise(name, reference, checker, points, description or checker.__doc__ or "")
        return checker
    return register


def registry() -> dict[str, Exercise]:
    """Every exercise of the course (importing course_lib.exercises registers them all)."""
    import course_lib.exercises  # noqa: F401  (registers on import)
    return dict(_REGISTRY)


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


# --------------------------------------------------------------------------- checker helpers

def fingerprint(t: torch.Tensor, k: int = 4) -> str:
    """A short summary of a tensor (mean, std, first values) to compare step by step with the
    reference's, as NPFL138 does: the first line that differs shows where a layer diverges."""
    if not isinstance(t, torch.Tensor):
        return f"<{type(t).__name__}>"
    f = t.detach().float().flatten().cpu()
    if f.numel() == 0:
        return f"shape {tuple(t.shape)} (empty)"
    first = ", ".join(f"{v:+.4f}" for v in f[:k].tolist())
    std = f.std().item() if f.numel() > 1 else 0.0
    return f"shape {tuple(t.shape)} mean {f.mean().item():+.4f} std {std:.4f} first [{first}]"


def _fmt_index(idx) -> str:
    return "(" + ", ".join(str(int(i)) for i in idx) + ")"


def expect_tensor(got, want: torch.Tensor, what: str, atol: float = 1e-5, rtol: float = 1e-4,
                  check_dtype: bool = True, hint: str = "") -> None:
    """Raise Mismatch naming the first difference between ``got`` and ``want``: type, shape, dtype,
    device, non-finite values, then the largest value error (with its index)."""
    suffix = f" {hint}" if hint else ""
    if not isinstance(got, torch.Tensor):
        raise Mismatch(f"{what}: expected a torch.Tensor, got {type(got).__name__}{suffix}")
    if tuple(got.shape) != tuple(want.shape):
        raise Mismatch(f"{what}: expected shape {tuple(want.shape)}, got {tuple(got.shape)}{suffix}")
    if check_dtype and got.dtype != want.dtype:
        raise Mismatch(f"{what}: expected dtype {want.dtype}, got {got.dtype}{suffix}")
    if got.device.type != want.device.type:
        raise Mismatch(f"{what}: expected a tensor on {want.device}, got one on {got.device}{suffix}")
    g, w = got.detach().cpu(), want.detach().cpu()
    if g.is_floating_point() or w.is_floating_point():
        g, w = g.double(), w.double()
        bad = ~torch.isfinite(g) & torch.isfinite(w)
        if bad.any():
            i = _fmt_index(bad.nonzero()[0])
            raise Mismatch(f"{what}: value at index {i} is {g[tuple(bad.nonzero()[0])].item()}, "
                           f"expected {w[tuple(bad.nonzero()[0])].item():.6g}{suffix}")
        err = (g - w).abs()
        tol = atol + rtol * w.abs()
        over = err > tol
        if over.any():
            j = torch.argmax(torch.where(over, err, torch.zeros_like(err)))
            idx = torch.unravel_index(j, err.shape) if err.dim() else ()
            gi, wi = g.flatten()[j].item(), w.flatten()[j].item()
            where = f" at index {_fmt_index(idx)}" if err.dim() else ""
            raise Mismatch(f"{what}: value{where} is {gi:.6g}, expected {wi:.6g} "
                           f"({int(over.sum())} of {err.numel()} values wrong){suffix}")
    else:
        diff = g != w
        if diff.any():
            idx = diff.nonzero()[0]
            raise Mismatch(f"{what}: value at index {_fmt_index(idx)} is {g[tuple(idx)].item()}, "
                           f"expected {w[tuple(idx)].item()} ({int(diff.sum())} of {g.numel()} "
                           f"values wrong){suffix}")


@dataclass
class Case:
    """One input to try: a description for the message, positional and keyword arguments."""
    description: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)


def compare(candidate: Callable, reference_fn: Callable, cases: list[Case], atol: float = 1e-5,
            rtol: float = 1e-4, check_dtype: bool = True) -> None:
    """Call both functions on every case (cloned inputs, so in-place edits cannot leak) and raise
    Mismatch at the first output that differs. Outputs may be tensors or tuples of tensors."""
    def clone(a):
        return a.clone() if isinstance(a, torch.Tensor) else a
    for case in cases:
        args = tuple(clone(a) for a in case.args)
        kwargs = {k: clone(v) for k, v in case.kwargs.items()}
        want = reference_fn(*tuple(clone(a) for a in case.args),
                            **{k: clone(v) for k, v in case.kwargs.items()})
        got = candidate(*args, **kwargs)
        if isinstance(want, tuple):
            if not isinstance(got, tuple) or len(got) != len(want):
                n = len(got) if isinstance(got, tuple) else type(got).__name__
                raise Mismatch(f"on {case.description}: expected a tuple of {len(want)} outputs, got {n}")
            for i, (g, w) in enumerate(zip(got, want)):
                expect_tensor(g, w, f"on {case.description}, output {i}", atol, rtol, check_dtype)
        else:
            expect_tensor(got, want, f"on {case.description}", atol, rtol, check_dtype)
