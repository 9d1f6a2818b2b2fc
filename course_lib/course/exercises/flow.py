"""Exercises of notebook 08 (flow matching in 2-D); see course_lib.course.homework for the mechanism.

The references live in :mod:`course_lib.flow` and (the sliced Wasserstein distance)
:mod:`course_lib.metrics`; this module only registers the checks. Each check tries several sizes
(one point, one dimension, N = D), the ends of every interval, float32 and float64, and one case on
another device (a GPU, or PyTorch's meta device standing in for one); every call of the learner's
function goes through :func:`~course_lib.course.checking.call`, which also refuses an input changed
in place.
"""

import torch

from course_lib import flow, metrics
from course_lib.course.checking import (CannotTell, Exercise, Mismatch, call, call_on, device_words,
                                        expect_like, expect_tensor, off_by, stand_in_device)
from course_lib.course.exercises.welcome import FIELDS, Field, same


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _hint(text: str) -> str:
    return f"({text})" if text else ""


def _on_stand_in(candidate, reference, args, case):
    """The case on a GPU or the meta device: the output must stay on the input's device."""
    dev = stand_in_device()
    case = f"{case} on {device_words(dev)}"
    got = call_on(dev, candidate, *args, case=case)
    if isinstance(got, CannotTell):
        return
    if isinstance(got, list):
        got = tuple(got)
    expect_like(got, reference(*args), dev, f"on {case}")


# ----------------------------------------------------------------------------- fm_pair

_BROADCAST = ("t has shape (N,): give it a trailing axis, t[:, None], so that each row of x0 and x1 is "
              "multiplied by its own time")


def _pair(candidate, x0, x1, t, case):
    try:
        out = call(candidate, x0, x1, t, case=case)
    except Mismatch as e:
        if "must match the size of tensor" in str(e):
            raise Mismatch(f"{e} ({_BROADCAST})") from e
        if "is invalid for input of size" in str(e):
            raise Mismatch(f"{e} (a fixed size in view/reshape? t[:, None] or t.view(-1, 1) works for any "
                           f"number of points)") from e
        raise
    if isinstance(out, list):
        out = tuple(out)
    if not isinstance(out, tuple) or len(out) != 2:
        got = f"a tuple of {len(out)}" if isinstance(out, tuple) else type(out).__name__
        raise Mismatch(f"on {case}: return a tuple (x_t, target), got {got}")
    for what, v in zip(("x_t", "the target"), out):
        if not isinstance(v, torch.Tensor):
            raise Mismatch(f"on {case}: {what} should be a tensor of shape {tuple(x0.shape)}, got {type(v).__name__}")
        if v.shape != x0.shape:
            extra = f" ({_BROADCAST})" if what == "x_t" and v.dim() == 2 and v.shape == (x0.shape[0], x0.shape[0]) else ""
            raise Mismatch(f"on {case}: {what} should have shape {tuple(x0.shape)} like x0, got {tuple(v.shape)}{extra}")
    return out


def _x_t_hint(x_t, x0, x1, t) -> str:
    tt = t[:, None]
    if same(x_t, (1 - tt) * x1 + tt * x0, 1e-5):
        return "x_t has the ends swapped: at t = 0 it should be the noise x0, at t = 1 the data x1"
    if x0.shape[0] == x0.shape[1] and same(x_t, (1 - t[None, :]) * x0 + t[None, :] * x1, 1e-5):
        return "t multiplied the columns, not the rows: " + _BROADCAST
    if same(x_t, x0 + tt * x1, 1e-5):
        return "x_t = (1 - t) x0 + t x1: the factor (1 - t) on x0 is missing"
    return ""


def _target_hint(target, x0, x1, t) -> str:
    tt = t[:, None]
    if same(target, x0 - x1, 1e-5):
        return "the target has the wrong sign: the velocity points from the noise to the data, x1 - x0"
    if same(target, x1, 1e-5):
        return "the target is the velocity x1 - x0, not the data x1"
    if same(target, tt * (x1 - x0), 1e-5):
        return "the target is the constant velocity x1 - x0, not the way travelled so far t (x1 - x0)"
    return ""


