"""Calling the learner's function as a notebook would, and saying what went wrong.

Every call of the learner's function in a check goes through :func:`call`, which

* runs it on tensors the check keeps copies of, and fails if the function changed one in place
  (``x += ...``, ``x.mul_(...)``: later cells would plot a modified input);
* stops it after :data:`CALL_SECONDS` seconds (an endless loop gets a message, not a hung kernel);
* turns an exception it raises into a message that says which input raised it;
* fails if the function hands in the course's own reference (through a wrapper, a lambda or
  ``functools.partial``): a check measures the learner's code.

:class:`Mismatch` is what every check raises; :func:`tracking` records, for one running check, the
cases on which the function returned. :mod:`course_lib.course.checking` builds on this module.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import signal
import sys
import threading
from dataclasses import dataclass, field
from typing import Callable

import torch

CALL_SECONDS = 10.0          # how long one call of the learner's function may run


class Mismatch(AssertionError):
    """Raised by a checker: the message says the first thing that is wrong."""


class UsesReference(Mismatch):
    """The function handed in is (or calls) the course's own reference implementation."""


@dataclass
class Progress:
    """What the check saw of the learner's function so far (one per running check): the cases on
    which it returned, so a later NotImplementedError can say which part is still to do."""
    reference: Callable | None = None
    returned: list = field(default_factory=list)


_progress = Progress()


@contextlib.contextmanager
def tracking(reference: Callable | None):
    """Used by homework.run_check around one check: records the cases on which the candidate
    returned, and which function is the reference it must not call."""
    global _progress
    before, _progress = _progress, Progress(reference)
    try:
        yield _progress
    finally:
        _progress = before


# ----------------------------------------------------------------------------- calling the learner

def _code_of(fn) -> set:
    """The code objects that running ``fn`` means running the reference itself."""
    codes = set()
    while isinstance(fn, functools.partial):
        fn = fn.func
    fn = getattr(fn, "__func__", fn)                        # bound methods
    # a decorated function (@torch.no_grad(), any functools.wraps wrapper) runs the decorator's code,
    # which every function with that decorator shares: compare the code it wraps
    fn = inspect.unwrap(fn) if callable(fn) else fn
    code = getattr(fn, "__code__", None)
    if code is not None:
        codes.add(code)
    forward = getattr(type(fn), "forward", None) if isinstance(fn, torch.nn.Module) else None
    if forward is not None and hasattr(forward, "__code__"):
        codes.add(forward.__code__)
    return codes


def is_reference(candidate, reference) -> bool:
    """``candidate`` is the reference itself, a partial of it, or a function with its very code."""
    if candidate is reference:
        return True
    c = candidate
    while isinstance(c, functools.partial):
        c = c.func
        if c is reference:
            return True
    ref_codes = _code_of(reference)
    return bool(ref_codes) and bool(_code_of(candidate) & ref_codes)


class Timeout(BaseException):
    """Raised inside the learner's function when its time is up (BaseException: a bare
    ``except Exception`` in the learner's code cannot swallow it)."""


