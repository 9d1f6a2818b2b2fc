"""Exercises of notebook 08 (flow matching in 2-D); see course_lib.course.homework for the mechanism.

The references live in :mod:`course_lib.flow` and (the sliced Wasserstein distance)
:mod:`course_lib.metrics`; this module only registers the checks.
"""
import torch

from course_lib import flow, metrics
from course_lib.course.checking import Case, Mismatch, compare, Exercise, expect_tensor, fingerprint


def _gen(seed):
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- fm_pair

def check_fm_pair(candidate):
    """x_t = (1 - t) x0 + t x1 and target x1 - x0, on several batches and the two ends t = 0, 1."""
    g = _gen(0)
    x0, x1 = torch.randn(6, 2, generator=g), torch.randn(6, 2, generator=g) + 3.0
    ends = torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    out = candidate(x0.clone(), x1.clone(), ends.clone())
    if not isinstance(out, tuple) or len(out) != 2:
        raise Mismatch(f"return a tuple (x_t, target), got {type(out).__name__}")
    x_t, target = out
    if not isinstance(x_t, torch.Tensor) or x_t.shape != x0.shape:
        expect_tensor(x_t, x0, "x_t at t = 0")       # raises: says which type/shape was expected
    if not isinstance(target, torch.Tensor) or target.shape != x0.shape:
        expect_tensor(target, x1 - x0, "the target")
    if torch.allclose(x_t[:3], x1[:3], atol=1e-5) and torch.allclose(x_t[3:], x0[3:], atol=1e-5):
        raise Mismatch("x_t has the ends swapped: at t = 0 it should be the noise x0, at t = 1 the data x1")
    if not torch.allclose(x_t[:3], x0[:3], atol=1e-5):
        raise Mismatch("at t = 0, x_t should equal the noise x0 (the lecture: t = 0 noise, t = 1 data)")
    if not torch.allclose(x_t[3:], x1[3:], atol=1e-5):
        raise Mismatch("at t = 1, x_t should equal the data x1")
    if isinstance(target, torch.Tensor) and target.shape == x0.shape and torch.allclose(target, x0 - x1, atol=1e-5):
        raise Mismatch("the target has the wrong sign: the velocity points from noise to data, x1 - x0")
    cases = []
    for i, (n, d) in enumerate([(5, 2), (7, 3), (4, 64)]):
        gi = _gen(10 + i)
        cases.append(Case(f"x0, x1 of shape ({n}, {d}), random t",
                          (torch.randn(n, d, generator=gi), torch.randn(n, d, generator=gi) * 2 + 1,
                           torch.rand(n, generator=gi))))
    compare(candidate, flow.fm_pair, cases)


# ----------------------------------------------------------------------------- euler_sample

def _fields():
    def rotate(x, t):                     # a whirl that does not depend on time
        return torch.stack([-x[:, 1], x[:, 0]], 1)

    def to_target(x, t):                  # time-dependent: the speed grows with t
        return (torch.tensor([2.0, -1.0]) - x) * (1 + 3 * t[:, None])

    def swirl_in_time(x, t):              # direction turns with t
        return torch.stack([torch.cos(3 * t), torch.sin(3 * t)], 1) + 0.1 * x
    return {"a rotation field": rotate, "a time-dependent pull towards (2, -1)": to_target,
            "a field whose direction turns with t": swirl_in_time}


def check_euler_sample(candidate):
    """Euler from t = 0 to 1 on three fields with 1, 2, 4 and 7 steps."""
    x = torch.randn(6, 2, generator=_gen(1))
    fields = _fields()
    calls = []

    def spy(xx, t):
        calls.append(t.detach().clone())
        return fields["a time-dependent pull towards (2, -1)"](xx, t)
    got = candidate(spy, x.clone(), 4)
    want = flow.euler_sample(fields["a time-dependent pull towards (2, -1)"], x.clone(), 4)
    if len(calls) != 4:
        raise Mismatch(f"with steps=4 the field should be evaluated 4 times (once per step), it was "
                       f"evaluated {len(calls)} times")
    times = [float(c.reshape(-1)[0]) for c in calls]
    if any(abs(a - b) > 1e-6 for a, b in zip(times, [0.0, 0.25, 0.5, 0.75])):
        raise Mismatch(f"with steps=4 the field should be evaluated at t = 0, 0.25, 0.5, 0.75 (the start "
                       f"of each step), it was evaluated at t = {[round(v, 4) for v in times]}")
    if isinstance(got, torch.Tensor) and got.shape == want.shape and not torch.allclose(got, want, atol=1e-4):
        raise Mismatch(f"after 4 steps: got {fingerprint(got)}, expected {fingerprint(want)}")
    cases = [Case(f"{name}, steps={k}", (v, x, k)) for name, v in fields.items() for k in (1, 2, 7)]
    compare(candidate, flow.euler_sample, cases, atol=1e-4)