def _expect_pair(got, want, x0, x1, t, case):
    x_t, target = got
    if same(x_t, want[1], 1e-5) and same(target, want[0], 1e-5) and not same(x_t, want[0], 1e-5):
        raise Mismatch(f"on {case}: the outputs are in the wrong order: return (x_t, target)")
    if x_t.dtype == want[0].dtype and target.dtype == want[1].dtype:
        for what, g, w in (("x_t", x_t, want[0]), ("the target", target, want[1])):
            bad = ~torch.isfinite(g.detach().double())
            if bad.any():
                i = int(bad.nonzero()[0, 0])
                end = {0.0: " (a division by t at t = 0?)", 1.0: " (a division by 1 - t at t = 1?)"}.get(float(t[i]), "")
                raise Mismatch(f"on {case}: {what} is {g[i].tolist()} at t = {float(t[i]):g}{end}; "
                               f"x_t = (1 - t) x0 + t x1 and the target x1 - x0 need no division")
    expect_tensor(x_t, want[0], f"on {case}, x_t", hint=_hint(_x_t_hint(x_t, x0, x1, t)))
    expect_tensor(target, want[1], f"on {case}, the target", hint=_hint(_target_hint(target, x0, x1, t)))


def check_fm_pair(candidate):
    """x_t = (1 - t) x0 + t x1 and target x1 - x0 (a tuple): first at the two ends t = 0 and t = 1
    (x_t must be x0, then x1; nothing infinite), then on random t for N = 1..7 points in D = 1..64
    dimensions (N = D too, where a t that is not broadcast over the rows goes unnoticed), float32 and
    float64; the inputs x0, x1, t unchanged; one case on another device (a GPU, or PyTorch's meta
    device) where both outputs stay on x0's device."""
    g = _gen(0)
    x0, x1 = torch.randn(6, 2, generator=g), torch.randn(6, 2, generator=g) + 3.0
    ends = torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    case = "6 pairs in 2-D at the ends t = 0 (3 rows) and t = 1 (3 rows)"
    got = _pair(candidate, x0, x1, ends, case)
    x_t, target = got
    if same(x_t[:3], x1[:3], 1e-5) and same(x_t[3:], x0[3:], 1e-5):
        raise Mismatch(f"on {case}: x_t has the ends swapped: at t = 0 it should be the noise x0, at t = 1 "
                       f"the data x1 (the course's convention: t = 0 noise, t = 1 data)")
    _expect_pair(got, flow.fm_pair(x0, x1, ends), x0, x1, ends, case)
    for i, (n, d, dtype) in enumerate([(5, 2, torch.float32), (1, 3, torch.float32), (3, 3, torch.float32),
                                       (7, 1, torch.float64), (4, 64, torch.float32), (6, 2, torch.float64)]):
        gi = _gen(10 + i)
        x0 = torch.randn(n, d, generator=gi, dtype=dtype)
        x1 = torch.randn(n, d, generator=gi, dtype=dtype) * 2 + 1
        t = torch.rand(n, generator=gi, dtype=dtype)
        if n > 2:
            t[0], t[-1] = 0.0, 1.0                                   # the ends among random times
        case = f"{n} pair{'s' * (n > 1)} in {d}-D ({dtype}), t in [0, 1]"
        got = _pair(candidate, x0, x1, t, case)
        _expect_pair(got, flow.fm_pair(x0.clone(), x1.clone(), t.clone()), x0, x1, t, case)
    gd = _gen(30)
    _on_stand_in(candidate, flow.fm_pair, (torch.randn(4, 2, generator=gd), torch.randn(4, 2, generator=gd),
                                           torch.rand(4, generator=gd)), "4 pairs in 2-D")


# ----------------------------------------------------------------------------- euler_sample

def _times_hint(times: list, steps: int) -> str:
    h = 1.0 / steps
    def like(ts):
        return len(ts) == len(times) and all(abs(a - b) < 1e-4 for a, b in zip(times, ts))
    if steps > 1 and like([k / (steps - 1) for k in range(steps)]):
        return " (that is torch.linspace(0, 1, steps): it ends at t = 1, so h = 1/(steps - 1); use h = 1/steps)"
    if like([(k + 1) * h for k in range(steps)]):
        return " (the end of each step; Euler evaluates v at its start)"
    if like([1 - k * h for k in range(steps)]) or like([1 - (k + 1) * h for k in range(steps)]):
        return " (t runs from 1 down to 0; in this course t = 0 is the noise and t = 1 the data)"
    return ""


