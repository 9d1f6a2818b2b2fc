"""What a check is made of: the exercise record, the Mismatch it raises, and helpers that write
messages naming the first thing wrong (:func:`expect_tensor`, :func:`compare`, :func:`fingerprint`).

The topic modules in :mod:`course_lib.course.exercises` build on this; :mod:`course_lib.course.homework`
runs them. Imports run one way: homework -> exercises -> checking.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch


class Mismatch(AssertionError):
    """Raised by a checker: the message says the first thing that is wrong."""


@dataclass
class Exercise:
    name: str
    reference: Callable
    checker: Callable  # checker(candidate) -> None, raises Mismatch
    points: int = 1
    description: str = ""


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
