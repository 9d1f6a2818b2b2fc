"""Exercises of notebook 08 (flow matching in 2-D); see course_lib.course.homework for the mechanism.

The references live in :mod:`course_lib.flow` and (the sliced Wasserstein distance)
:mod:`course_lib.metrics`; this module registers the checks and, per exercise, its known mistakes
(:class:`~course_lib.course.checking.Mistake`: a wrong implementation and the message that names it,
given only when the learner's values are that implementation's), listed in
:mod:`course_lib.course.exercises.flow_mistakes`. Each check tries several sizes (one
point, one dimension, N = D, and the sizes notebook 08 itself calls the function with, and beyond), the
ends of every interval, float32 and float64, and one case on another device (a GPU, or PyTorch's meta
device standing in for one); every call of the learner's function goes through
:func:`~course_lib.course.checking.call`, which also refuses an input changed in place.
"""

import torch

from course_lib import flow, metrics
from course_lib.course import checking
from course_lib.course.checking import (Exercise, Mismatch, call, device_words, expect_close,
                                        expect_on_another_device, expect_tensor, generator, naming, stand_in_device)
from course_lib.course.exercises.flow_mistakes import (BROADCAST, CFG_MISTAKES, EULER_MISTAKES, FM_PAIR_MISTAKES,
                                                      SWD_MISTAKES)
from course_lib.course.exercises.welcome import FIELDS, Field


# ----------------------------------------------------------------------------- fm_pair

def _pair(candidate, x0, x1, t, case):
    hints = {checking.BROADCAST: BROADCAST,                                           # (N,) against (N, D)
             "is invalid for input of size": "a fixed size in view/reshape? t[:, None] or t.view(-1, 1) works "
                                             "for any number of points"}
    out = checking.call_hinted(candidate, x0, x1, t, case=case, hints=hints, returns=("x_t", "target"))
    for what, v in zip(("x_t", "the target"), out):
        if not isinstance(v, torch.Tensor):
            raise Mismatch(f"on {case}: {what} should be a tensor of shape {tuple(x0.shape)}, got {type(v).__name__}")
        if v.shape != x0.shape:
            extra = f" ({BROADCAST})" if what == "x_t" and v.dim() == 2 and v.shape == (x0.shape[0], x0.shape[0]) else ""
            raise Mismatch(f"on {case}: {what} should have shape {tuple(x0.shape)} like x0, got {tuple(v.shape)}{extra}")
    got, want = out, flow.fm_pair(x0.clone(), x1.clone(), t.clone())
    for what, g, w in (("x_t", got[0], want[0]), ("the target", got[1], want[1])):
        bad = ~torch.isfinite(g.detach().double())
        if g.dtype == w.dtype and bad.any():
            i = int(bad.nonzero()[0, 0])
            end = {0.0: " (a division by t at t = 0?)", 1.0: " (a division by 1 - t at t = 1?)"}.get(float(t[i]), "")
            raise Mismatch(f"on {case}: {what} is {g[i].tolist()} at t = {float(t[i]):g}{end}; "
                           f"x_t = (1 - t) x0 + t x1 and the target x1 - x0 need no division")
    at0, at1, x_t = t == 0, t == 1, got[0].detach().double()
    with naming(FM_PAIR_MISTAKES, got, x0, x1, t):
        if at0.any() and at1.any() and torch.allclose(x_t[at0], x1[at0].double()) and torch.allclose(
                x_t[at1], x0[at1].double()):
            raise Mismatch(f"on {case}: x_t is the data x1 at t = 0 and the noise x0 at t = 1, the ends swapped")
        expect_close(got[0], want[0], f"on {case}, x_t")
        expect_close(got[1], want[1], f"on {case}, the target")


