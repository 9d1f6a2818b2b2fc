"""What a check is made of: the exercise record, the Mismatch it raises, the known mistakes it names,
and helpers that write messages naming the first thing wrong.

A checker tries the learner's function on inputs chosen against the mistakes learners make, and
raises :class:`Mismatch` naming the first one. Every call of the learner's function goes through
:func:`call` (:mod:`course_lib.course.calling`: inputs changed in place, a time limit, exceptions
named with their input, the reference handed in).

An :class:`Exercise` lists its known mistakes once, as :class:`Mistake` records (a wrong
implementation and the message that names it, :mod:`course_lib.course.mistakes`): after the first
comparison that fails, :func:`name_mistake` finds the mistake that reproduces the learner's output on
that case and :func:`explain` (or the :func:`naming` block) adds its message. The tests submit the
same mistakes and assert each is caught with its own message.

:func:`compare` runs :func:`call` and the reference on fresh copies of every :class:`Case` and
compares with :func:`expect_tensor` (type, shape, dtype, device, values, with a hint when the values
are off by a recognisable factor); :func:`expect_loss` checks that a loss is a differentiable 0-d
tensor whose gradients match; :func:`expect_number` refuses strings and bools that ``float()`` would
quietly convert.

The topic modules in :mod:`course_lib.course.exercises` build on this; :mod:`course_lib.course.homework`
runs them. Imports run one way: homework -> exercises -> checking -> mistakes -> calling.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Callable

import torch

from course_lib.course.calling import (CALL_SECONDS, Mismatch, Progress, UsesReference, clone_inputs,  # noqa: F401
                                       BROADCAST, call, call_hinted, is_reference, tracking)
from course_lib.course.mistakes import (Mistake, explain, gradients, name_mistake, name_mistake_in,  # noqa: F401
                                        naming)


@dataclass
class Exercise:
    name: str
    reference: Callable
    checker: Callable  # checker(candidate) -> None, raises Mismatch
    points: int = 1
    description: str = ""
    mistakes: tuple[Mistake, ...] = ()      # the known mistakes, in the order they are tried
    alternatives: tuple[Callable, ...] = ()  # correct answers written otherwise than the reference: must pass


def generator(seed: int) -> torch.Generator:
    """A CPU random generator seeded with ``seed``: a check draws its inputs from one, so that every run
    of the check tries the same inputs."""
    return torch.Generator().manual_seed(seed)


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


def expect_a_tensor(got, what: str, suffix: str = "") -> None:
    """Mismatch unless ``got`` is a torch.Tensor (a NumPy array gets told how to turn it into one)."""
    if not isinstance(got, torch.Tensor):
        numpy = (" (a NumPy array: turn it into a tensor with torch.from_numpy(...))"
                 if type(got).__module__.startswith("numpy") else "")
        raise Mismatch(f"{what}: expected a torch.Tensor, got {type(got).__name__}{numpy}{suffix}")


def expect_tensor(got, want: torch.Tensor, what: str, atol: float = 1e-5, rtol: float = 1e-4,
                  check_dtype: bool = True, hint: str = "") -> None:
    """Raise Mismatch naming the first difference between ``got`` and ``want``: type, shape, dtype,
    device, non-finite values, then the largest value error (with its index)."""
    suffix = f" {hint}" if hint else ""
    expect_a_tensor(got, what, suffix)
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
            guess = off_by(g, w)
            pattern = f" ({guess})" if guess else ""
            err = Mismatch(f"{what}: value{where} is {gi:.6g}, expected {wi:.6g} "
                           f"({int(over.sum())} of {err.numel()} values wrong){pattern}{suffix}")
            err.guess = guess              # explain() drops it when a known mistake names the cause
            raise err
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
            rtol: float = 1e-4, check_dtype: bool = True, mistakes=()) -> None:
    """Call the learner's function (through :func:`call`) and the reference, each on its own copy of
    every case, and raise Mismatch at the first output that differs, with the message of the known
    mistake in ``mistakes`` that reproduces it, if one does. Outputs may be tensors, numbers or tuples
    of them."""
    for case in cases:
        want = reference_fn(*clone_inputs(case.args), **clone_inputs(case.kwargs))
        got = call(candidate, *clone_inputs(case.args), case=case.description, **clone_inputs(case.kwargs))
        with naming(mistakes, got, *case.args, atol=atol, rtol=rtol, **case.kwargs):
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
        err = Mismatch(f"{what}: got {value:.6g}, expected {want:.6g}" + (f" ({hint})" if hint else ""))
        err.guess = hint               # explain() drops it when a known mistake names the cause
        raise err
    return value


def tolerances(dtype) -> tuple[float, float]:
    """(atol, rtol) for outputs of ``dtype``: float64 outputs are compared at float64 precision."""
    return (1e-10, 1e-9) if dtype == torch.float64 else (1e-5, 1e-4)


def expect_close(got, want: torch.Tensor, what: str, hint: str = "", atol: float | None = None,
                 rtol: float | None = None) -> None:
    """:func:`expect_tensor` at the precision of ``want``'s dtype (:func:`tolerances`, or ``atol`` /
    ``rtol``); a float64 output whose values agree only to float32 precision gets that named: a step
    ran in float32."""
    if atol is None or rtol is None:
        atol, rtol = tolerances(want.dtype)
    try:
        expect_tensor(got, want, what, atol, rtol, hint=hint)
    except Mismatch as e:
        if (want.dtype == torch.float64 and isinstance(got, torch.Tensor) and got.dtype == want.dtype
                and got.shape == want.shape and got.device.type == want.device.type
                and torch.allclose(got.detach().cpu(), want.detach().cpu(), atol=1e-5, rtol=1e-4)):
            err = Mismatch(f"{what}: on float64 input your values agree with the expected ones only to "
                           f"float32 precision: part of your computation ran in float32 (a tensor made "
                           f"without dtype=..., torch.where(..., 1.0, -1.0) without .to(z.dtype), or "
                           f".float()); keep the input's dtype throughout")
            err.precision = True      # right to float32: explain() names no mistake after it
            raise err from None
        raise


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
    expect_close(got, want, what, atol=atol, rtol=rtol)   # float64 right only to float32: named
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
        expect_close(gg, gw, f"{what}: the gradient with respect to {name}", atol=atol, rtol=rtol)


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