def _sample_hint(got, x0, steps, want) -> str:
    if not isinstance(got, torch.Tensor) or got.shape != x0.shape or got.dtype != x0.dtype:
        return ""
    if same(got, x0):
        return "the points did not move"
    ratio = off_by(got - x0, want - x0)
    if ratio and f"exactly {steps} times" in ratio:
        return f"on a constant field the points moved {steps} times too far: multiply v by h = 1/steps"
    return f"the way travelled x_1 - x_0: {ratio}" if ratio else ""


def _sample(candidate, field_name, x0, steps, case):
    v = Field(field_name, case)
    got = call(candidate, v, x0, steps, case=case)
    if isinstance(got, torch.Tensor) and tuple(got.shape) in ((steps + 1, *x0.shape), (steps, *x0.shape)):
        raise Mismatch(f"on {case}: your function returned shape {tuple(got.shape)}, the whole trajectory; "
                       f"return only the points at t = 1, shape {tuple(x0.shape)}")
    if len(v.calls) != steps:
        why = {0: "; your function never called v", 1: "; evaluate v again at every step, at the new points"}.get(
            len(v.calls), "")
        raise Mismatch(f"on {case}: v should be evaluated {steps} times (once per step), it was evaluated "
                       f"{len(v.calls)} time{'s' * (len(v.calls) != 1)}{why}")
    times = v.times()
    want = [round(k / steps, 4) for k in range(steps)]
    if any(abs(a - b) > 1e-4 for a, b in zip(times, want)):
        raise Mismatch(f"on {case}: v should be evaluated at t = {want} (the start of each step), it was "
                       f"evaluated at t = {times}{_times_hint(times, steps)}")
    return got


_SAMPLE_CASES = [  # field, N, D, steps, dtype: the constant field first (its way travelled shows h)
    ("a constant field", 5, 3, 4, torch.float32),
    ("a whirl", 1, 2, 1, torch.float32),
    ("a field that turns with t", 7, 1, 2, torch.float32),
    ("a time-dependent pull", 4, 3, 7, torch.float64),
    ("a field that turns with t", 3, 2, 10, torch.float64),
]


def check_euler_sample(candidate):
    """Euler from t = 0 to 1: v evaluated once per step at t = 0, h, ..., 1 - h with a (N,) time
    tensor on x0's device; values on four fields with 1, 2, 4, 7 and 10 steps, N = 1..7 points in
    D = 1..3 dimensions, float32 and float64 (the output keeps x0's dtype); x0 unchanged; one case
    on another device (a GPU, or PyTorch's meta device) where the output stays on x0's device."""
    first = ("a time-dependent pull", 6, 2, 4, torch.float32)      # how v is called: counts and times
    g = _gen(2)
    results = []
    for name, n, d, steps, dtype in [first] + _SAMPLE_CASES:
        x = torch.randn(n, d, generator=g, dtype=dtype)
        case = f"{n} point{'s' * (n > 1)} in {d}-D ({dtype}), {name}, steps = {steps}"
        results.append((case, name, x, steps, _sample(candidate, name, x, steps, case)))
    for case, name, x, steps, got in results[1:] + results[:1]:    # the constant field's values first
        want = flow.euler_sample(FIELDS[name], x.clone(), steps)
        expect_tensor(got, want, f"on {case}", atol=1e-4, hint=_hint(_sample_hint(got, x, steps, want)))
    _on_stand_in(candidate, lambda v, x0, k: flow.euler_sample(FIELDS[v.name], x0, k),
                 (Field("a time-dependent pull", "3 points, steps = 3"), torch.randn(3, 2, generator=g), 3),
                 "3 points, steps = 3")


# ----------------------------------------------------------------------------- guidance

