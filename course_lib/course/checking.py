"""What a check is made of: the exercise record, the Mismatch it raises, and helpers that write
messages naming the first thing wrong.

A checker tries the learner's function on inputs chosen against the mistakes learners make, and
raises :class:`Mismatch` naming the first one. Every call of the learner's function goes through
:func:`call`, which

* runs it on tensors the check keeps copies of, and fails if the function changed one in place
  (``x += ...``, ``x.mul_(...)``: later cells would plot a modified input);
* stops it after :data:`CALL_SECONDS` seconds (an endless loop gets a message, not a hung kernel);
* turns an exception it raises into a message that says which input raised it;
* fails if the function hands in the course's own reference (through a wrapper, a lambda or
  ``functools.partial``): a check measures the learner's code.

:func:`compare` runs :func:`call` and the reference on fresh copies of every :class:`Case` and
compares with :func:`expect_tensor` (type, shape, dtype, device, values, with a hint when the values
are off by a recognisable factor); :func:`expect_loss` checks that a loss is a differentiable 0-d
tensor whose gradients match; :func:`expect_number` refuses strings and bools that ``float()`` would
quietly convert.

The topic modules in :mod:`course_lib.course.exercises` build on this; :mod:`course_lib.course.homework`
runs them. Imports run one way: homework -> exercises -> checking.
"""
from __future__ import annotations

import contextlib
import functools
import math
import numbers
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
class Exercise:
    name: str
    reference: Callable
    checker: Callable  # checker(candidate) -> None, raises Mismatch
    points: int = 1
    description: str = ""


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


class _Timeout(BaseException):
    """Raised inside the learner's function when its time is up (BaseException: a bare
    ``except Exception`` in the learner's code cannot swallow it)."""