def check_fm_pair(candidate):
    """x_t = (1 - t) x0 + t x1 and target x1 - x0 (a tuple): first at the two ends t = 0 and t = 1
    (x_t must be x0, then x1; nothing infinite), then on random t for N = 1..7 points in D = 1..64
    dimensions (N = D too, where a t that is not broadcast over the rows goes unnoticed), float32 and
    float64, and 5000 points in 2-D (the notebook trains on batches of up to 4096); the inputs x0, x1, t
    unchanged; one case on another device (a GPU, or PyTorch's meta device) where both outputs stay on
    x0's device."""
    g = generator(0)
    x0, x1 = torch.randn(6, 2, generator=g), torch.randn(6, 2, generator=g) + 3.0
    ends = torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    case = "6 pairs in 2-D at the ends t = 0 (3 rows) and t = 1 (3 rows)"
    _pair(candidate, x0, x1, ends, case)
    for i, (n, d, dtype) in enumerate([(5, 2, torch.float32), (1, 3, torch.float32), (3, 3, torch.float32),
                                       (7, 1, torch.float64), (4, 64, torch.float32), (6, 2, torch.float64),
                                       (5000, 2, torch.float32)]):
        gi = generator(10 + i)
        x0 = torch.randn(n, d, generator=gi, dtype=dtype)
        x1 = torch.randn(n, d, generator=gi, dtype=dtype) * 2 + 1
        t = torch.rand(n, generator=gi, dtype=dtype)
        if n > 2:
            t[0], t[-1] = 0.0, 1.0                                   # the ends among random times
        case = f"{n} pair{'s' * (n > 1)} in {d}-D ({dtype}), t in [0, 1]"
        _pair(candidate, x0, x1, t, case)
    args = (torch.randn(4, 2, generator=g), torch.randn(4, 2, generator=g), torch.rand(4, generator=g))
    expect_on_another_device(candidate, args, flow.fm_pair(*args), "4 pairs in 2-D")


# ----------------------------------------------------------------------------- euler_sample


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
    times, want = v.times(), [round(k / steps, 4) for k in range(steps)]
    with naming(EULER_MISTAKES, got, Field(field_name), x0, steps, atol=1e-4):
        if any(abs(a - b) > 1e-4 for a, b in zip(times, want)):
            exp, seen = (want, times) if steps <= 16 else (f"k / {steps}", f"{times[:4]} ... {times[-2:]}")
            raise Mismatch(f"on {case}: v should be evaluated at t = {exp} (the start of each step), it was "
                           f"evaluated at t = {seen}")
    return got, [t for _, t in v.calls]


def _replay(field_name, x0, steps, times):
    """Euler with the times the learner's v was called with, as they came (a time tensor made in float32
    is fine): a float64 sample must then agree at float64 precision, so a state kept in float32 shows."""
    x, h = x0.clone(), 1.0 / steps
    for t in times:
        x = x + h * FIELDS[field_name](x, t.to(x.device))
    return x


_SAMPLE_CASES = [  # field, N, D, steps, dtype: the constant field first (its way travelled shows h)
    ("a constant field", 5, 3, 4, torch.float32),
    ("a whirl", 1, 2, 1, torch.float32),
    ("a field that turns with t", 7, 1, 2, torch.float32),
    ("a time-dependent pull", 4, 3, 7, torch.float64),
    ("a field that turns with t", 3, 2, 10, torch.float64),
    ("a whirl", 20000, 2, 100, torch.float32),      # the notebook: 100 steps on up to 16384 points
    ("a time-dependent pull", 2, 2, 300, torch.float64),
]