class _ToyConditional(torch.nn.Module):
    """A fixed 'conditional model' for any dimension D with classes 0, 1, 2 and the null class 3,
    with clearly different conditional and unconditional outputs. Like the course's VelocityMLP it
    takes y=None (or the null class) for the unconditional velocity; it refuses, with a message
    naming the mistake, what a trained model would refuse or silently misread."""
    null_class = 3

    def __init__(self, case: str = ""):
        super().__init__()
        self.where = f"on {case}: " if case else ""

    def forward(self, x, t, y=None):
        w = self.where
        if not isinstance(x, torch.Tensor) or x.dim() != 2 or not x.is_floating_point():
            raise Mismatch(f"{w}model was called with x of {getattr(x, 'shape', type(x).__name__)}; "
                           f"expected the points x, a float tensor (N, D)")
        n = x.shape[0]
        if not isinstance(t, torch.Tensor) or tuple(t.shape) != (n,) or not t.is_floating_point():
            got = f"shape {tuple(t.shape)} dtype {t.dtype}" if isinstance(t, torch.Tensor) else type(t).__name__
            raise Mismatch(f"{w}model was called with t of {got}; expected the times t, a float tensor ({n},) "
                           f"(the order is model(x, t, y))")
        if y is not None:
            if not isinstance(y, torch.Tensor) or y.dtype not in (torch.int64, torch.int32) or tuple(y.shape) != (n,):
                got = f"shape {tuple(y.shape)} dtype {y.dtype}" if isinstance(y, torch.Tensor) else type(y).__name__
                raise Mismatch(f"{w}model was called with labels y of {got}; expected int64 labels of shape "
                               f"({n},), or None for the unconditional velocity")
            if y.device.type != x.device.type:
                raise Mismatch(f"{w}model was called with labels y on {y.device} while x is on "
                               f"{device_words(x.device)}: make labels with device=x.device (or torch.full_like(y, ...))")
            if y.device.type != "meta" and n and (int(y.min()) < 0 or int(y.max()) > self.null_class):
                raise Mismatch(f"{w}model was called with label {int(y.max()) if int(y.max()) > 3 else int(y.min())}; "
                               f"this model's classes are 0, 1, 2 and its null class (no condition) is "
                               f"model.null_class = {self.null_class}, or pass y=None")
        if t.device.type != x.device.type:
            raise Mismatch(f"{w}model was called with t on {t.device} while x is on {device_words(x.device)}")
        d = x.shape[1]
        k = torch.arange(d, dtype=x.dtype, device=x.device)
        centres = torch.stack([2.0 * torch.cos(k), 2.0 * torch.sin(k + 1), -1.5 + 0 * k, 0 * k])   # (4, D)
        yy = torch.full((n,), self.null_class, device=x.device) if y is None else y.long()
        return (centres[yy] - x) * (1 + t[:, None]) + 0.3 * (yy == self.null_class).to(x.dtype)[:, None]


def _cfg_hint(got, v_c, v_u, w) -> str:
    if not isinstance(got, torch.Tensor) or got.shape != v_c.shape or got.dtype != v_c.dtype:
        return ""
    known = [(v_c, "the conditional velocity v_c = model(x, t, y)"),
             (v_u, "the unconditional velocity v_u = model(x, t, None)" + (" (v_c and v_u swapped?)" if w == 1 else "")),
             ((1 + w) * v_c - w * v_u, "(1 + w) v_c - w v_u: the other convention, in which w = 0 means no "
                                       "guidance; in this course w = 1 does: v_u + w (v_c - v_u)"),
             (v_c + w * (v_u - v_c), "v_c + w (v_u - v_c): v_c and v_u swapped, it guides away from the class"),
             (w * v_c, "w v_c: the unconditional velocity is missing"),
             (v_u + w * v_c, "v_u + w v_c: subtract v_u inside the bracket, v_u + w (v_c - v_u)")]
    for want, words in known:
        if same(got, want, 1e-5):
            return f"you returned {words}"
    return ""


def check_guided_velocity(candidate):
    """v_u + w (v_c - v_u) with a toy conditional model (classes 0-2, null class 3): first w = 1 (the
    plain conditional velocity) and w = 0 (the unconditional one), then w = 0.5, 2.5, 4 and 7.5 on
    N = 1..6 points in D = 1..3 dimensions, float32 and float64; labels passed to the model must be
    integers on x's device; the inputs x, t, y unchanged; one case on another device (a GPU, or
    PyTorch's meta device) where the output stays on x's device."""
    g = _gen(2)
    x, t, y = torch.randn(6, 2, generator=g), torch.rand(6, generator=g), torch.tensor([0, 1, 2, 0, 1, 2])
    ref = _ToyConditional()
    v_c, v_u = ref(x, t, y), ref(x, t, None)
    for w, words in ((1.0, "w = 1 means no guidance: the plain conditional velocity model(x, t, y)"),
                     (0.0, "w = 0 means the unconditional velocity model(x, t, None)")):
        case = f"6 points in 2-D, w = {w:g}"
        got = call(candidate, _ToyConditional(case), x, t, y, w, case=case)
        want = v_c if w == 1.0 else v_u
        hint = _cfg_hint(got, v_c, v_u, w)
        expect_tensor(got, want, f"on {case}", hint=f"({words}{'; ' + hint if hint else ''})")
    for i, (n, d, w, dtype) in enumerate([(5, 2, 2.5, torch.float32), (1, 3, 4.0, torch.float32),
                                          (4, 1, 0.5, torch.float64), (6, 2, 7.5, torch.float64)]):
        gi = _gen(40 + i)
        x = torch.randn(n, d, generator=gi, dtype=dtype)
        t = torch.rand(n, generator=gi, dtype=dtype)
        y = torch.randint(0, 3, (n,), generator=gi)
        case = f"{n} point{'s' * (n > 1)} in {d}-D ({dtype}), w = {w:g}"
        got = call(candidate, _ToyConditional(case), x, t, y, w, case=case)
        v_c, v_u = ref(x, t, y), ref(x, t, None)
        want = flow.guided_velocity(ref, x.clone(), t.clone(), y.clone(), w)
        expect_tensor(got, want, f"on {case}", hint=_hint(_cfg_hint(got, v_c, v_u, w)))
    gd = _gen(50)
    case = "3 points, w = 2"
    _on_stand_in(candidate, lambda m, *a: flow.guided_velocity(ref, *a),
                 (_ToyConditional(f"{case} on {device_words(stand_in_device())}"), torch.randn(3, 2, generator=gd),
                  torch.rand(3, generator=gd), torch.tensor([0, 2, 1]), 2.0), case)