# ----------------------------------------------------------------------------- guidance

class _ToyConditional(torch.nn.Module):
    """A fixed 'conditional model' with clearly different conditional and unconditional outputs."""
    null_class = 3

    def forward(self, x, t, y=None):
        centres = torch.tensor([[2.0, 0.0], [0.0, 2.0], [-2.0, -1.0], [0.0, 0.0]])
        yy = torch.full((x.shape[0],), 3) if y is None else y
        return (centres[yy] - x) * (1 + t[:, None]) + 0.3 * (yy == 3).float()[:, None]


def check_guided_velocity(candidate):
    """v_u + w (v_c - v_u) with a toy model, for w = 0, 1, 2.5 and 4."""
    model = _ToyConditional()
    g = _gen(2)
    x, t, y = torch.randn(6, 2, generator=g), torch.rand(6, generator=g), torch.tensor([0, 1, 2, 0, 1, 2])
    v_c, v_u = model(x, t, y), model(x, t, None)
    got = candidate(model, x.clone(), t.clone(), y.clone(), 1.0)
    expect_tensor(got, v_c, "with w = 1", hint="(w = 1 means no guidance: the plain conditional velocity)")
    got = candidate(model, x.clone(), t.clone(), y.clone(), 0.0)
    expect_tensor(got, v_u, "with w = 0", hint="(w = 0 means the unconditional velocity model(x, t, None))")
    cases = [Case(f"w = {w}", (model, x, t, y, w)) for w in (2.5, 4.0, 0.5)]
    compare(candidate, flow.guided_velocity, cases)


# ----------------------------------------------------------------------------- sliced Wasserstein

def check_sliced_wasserstein(candidate):
    """SWD along given (unnormalised) directions: 0 for equal sets, shift-equivariant, then values."""
    g = _gen(3)
    x = torch.randn(50, 2, generator=g, dtype=torch.float64)
    dirs = torch.randn(2, 16, generator=g, dtype=torch.float64) * 3.0
    same = candidate(x.clone(), x[torch.randperm(50, generator=g)].clone(), dirs.clone())
    if not isinstance(same, torch.Tensor) or same.numel() != 1:
        raise Mismatch(f"return a 0-d tensor, got {type(same).__name__} {tuple(getattr(same, 'shape', ()))}")
    if abs(float(same)) > 1e-6:
        raise Mismatch(f"a set and the same set shuffled should be at distance 0, got {float(same):.4g} "
                       "(sort the projections before comparing them)")
    shift = torch.tensor([[0.7, -0.2]], dtype=torch.float64)
    got = float(candidate(x.clone(), (x + shift).clone(), dirs.clone()))
    want = float(metrics.sliced_wasserstein(x, x + shift, dirs))
    if abs(got - want) > 1e-6 * max(1.0, want):
        raise Mismatch(f"for a set and the same set shifted by (0.7, -0.2): got {got:.6g}, expected {want:.6g} "
                       "(normalise each direction, then take the square root of the mean squared gap)")
    cases = []
    for i, (n, d, p) in enumerate([(40, 2, 8), (30, 3, 32), (64, 64, 5)]):
        gi = _gen(20 + i)
        cases.append(Case(f"x, y of shape ({n}, {d}) and {p} directions",
                          (torch.randn(n, d, generator=gi, dtype=torch.float64),
                           torch.randn(n, d, generator=gi, dtype=torch.float64) * 1.5 + 0.3,
                           torch.randn(d, p, generator=gi, dtype=torch.float64))))
    compare(candidate, metrics.sliced_wasserstein, cases, atol=1e-8, rtol=1e-6)


# the exercises of this topic, in notebook order
EXERCISES = [
    Exercise("flow.fm_pair", reference=flow.fm_pair, checker=check_fm_pair, description=check_fm_pair.__doc__),
    Exercise("flow.euler_sample", reference=flow.euler_sample, checker=check_euler_sample, description=check_euler_sample.__doc__),
    Exercise("flow.guided_velocity", reference=flow.guided_velocity, checker=check_guided_velocity, description=check_guided_velocity.__doc__),
    Exercise("flow.sliced_wasserstein", reference=metrics.sliced_wasserstein, checker=check_sliced_wasserstein, description=check_sliced_wasserstein.__doc__),
]