def check_euler_sample(candidate):
    """Euler from t = 0 to 1: v evaluated once per step at t = 0, h, ..., 1 - h with a (N,) time
    tensor on x0's device; values on four fields with 1, 2, 4, 7, 10, 100 and 300 steps, N = 1..7
    points in D = 1..3 dimensions and 20000 points in 2-D (the notebook: 100 steps, up to 16384 points),
    float32 and float64 (the output keeps x0's dtype; a float64 sample agrees at float64 precision with
    Euler at the times v was called with, so float32 times are fine and a float32 state is not); x0
    unchanged; one case on another device (a GPU, or PyTorch's meta device) where the output stays on
    x0's device."""
    first = ("a field that turns with t", 6, 2, 4, torch.float32)  # how v is called: counts and times
    g = generator(2)
    results = []
    for name, n, d, steps, dtype in [first] + _SAMPLE_CASES:
        x = torch.randn(n, d, generator=g, dtype=dtype)
        case = f"{n} point{'s' * (n > 1)} in {d}-D ({dtype}), {name}, steps = {steps}"
        results.append((case, name, x, steps, *_sample(candidate, name, x, steps, case)))
    for case, name, x, steps, got, times in results[1:] + results[:1]:    # the constant field's values first
        want = flow.euler_sample(FIELDS[name], x.clone(), steps)
        with naming(EULER_MISTAKES, got, Field(name), x, steps, atol=1e-4):
            expect_tensor(got, want, f"on {case}", atol=1e-4)
        if x.dtype == torch.float64:
            expect_close(got, _replay(name, x, steps, times), f"on {case}")
    x = torch.randn(3, 2, generator=g)
    expect_on_another_device(candidate, (Field("a time-dependent pull", "3 points, steps = 3"), x, 3),
                             flow.euler_sample(FIELDS["a time-dependent pull"], x, 3), "3 points, steps = 3")


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
            if not isinstance(y, torch.Tensor) or y.dtype not in (torch.int64, torch.int32) or y.shape != (n,):
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


def check_guided_velocity(candidate):
    """v_u + w (v_c - v_u) with a toy conditional model (classes 0-2, null class 3): first w = 1 (the
    plain conditional velocity) and w = 0 (the unconditional one), then w = 0.5, 2.5, 4 and 7.5 on
    N = 1..6 points in D = 1..3 dimensions and 20000 points in 2-D (the notebook guides up to 16384),
    float32 and float64; labels passed to the model must be integers on x's device; the inputs x, t, y
    unchanged; one case on another device (a GPU, or PyTorch's meta device) where the output stays on
    x's device."""
    g = generator(2)
    cases = [(6, 2, 1.0, torch.float32, "w = 1 means no guidance: the plain conditional velocity model(x, t, y)"),
             (6, 2, 0.0, torch.float32, "w = 0 means the unconditional velocity model(x, t, None)"),
             (5, 2, 2.5, torch.float32, ""), (1, 3, 4.0, torch.float32, ""), (4, 1, 0.5, torch.float64, ""),
             (6, 2, 7.5, torch.float64, ""), (20000, 2, 3.0, torch.float32, "")]
    for n, d, w, dtype, words in cases:
        x = torch.randn(n, d, generator=g, dtype=dtype)
        t = torch.rand(n, generator=g, dtype=dtype)
        y = torch.randint(0, 3, (n,), generator=g)
        case = f"{n} point{'s' * (n > 1)} in {d}-D ({dtype}), w = {w:g}"
        got = call(candidate, _ToyConditional(case), x, t, y, w, case=case)
        want = flow.guided_velocity(_ToyConditional(), x.clone(), t.clone(), y.clone(), w)
        with naming(CFG_MISTAKES, got, _ToyConditional(), x, t, y, w):
            expect_close(got, want, f"on {case}", hint=f"({words})" if words else "")
    args = (torch.randn(3, 2, generator=g), torch.rand(3, generator=g), torch.tensor([0, 2, 1]), 2.0)
    expect_on_another_device(candidate, (_ToyConditional(f"3 points, w = 2 on {device_words(stand_in_device())}"),
                                         *args), flow.guided_velocity(_ToyConditional(), *args), "3 points, w = 2")


# ----------------------------------------------------------------------------- sliced Wasserstein


def _distance(candidate, x, y, dirs, case):
    got = call(candidate, x, y, dirs, case=case)
    if isinstance(got, (str, bytes, bool)) or not isinstance(got, torch.Tensor):
        hint = " (did you call .item() or float()?)" if isinstance(got, float) else ""
        raise Mismatch(f"on {case}: return a 0-d tensor, got {type(got).__name__}{hint}")
    if got.dim() != 0:
        raise Mismatch(f"on {case}: return a 0-d tensor, got shape {tuple(got.shape)} (the mean over points "
                       f"and directions, then .sqrt(), gives one)")
    return got