# ----------------------------------------------------------------------------- sliced Wasserstein

def _swd_variants(x, y, dirs) -> list:
    """What a sliced Wasserstein distance that differs from the reference may have computed instead."""
    d = dirs / dirs.norm(dim=0, keepdim=True)
    px, py = x @ d, y @ d
    sx, sy = px.sort(0).values, py.sort(0).values
    gap2 = (sx - sy).pow(2)
    out = [(gap2.mean(), "the square of the distance: take the square root of the mean squared gap"),
           ((px - py).pow(2).mean().sqrt(), "the projections were compared point by point: sort each "
                                            "projection over the points first (dim=0)"),
           ((px.sort(1).values - py.sort(1).values).pow(2).mean().sqrt(),
            "the projections were sorted across the directions: sort over the points, dim=0"),
           ((x @ dirs).sort(0).values.sub((y @ dirs).sort(0).values).pow(2).mean().sqrt(),
            "the directions were used as given: normalise each column to unit length first"),
           ((x @ (dirs / dirs.norm())).sort(0).values.sub((y @ (dirs / dirs.norm())).sort(0).values)
            .pow(2).mean().sqrt(), "the whole matrix of directions was divided by one norm: normalise each "
                                   "column, directions.norm(dim=0, keepdim=True)"),
           ((sx - sy).abs().mean(), "the mean absolute gap (sliced W1): the mean of the squared gaps, then "
                                    "its square root"),
           (gap2.mean(0).sqrt().mean(), "the mean over directions of each direction's distance: take the "
                                        "square root once, of the mean over points and directions"),
           (gap2.sum().sqrt(), "a sum over points and directions: take the mean"),
           (gap2.mean(0).sum().sqrt(), "a sum over the directions: take the mean over them too")]
    dn = dirs / dirs.norm(dim=1, keepdim=True)
    out.append(((x @ dn).sort(0).values.sub((y @ dn).sort(0).values).pow(2).mean().sqrt(),
                "the rows of the directions were normalised: each direction is a column, "
                "directions.norm(dim=0, keepdim=True)"))
    return out


def _distance(candidate, x, y, dirs, case):
    got = call(candidate, x, y, dirs, case=case)
    if isinstance(got, (str, bytes, bool)) or not isinstance(got, torch.Tensor):
        hint = " (did you call .item() or float()?)" if isinstance(got, float) else ""
        raise Mismatch(f"on {case}: return a 0-d tensor, got {type(got).__name__}{hint}")
    if got.dim() != 0:
        raise Mismatch(f"on {case}: return a 0-d tensor, got shape {tuple(got.shape)} (the mean over points "
                       f"and directions, then .sqrt(), gives one)")
    return got


def _expect_distance(got, x, y, dirs, case, atol=1e-8, rtol=1e-6, far=False):
    want = metrics.sliced_wasserstein(x, y, dirs)
    hints = []
    if got.dtype == want.dtype and got.device == want.device and torch.isfinite(got):
        hints = [words for value, words in _swd_variants(x, y, dirs)
                 if abs(float(got) - float(value)) <= 1e-7 + 1e-5 * abs(float(value))
                 and abs(float(value) - float(want)) > atol + rtol * abs(float(want))]
    hint = hints[0] if len(hints) == 1 else ("one of: " + "; or ".join(hints) if hints else "")
    if far and not hint:
        hint = ("both sets lie far from the origin: subtract the sorted projections first, then square the "
                "gaps; expanding (a - b)^2 into a^2 - 2ab + b^2 loses every digit there")
    expect_tensor(got, want, f"on {case}", atol=atol, rtol=rtol, hint=_hint(hint))