@contextlib.contextmanager
def _time_limit(seconds: float):
    """SIGALRM-based limit (main thread of a Unix process, as in a Jupyter kernel or pytest);
    elsewhere no limit."""
    usable = (seconds and hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return

    def on_alarm(signum, frame):
        raise _Timeout()
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


def _clone(obj):
    """A deep copy of the tensors in an argument (modules and functions are shared)."""
    if isinstance(obj, torch.Tensor):
        out = obj.detach().clone()
        return out.requires_grad_(obj.requires_grad) if obj.is_leaf else out
    if isinstance(obj, (list, tuple)):
        return type(obj)(_clone(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _clone(o) for k, o in obj.items()}
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
        with _time_limit(limit), _watch_reference(codes):
            out = candidate(*args, **kwargs)
    except UsesReference:
        raise
    except _Timeout:
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


_NAMED_FACTORS = {
    -1.0: "the sign is flipped",
    2.0: "twice the expected values",
    0.5: "half the expected values",
    math.log(2): "a factor ln 2: natural log where log2 is wanted, or a division by ln 2 missing",
    1 / math.log(2): "a factor 1/ln 2: log2 where the natural log is wanted, or an extra division by ln 2",
}


def off_by(got: torch.Tensor, want: torch.Tensor) -> str:
    """A hint when every value of ``got`` is ``want`` times one factor or plus one offset (a missing
    normalisation, a flipped sign, a wrong log base, dt = 1/(n-1) ...); '' otherwise."""
    g, w = got.detach().double().flatten().cpu(), want.detach().double().flatten().cpu()
    if g.numel() < 2 or not (torch.isfinite(g).all() and torch.isfinite(w).all()):
        return ""
    scale = float(w.abs().max()) or 1.0
    denom = float((w * w).sum())
    if denom > 0:
        c = float((g * w).sum()) / denom
        if abs(c - 1) > 1e-3 and torch.allclose(g, c * w, atol=1e-6 * scale, rtol=1e-5):
            for f, text in _NAMED_FACTORS.items():
                if abs(c - f) < 1e-4 * max(1.0, abs(f)):
                    return f"every value is {c:.6g} times the expected one: {text}"
            near = round(c) if abs(c - round(c)) < 1e-6 and c != 0 else None
            if near is not None and abs(near) > 1:
                return (f"every value is exactly {near} times the expected one: a sum where a mean is "
                        f"wanted, or a normalisation by a size missing?")
            inv = 1 / c if c else 0
            if c and abs(inv - round(inv)) < 1e-6 and abs(round(inv)) > 1:
                return (f"every value is exactly 1/{round(inv)} of the expected one: a mean where a sum is "
                        f"wanted, or an extra division by a size?")
            return f"every value is {c:.6g} times the expected one"
    d = g - w
    if float(d.abs().max()) > 1e-9 and torch.allclose(d, d.mean().expand_as(d), atol=1e-6 * scale):
        return f"every value is off by the same {float(d.mean()):+.6g}"
    return ""


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
        follow = (" (the output should follow the input's dtype: create new tensors with "
                  "dtype=x.dtype / torch.zeros_like, not a fixed dtype)" if want.is_floating_point() else "")
        raise Mismatch(f"{what}: returned dtype {got.dtype}; expected {want.dtype}{follow}{suffix}")
    if got.device.type != want.device.type:
        raise Mismatch(f"{what}: returned a tensor on {got.device}; expected one on {want.device} like the "
                       f"input (create new tensors with device=x.device, not a fixed device){suffix}")
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
            pattern = off_by(g, w)
            pattern = f" ({pattern})" if pattern else ""
            raise Mismatch(f"{what}: value{where} is {gi:.6g}, expected {wi:.6g} "
                           f"({int(over.sum())} of {err.numel()} values wrong){pattern}{suffix}")
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
    """Call the learner's function (through :func:`call`) and the reference, each on its own copy of
    every case, and raise Mismatch at the first output that differs. Outputs may be tensors,
    numbers or tuples of them."""
    for case in cases:
        want = reference_fn(*_clone(case.args), **_clone(case.kwargs))
        got = call(candidate, *_clone(case.args), case=case.description, **_clone(case.kwargs))
        expect_output(got, want, f"on {case.description}", atol, rtol, check_dtype)


def expect_output(got, want, what: str, atol: float = 1e-5, rtol: float = 1e-4, check_dtype: bool = True):
    """Compare an output with the reference's: a tensor, a number, or a tuple of them."""
    if isinstance(want, tuple):
        if not isinstance(got, tuple) or len(got) != len(want):
            n = f"{len(got)} outputs" if isinstance(got, tuple) else type(got).__name__
            raise Mismatch(f"{what}: expected a tuple of {len(want)} outputs, got {n}")
        for i, (g, w) in enumerate(zip(got, want)):
            expect_output(g, w, f"{what}, output {i}", atol, rtol, check_dtype)
    elif isinstance(want, torch.Tensor):
        expect_tensor(got, want, what, atol, rtol, check_dtype)
    else:
        expect_number(got, want, what, atol, rtol)


def expect_number(got, want: float, what: str, atol: float = 1e-9, rtol: float = 1e-6) -> float:
    """``got`` must be a real number (int, float, or a 0-d tensor), never a string or a bool that
    ``float()`` would quietly accept, and close to ``want``."""
    if isinstance(got, torch.Tensor) and got.numel() == 1 and got.dim() == 0:
        got = got.item()
    if isinstance(got, (str, bytes)) or isinstance(got, bool) or not isinstance(got, numbers.Real):
        raise Mismatch(f"{what}: expected a number, got {type(got).__name__} {got!r}")
    value = float(got)
    if not math.isfinite(value) and math.isfinite(want):
        raise Mismatch(f"{what}: got {value}, expected {want:.6g}")
    if abs(value - want) > atol + rtol * abs(want):
        hint = ""
        if want and value:
            hint = off_by(torch.tensor([value, value]), torch.tensor([want, want]))
            hint = "" if hint.startswith("every value is off by") else hint
        raise Mismatch(f"{what}: got {value:.6g}, expected {want:.6g}" + (f" ({hint})" if hint else ""))
    return value


def expect_loss(got, want: torch.Tensor, what: str, wrt: dict, atol: float = 1e-5, rtol: float = 1e-4) -> None:
    """A loss the notebook trains on: a 0-d tensor (not a float from ``.item()``, not shape (1,)),
    attached to the graph (not computed under ``no_grad`` or from detached values), with the
    reference's value and the reference's gradient with respect to each tensor in ``wrt``
    ({name: tensor with requires_grad}, the same tensors both losses were computed from)."""
    if not isinstance(got, torch.Tensor):
        raise Mismatch(f"{what}: expected a 0-d torch.Tensor the notebook can call .backward() on, got "
                       f"{type(got).__name__} (did you call .item() or float()?)")
    if got.dim() != 0:
        raise Mismatch(f"{what}: expected a 0-d tensor (a scalar loss), got shape {tuple(got.shape)} "
                       f"(reduce with .mean() / .sum(), or index a shape-(1,) result)")
    expect_tensor(got, want, what, atol, rtol)
    if not got.requires_grad or got.grad_fn is None:
        raise Mismatch(f"{what}: the loss has no gradient (computed under torch.no_grad(), from .detach()ed "
                       f"values, or rebuilt with torch.tensor(...)): training could not learn from it")
    names = list(wrt)
    tensors = [wrt[n] for n in names]
    g_got = torch.autograd.grad(got, tensors, retain_graph=True, allow_unused=True)
    g_want = torch.autograd.grad(want, tensors, retain_graph=True, allow_unused=True)
    for name, gg, gw in zip(names, g_got, g_want):
        gw = torch.zeros_like(wrt[name]) if gw is None else gw
        gg = torch.zeros_like(wrt[name]) if gg is None else gg
        expect_tensor(gg, gw, f"{what}: the gradient with respect to {name}", atol, rtol)


# ----------------------------------------------------------------------------- another device
# Added for the device kind of issue 11: a check runs one case on another device, so that a tensor
# the learner made on a fixed device (``torch.zeros(n)``, ``device="cpu"``) shows even on a CPU-only
# machine. Without a GPU that device is PyTorch's ``meta`` device: tensors with a shape, a dtype and
# a device but no values, on which a tensor made on the CPU meets the inputs just as on a GPU.

def stand_in_device() -> torch.device:
    """The GPU when there is one, else the ``meta`` device."""
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("meta")


def device_words(device) -> str:
    """How a message names the device: "the meta device (PyTorch's stand-in for a GPU)", or e.g. 'cuda:0'."""
    device = torch.device(device)
    return "the meta device (PyTorch's stand-in for a GPU)" if device.type == "meta" else str(device)


def to_device(obj, device):
    """A copy of an argument with every tensor (also inside lists, tuples, dicts) on ``device``."""
    if isinstance(obj, torch.Tensor):
        out = obj.detach().to(device)
        return out.requires_grad_(True) if obj.requires_grad else out
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(o, device) for o in obj)
    if isinstance(obj, dict):
        return {k: to_device(o, device) for k, o in obj.items()}
    return obj


_MIXED = ("is not on the expected device", "expected all tensors to be on the same device",
          "same device", "found at least two devices")


def _cause_text(err: BaseException) -> str:
    while err.__cause__ is not None:
        err = err.__cause__
    return f"{type(err).__name__}: {err}"


class CannotTell:
    """Returned by :func:`call_on` when the function raised on the meta device for another reason
    than mixing devices: it needs values meta tensors do not have (``.item()``, ``float(t)``,
    ``if (x > 0).any()``, an operator without a meta kernel). Only a GPU can tell then whether it
    keeps the input's device. Run :func:`call_on` after the CPU cases, so that a function that
    fails everywhere has been reported there already."""


def call_on(device, candidate: Callable, *args, case: str = "", seconds: float | None = None, **kwargs):
    """:func:`call` on copies of the arguments moved to ``device`` (see :func:`stand_in_device`).

    A function that combines the inputs with a tensor it made on another device gets a message that
    says so (instead of torch's "not on the expected device"). On the meta device, a function that
    needs values returns a :class:`CannotTell` instead of a failure."""
    device = torch.device(device)
    args, kwargs = to_device(args, device), to_device(kwargs, device)
    where = f"on {case}: " if case else ""
    try:
        return call(candidate, *args, case=case, seconds=seconds, **kwargs)
    except UsesReference:
        raise
    except Mismatch as e:
        cause = _cause_text(e) if e.__cause__ is not None else ""
        low = cause.lower()
        if cause and any(m in low for m in _MIXED):
            raise Mismatch(f"{where}your function combined its inputs, on {device.type}, with a tensor it "
                           f"made on another device ({cause}): create new tensors on the input's "
                           f"device (device=x.device, torch.zeros_like(x), x.new_full(...)), not on a fixed "
                           f"one") from None
        if cause and device.type == "meta":
            # the function ran on the CPU cases (call_on comes last); an error only on meta is one of
            # meta's own limits (no values: .item(), .tolist(), some operators), not the learner's
            return CannotTell()
        raise


def expect_like(got, want, device, what: str, atol: float = 1e-5, rtol: float = 1e-4) -> None:
    """``got`` (from :func:`call_on`) against the reference's output ``want`` computed on the CPU:
    the same types, shapes and dtypes, every tensor on ``device``; on a real device also the values."""
    device = torch.device(device)
    if device.type != "meta":
        return expect_output(got, to_device(want, device), what, atol, rtol)
    if isinstance(want, tuple):
        if not isinstance(got, (tuple, list)) or len(got) != len(want):
            n = f"{len(got)} outputs" if isinstance(got, (tuple, list)) else type(got).__name__
            raise Mismatch(f"{what}: expected a tuple of {len(want)} outputs, got {n}")
        for i, (g, w) in enumerate(zip(got, want)):
            expect_like(g, w, device, f"{what}, output {i}")
        return
    if not isinstance(want, torch.Tensor):
        return
    if not isinstance(got, torch.Tensor):
        raise Mismatch(f"{what}: expected a torch.Tensor, got {type(got).__name__}")
    if tuple(got.shape) != tuple(want.shape):
        raise Mismatch(f"{what}: expected shape {tuple(want.shape)}, got {tuple(got.shape)}")
    if got.dtype != want.dtype:
        raise Mismatch(f"{what}: returned dtype {got.dtype}; expected {want.dtype} like the input")
    if got.device.type != device.type:
        raise Mismatch(f"{what}: returned a tensor on {got.device}; expected one on {device_words(device)} "
                       f"like the input (create new tensors with device=x.device, not a fixed device)")


def expect_on_another_device(candidate, args: tuple, want, desc: str) -> None:
    """One case on another device (a GPU if there is one, else the meta stand-in): ``candidate(*args)``
    with every tensor moved there must return ``want``'s types, shapes and dtypes on that device."""
    dev = stand_in_device()
    case = f"{desc} on {device_words(dev)}"
    got = call_on(dev, candidate, *args, case=case)
    if not isinstance(got, CannotTell):
        expect_like(got, want, dev, f"on {case}")