def check_sliced_wasserstein(candidate):
    """SWD along given (unnormalised) directions, as a 0-d tensor: 0 for a set against itself
    shuffled, then the value for N = 1..64 points in D = 1..64 dimensions with P = 1..32 directions
    of very different lengths, float64 (at float64 precision) and float32, sets far from the origin (where expanding the
    square loses every digit), a set against itself shifted, 300 directions and 65536 points (the
    notebook measures up to 50000 points along 256 directions); the inputs x, y, directions unchanged; one case
    on another device (a GPU, or PyTorch's meta device) where the result stays on x's device."""
    g, case = generator(3), "50 points in 2-D against the same points shuffled"
    x, dirs = torch.randn(50, 2, generator=g, dtype=torch.float64), torch.randn(2, 16, generator=g, dtype=torch.float64)
    y = x[torch.randperm(50, generator=g)]
    same_set = _distance(candidate, x, y, dirs, case)
    with naming(SWD_MISTAKES, same_set, x, y, dirs):
        if not torch.isfinite(same_set) or abs(float(same_set)) > 1e-6:
            raise Mismatch(f"on {case}: a set and the same set shuffled should be at distance 0, got "
                           f"{float(same_set):.4g} (sort the projections over the points before comparing them)")
    cases = [(40, 2, 8, torch.float64, 0.0), (30, 3, 32, torch.float64, 0.0), (16, 4, 4, torch.float64, 0.0),
             (1, 2, 4, torch.float64, 0.0), (20, 1, 1, torch.float64, 0.0), (64, 64, 5, torch.float32, 0.0),
             (32, 2, 6, torch.float32, 1e4), (50, 2, 16, torch.float64, "shift"), (40, 2, 300, torch.float64, 0.0),
             (65536, 2, 8, torch.float64, 0.0)]
    for i, (n, d, p, dtype, far) in enumerate(cases):
        gi = generator(20 + i)
        x = torch.randn(n, d, generator=gi, dtype=dtype)
        if far == "shift":
            y, far = x + torch.tensor([[0.7, -0.2]], dtype=dtype), 0.0
            case = f"{n} points in 2-D against the same points shifted by (0.7, -0.2)"
        else:
            x = x + far
            y = torch.randn(n, d, generator=gi, dtype=dtype) * 1.5 + 0.3 + far
            case = (f"{n} point{'s' * (n > 1)} in {d}-D ({dtype}), {p} direction{'s' * (p > 1)}"
                    + (f", both sets near ({far:g}, {far:g}), far from the origin" if far else ""))
        dirs = torch.randn(d, p, generator=gi, dtype=dtype)
        dirs = dirs * torch.logspace(-3, 3, p, dtype=dtype) if p > 1 else dirs * 50   # lengths 1e-3 .. 1e3
        got = _distance(candidate, x, y, dirs, case)
        tol = dict(atol=1e-10, rtol=1e-9) if dtype == torch.float64 else dict(atol=1e-5, rtol=1e-4 if not far else 1e-2)
        with naming(SWD_MISTAKES, got, x, y, dirs):               # float64 at float64 precision: a float32 step named
            expect_close(got, metrics.sliced_wasserstein(x, y, dirs), f"on {case}", **tol)
    args = tuple(torch.randn(*shape, generator=g, dtype=torch.float64) for shape in ((10, 2), (10, 2), (2, 3)))
    expect_on_another_device(candidate, args, metrics.sliced_wasserstein(*args), "10 points in 2-D, 3 directions")


# the exercises of this topic, in notebook order
EXERCISES = [
    Exercise("flow.fm_pair", reference=flow.fm_pair, checker=check_fm_pair, description=check_fm_pair.__doc__,
             mistakes=FM_PAIR_MISTAKES),
    Exercise("flow.euler_sample", reference=flow.euler_sample, checker=check_euler_sample,
             description=check_euler_sample.__doc__, mistakes=EULER_MISTAKES),
    Exercise("flow.guided_velocity", reference=flow.guided_velocity, checker=check_guided_velocity,
             description=check_guided_velocity.__doc__, mistakes=CFG_MISTAKES),
    Exercise("flow.sliced_wasserstein", reference=metrics.sliced_wasserstein, checker=check_sliced_wasserstein,
             description=check_sliced_wasserstein.__doc__, mistakes=SWD_MISTAKES),
]