@contextlib.contextmanager
def time_limit(seconds: float):
    """SIGALRM-based limit (main thread of a Unix process, as in a Jupyter kernel or pytest);
    elsewhere no limit."""
    usable = (seconds and hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return

    def on_alarm(signum, frame):
        raise Timeout()
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@contextlib.contextmanager
def _watch_reference(codes: set):
    """Raise UsesReference as soon as a frame of the reference's code starts inside the block."""
    if not codes:
        yield
        return
    previous = sys.getprofile()

    def profiler(frame, event, arg):
        if event == "call" and frame.f_code in codes:
            sys.setprofile(previous)
            raise UsesReference("your function calls the course's reference implementation; "
                                "the check needs your own code")
    sys.setprofile(profiler)
    try:
        yield
    finally:
        sys.setprofile(previous)


def _tensors(obj, path: str):
    """(path, tensor) for every tensor in an argument, looking into lists, tuples and dicts."""
    if isinstance(obj, torch.Tensor):
        yield path, obj
    elif isinstance(obj, (list, tuple)):
        for i, o in enumerate(obj):
            yield from _tensors(o, f"{path}[{i}]")
    elif isinstance(obj, dict):
        for k, o in obj.items():
            yield from _tensors(o, f"{path}[{k!r}]")


def clone_inputs(obj):
    """A deep copy of the tensors in an argument (modules and functions are shared)."""
    if isinstance(obj, torch.Tensor):
        out = obj.detach().clone()
        return out.requires_grad_(obj.requires_grad) if obj.is_leaf else out
    if isinstance(obj, (list, tuple)):
        return type(obj)(clone_inputs(o) for o in obj)
    if isinstance(obj, dict):
        return {k: clone_inputs(o) for k, o in obj.items()}
    return obj


def _unchanged(now: torch.Tensor, before: torch.Tensor) -> bool:
    """Same shape, dtype and values (NaN equal to NaN); a meta tensor has no values, so there only
    its shape and dtype can be compared."""
    if now.shape != before.shape or now.dtype != before.dtype:
        return False
    if now.device.type == "meta" or before.device.type == "meta":
        return True
    if now.is_floating_point():
        return bool(torch.equal(now.isnan(), before.isnan()) and torch.equal(now.nan_to_num(), before.nan_to_num()))
    return bool(torch.equal(now, before))


def _arg_names(fn, n_args: int) -> list[str]:
    import inspect
    try:
        params = [p.name for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    return [params[i] if i < len(params) else f"argument {i + 1}" for i in range(n_args)]


def call(candidate: Callable, *args, case: str = "", seconds: float | None = None, **kwargs):
    """Call the learner's function on ``args`` as a notebook would, and say what went wrong:

    * it raised: ``Mismatch("on <case>: your function raised ValueError: ...")`` (chained, so a
      NotImplementedError still reads as "not attempted");
    * it ran longer than ``seconds`` (default :data:`CALL_SECONDS`);
    * it changed one of its tensor inputs in place;
    * it ran the course's reference.
    """
    where = f"on {case}: " if case else ""
    kept = [(name, t, t.detach().clone()) for i, a in enumerate(args)
            for name, t in _tensors(a, _arg_names(_progress.reference or candidate, len(args))[i])]
    kept += [(name, t, t.detach().clone()) for k, a in kwargs.items() for name, t in _tensors(a, k)]
    limit = CALL_SECONDS if seconds is None else seconds
    codes = _code_of(_progress.reference) if _progress.reference is not None else set()
    try:
        with time_limit(limit), _watch_reference(codes):
            out = candidate(*args, **kwargs)
    except UsesReference:
        raise
    except Timeout:
        raise Mismatch(f"{where}your function did not finish within {limit:g} s (an endless loop, or "
                       f"far more work than the exercise needs?)") from None
    except Mismatch:
        raise
    except Exception as e:
        raise Mismatch(f"{where}your function raised {type(e).__name__}: {e}") from e
    for name, t, before in kept:
        if not _unchanged(t.detach(), before):
            raise Mismatch(f"{where}your function changed its input `{name}` in place (e.g. `{name} += ...`, "
                           f"`{name}.mul_(...)`, `{name}.clamp_(...)`): the caller's tensor must stay as it "
                           f"was; compute a new tensor instead")
    _progress.returned.append(case)
    return out


BROADCAST = "must match the size of tensor"      # what torch says when two shapes do not broadcast


def call_hinted(candidate: Callable, *args, case: str = "", hints: dict | None = None, returns: tuple | None = None,
                **kwargs):
    """:func:`call`, and two things most checks need: where the learner's function raised an error
    whose text holds a key of ``hints`` (e.g. :data:`BROADCAST`), the message adds that hint (the
    shape the exercise needs); with ``returns`` (the names of the parts, e.g. ``("x_t", "v")``) the
    result must be a tuple of that many parts (a list is taken as one), and anything else is named."""
    try:
        out = call(candidate, *args, case=case, **kwargs)
    except Mismatch as e:
        for fragment, hint in (hints or {}).items():
            if fragment in str(e):
                raise Mismatch(f"{e} ({hint})") from e
        raise
    if returns is None:
        return out
    if isinstance(out, list):
        out = tuple(out)
    if not isinstance(out, tuple) or len(out) != len(returns):
        got = f"a tuple of {len(out)}" if isinstance(out, tuple) else type(out).__name__
        raise Mismatch(f"on {case}: return a tuple ({', '.join(returns)}), got {got}")
    return out
