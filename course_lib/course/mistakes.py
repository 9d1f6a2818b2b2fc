"""Known mistakes, described once: a wrong implementation and the message that names it.

An exercise lists the mistakes learners make as :class:`Mistake` records. When the learner's output
differs from the reference's, the check runs each mistake's ``impl`` on the same inputs and, with
:func:`name_mistake`, names the first whose output (and gradients, for a loss) the learner's
reproduces; :func:`explain` appends its message to the check's. The tests submit every mistake's
``impl`` and assert it is caught with that message, so a mistake added once is both diagnosed and
tested, and a hint can only name a mistake that actually reproduces the learner's values.
"""
from __future__ import annotations

import contextlib
import math
import numbers
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from course_lib.course.calling import CALL_SECONDS, Mismatch, clone_inputs, time_limit, Timeout, call


@dataclass(frozen=True)
class Mistake:
    """A known wrong answer to an exercise, described once: the check uses it to name the learner's
    mistake, and the tests submit it to prove the check catches it with this message."""
    name: str          # short id, unique within the exercise, e.g. "farthest_code"
    impl: Callable     # a wrong implementation with the exercise's signature, reproducing the mistake
    message: str       # what the learner is told: names the mistake and the fix


def _same(a, b, atol: float, rtol: float) -> bool:
    """Same structure, types, shapes and dtypes, values allclose (NaN matching NaN)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return False
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        a, b = a.detach().cpu(), b.detach().cpu()
        if not (a.is_floating_point() or a.is_complex()):
            return bool(torch.equal(a, b))
        return bool(torch.allclose(a, b, atol=atol, rtol=rtol, equal_nan=True))
    if isinstance(a, (tuple, list)) or isinstance(b, (tuple, list)):
        return (isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)) and len(a) == len(b)
                and all(_same(x, y, atol, rtol) for x, y in zip(a, b)))
    if isinstance(a, bool) or isinstance(b, bool) or isinstance(a, str) or isinstance(b, str):
        return type(a) is type(b) and a == b
    if isinstance(a, numbers.Real) and isinstance(b, numbers.Real):
        a, b = float(a), float(b)
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b or math.isclose(a, b, rel_tol=rtol, abs_tol=atol)
    return a is b or a == b


def gradients(value, inputs: list) -> list:
    """The gradients of a scalar ``value`` w.r.t. ``inputs`` (None where none reached one; all None if
    ``value`` is not a one-element tensor with a gradient); the graph is kept for later comparisons."""
    if not (isinstance(value, torch.Tensor) and value.requires_grad and value.numel() == 1):
        return [None] * len(inputs)
    return list(torch.autograd.grad(value.sum(), inputs, retain_graph=True, allow_unused=True))


def _same_grads(got: Sequence, want: Sequence, inputs: list, atol: float, rtol: float) -> bool:
    """A missing gradient counts as zeros of its input's shape."""
    if len(got) != len(want):
        return False
    for g, w, x in zip(got, want, inputs):
        g = torch.zeros_like(x) if g is None else g
        w = torch.zeros_like(x) if w is None else w
        if not _same(g.detach(), w.detach(), atol, rtol):
            return False
    return True


def name_mistake(got, mistakes: Sequence[Mistake], *args, wrt: Sequence = (), atol: float = 1e-5,
                 rtol: float = 1e-4, **kwargs) -> Mistake | None:
    """The first mistake whose output on fresh copies of (args, kwargs) matches ``got``, the learner's
    output on the same inputs (tensors, tuples/lists of tensors, numbers; same shapes and dtype, values
    allclose, NaN matching NaN). ``wrt``: positions (ints) or keyword names (strs) of tensor arguments
    whose gradients must match too (for exercises that return a loss): ``got`` is then (value, grads)
    with grads the learner's gradients w.r.t. those arguments (None where no gradient reached one, read
    as zeros). A mistake whose impl raises is skipped. Each impl runs under :func:`call`'s time limit."""
    for m in mistakes:
        a, k = clone_inputs(args), clone_inputs(kwargs)
        inputs = [k[w] if isinstance(w, str) else a[w] for w in wrt]
        if wrt:
            inputs = [x.detach().requires_grad_(True) if isinstance(x, torch.Tensor) else x for x in inputs]
            for w, x in zip(wrt, inputs):
                if isinstance(w, str):
                    k[w] = x
                else:
                    a = a[:w] + (x,) + a[w + 1:]
        try:
            with time_limit(CALL_SECONDS):
                out = m.impl(*a, **k)
                if wrt:
                    out = (out, gradients(out, inputs))
        except (Exception, Timeout):
            continue
        if wrt:
            if (isinstance(got, (tuple, list)) and len(got) == 2 and _same(got[0], out[0], atol, rtol)
                    and _same_grads(list(got[1]), out[1], inputs, atol, rtol)):
                return m
        elif _same(got, out, atol, rtol):
            return m
    return None


def name_mistake_in(candidate: Callable, mistakes: Sequence[Mistake], cases: Sequence[tuple], atol: float = 1e-5,
                    rtol: float = 1e-4) -> Mistake | None:
    """The first mistake that reproduces the learner's output on every one of ``cases`` (tuples of
    positional arguments): for a failing case on which two mistakes agree (n_q = 2 cannot tell
    "codebooks[0] at every level" from "codebooks[i - 1] at level i"), add a case that tells them
    apart. The learner's function runs through :func:`call`; None if it raises on one of the cases."""
    seen = []
    for args in cases:
        try:
            seen.append((call(candidate, *clone_inputs(args), case="a case the check names mistakes with"), args))
        except Mismatch:
            return None
    left = list(mistakes)
    for got, args in seen:
        left = [m for m in left if name_mistake(got, [m], *args, atol=atol, rtol=rtol) is m]
    return left[0] if left else None


def explain(err: Mismatch, mistake: Mistake | None) -> Mismatch:
    """``err`` with the mistake's message appended ("... : <message>"), or ``err`` unchanged when None.
    A generic hint that :func:`~course_lib.course.checking.expect_tensor` guessed from the values
    (``err.guess``, e.g. "twice the expected values") is dropped: the mistake names the cause. A
    precision mismatch (``err.precision``: values right to float32 on float64 input) names no mistake:
    one that agrees with the learner's values there agrees with the reference's too (dt = 1, "forgets dt")."""
    if mistake is None or getattr(err, "precision", False):
        return err
    text = str(err)
    guess = getattr(err, "guess", "")
    if guess:
        text = text.replace(f" ({guess})", "")
    out = type(err)(f"{text}: {mistake.message}")
    out.__cause__ = err.__cause__
    return out


@contextlib.contextmanager
def naming(mistakes: Sequence[Mistake], got, *args, wrt: Sequence = (), atol: float = 1e-5,
           rtol: float = 1e-4, **kwargs):
    """Around the comparisons of one case: a Mismatch raised inside gets the message of the known
    mistake that reproduces ``got`` on these inputs (see :func:`name_mistake`)::

        with naming(MISTAKES, got, z, codebook):
            expect_tensor(got, want, f"on {case}")
    """
    try:
        yield
    except Mismatch as e:
        if not mistakes:
            raise
        raise explain(e, name_mistake(got, mistakes, *args, wrt=wrt, atol=atol, rtol=rtol, **kwargs)) from e.__cause__