def check_sliced_wasserstein(candidate):
    """SWD along given (unnormalised) directions, as a 0-d tensor: 0 for a set against itself
    shuffled, then the value for N = 1..64 points in D = 1..64 dimensions with P = 1..32 directions
    of very different lengths, float64 and float32, sets far from the origin (where expanding the
    square loses every digit) and a set against itself shifted; the inputs x, y, directions unchanged; one case
    on another device (a GPU, or PyTorch's meta device) where the result stays on x's device."""
    g = _gen(3)
    x = torch.randn(50, 2, generator=g, dtype=torch.float64)
    dirs = torch.randn(2, 16, generator=g, dtype=torch.float64) * 3.0
    case = "50 points in 2-D against the same points shuffled"
    same_set = _distance(candidate, x, x[torch.randperm(50, generator=g)], dirs, case)
    if not torch.isfinite(same_set) or abs(float(same_set)) > 1e-6:
        raise Mismatch(f"on {case}: a set and the same set shuffled should be at distance 0, got "
                       f"{float(same_set):.4g} (sort the projections over the points before comparing them)")
    cases = [(40, 2, 8, torch.float64, 0.0), (30, 3, 32, torch.float64, 0.0), (16, 4, 4, torch.float64, 0.0),
             (1, 2, 4, torch.float64, 0.0), (20, 1, 1, torch.float64, 0.0), (64, 64, 5, torch.float32, 0.0),
             (32, 2, 6, torch.float32, 1e4)]
    for i, (n, d, p, dtype, far) in enumerate(cases):
        gi = _gen(20 + i)
        x = torch.randn(n, d, generator=gi, dtype=dtype) + far
        y = torch.randn(n, d, generator=gi, dtype=dtype) * 1.5 + 0.3 + far
        dirs = torch.randn(d, p, generator=gi, dtype=dtype)
        dirs = dirs * torch.logspace(-3, 3, p, dtype=dtype) if p > 1 else dirs * 50   # lengths 1e-3 .. 1e3
        case = (f"{n} point{'s' * (n > 1)} in {d}-D ({dtype}), {p} direction{'s' * (p > 1)}"
                + (f", both sets near ({far:g}, {far:g})" if far else ""))
        got = _distance(candidate, x, y, dirs, case)
        tol = dict(atol=1e-8, rtol=1e-6) if dtype == torch.float64 else dict(atol=1e-5, rtol=1e-4 if not far else 1e-2)
        _expect_distance(got, x, y, dirs, case, far=bool(far), **tol)
    case = "50 points in 2-D against the same points shifted by (0.7, -0.2)"
    x = torch.randn(50, 2, generator=g, dtype=torch.float64)
    shifted = x + torch.tensor([[0.7, -0.2]], dtype=torch.float64)
    dirs = torch.randn(2, 16, generator=g, dtype=torch.float64) * 3.0
    _expect_distance(_distance(candidate, x, shifted, dirs, case), x, shifted, dirs, case)
    gd = _gen(60)
    _on_stand_in(candidate, metrics.sliced_wasserstein,
                 (torch.randn(10, 2, generator=gd, dtype=torch.float64), torch.randn(10, 2, generator=gd, dtype=torch.float64),
                  torch.randn(2, 3, generator=gd, dtype=torch.float64)), "10 points in 2-D, 3 directions")


# the exercises of this topic, in notebook order
EXERCISES = [
    Exercise("flow.fm_pair", reference=flow.fm_pair, checker=check_fm_pair, description=check_fm_pair.__doc__),
    Exercise("flow.euler_sample", reference=flow.euler_sample, checker=check_euler_sample, description=check_euler_sample.__doc__),
    Exercise("flow.guided_velocity", reference=flow.guided_velocity, checker=check_guided_velocity, description=check_guided_velocity.__doc__),
    Exercise("flow.sliced_wasserstein", reference=metrics.sliced_wasserstein, checker=check_sliced_wasserstein, description=check_sliced_wasserstein.__doc__),
]
