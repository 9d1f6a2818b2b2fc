"""Consistency distillation (course_lib.flow.distill): the boundary condition, the target, the loss's
fixed point, one-step and multistep sampling, bad input, and a learning test on a Gaussian whose flow
is known in closed form (the one-step student must beat the teacher's one Euler step)."""
import pytest
import torch

from course_lib import nets
from course_lib.flow import distill


class _Const(torch.nn.Module):
    """v(x, t) = c everywhere (a straight flow: one Euler step is exact), with a parameter."""

    def __init__(self, c):
        super().__init__()
        self.c = torch.nn.Parameter(torch.as_tensor(c, dtype=torch.float32))

    def forward(self, x, t):
        return self.c.expand_as(x)


class _Gaussian(torch.nn.Module):
    """The exact flow-matching velocity from N(0, I) to N(mu, s^2 I) on x_t = (1 - t) x_0 + t x_1:
    v(x, t) = mu + (t s^2 - (1 - t)) / ((1 - t)^2 + t^2 s^2) (x - t mu), plus a residual MLP that starts
    at zero (so that the student has weights to train). Its ODE maps x_0 to mu + s x_0."""

    def __init__(self, mu=(1.0, -0.5), s=0.5):
        super().__init__()
        self.register_buffer("mu", torch.tensor(mu))
        self.s = s
        self.res = nets.VelocityMLP(nets.MLPConfig(dim=2, hidden=32, depth=2))

    def forward(self, x, t):
        s2, tt = self.s ** 2, t[:, None]
        exact = self.mu + (tt * s2 - (1 - tt)) / ((1 - tt) ** 2 + tt ** 2 * s2) * (x - tt * self.mu)
        return exact + self.res(x, t)


def test_boundary_condition_and_one_step_sample():
    net = _Gaussian()
    f = distill.ConsistencyModel(net)
    x = torch.randn(7, 2)
    assert torch.equal(f(x, torch.ones(7)), x)                                   # f(x, 1) = x exactly
    x0 = torch.randn(5, 2)
    one = distill.sample(f, x0)
    assert torch.allclose(one, x0 + net(x0, torch.zeros(5)))                       # f(x0, 0) = x0 + F(x0, 0)
    two = distill.sample(f, x0, times=(0.0, 0.5), generator=torch.Generator().manual_seed(0))
    assert two.shape == (5, 2) and not torch.allclose(one, two)


def test_target_is_the_teacher_step_then_the_target_network_without_gradient():
    teacher, target = _Gaussian(), distill.ConsistencyModel(_Gaussian(s=0.8))
    x, t, dt = torch.randn(6, 2), torch.rand(6) * 0.8, torch.full((6,), 0.1)
    got = distill.consistency_target(teacher, target, x, t, dt)
    with torch.no_grad():
        want = target(x + 0.1 * teacher(x, t), t + 0.1)
    assert torch.allclose(got, want) and not got.requires_grad
    ends = distill.consistency_target(teacher, target, x, t, 1 - t)              # landing on t = 1: the step itself
    assert torch.allclose(ends, x + (1 - t)[:, None] * teacher(x, t).detach(), atol=1e-6)


def test_loss_is_zero_at_the_fixed_point_of_a_straight_flow():
    """With v = c, f(x, t) = x + (1 - t) c maps every point of a trajectory to its end: the CD loss is 0."""
    teacher = _Const([0.3, -1.2])
    student = distill.ConsistencyModel(_Const([0.3, -1.2]))
    x1 = torch.randn(64, 2)
    loss = distill.distill_loss(student, student, teacher, x1, grid=8, generator=torch.Generator().manual_seed(1))
    assert loss.dim() == 0 and loss.item() < 1e-10
    wrong = distill.ConsistencyModel(_Const([0.0, 0.0]))
    # f = x: the target is one step further, x + dt c, so the loss is dt^2 |c|^2 on every row
    assert distill.distill_loss(wrong, wrong, teacher, x1, grid=8).item() == pytest.approx((0.09 + 1.44) / 64)


def test_bad_input_is_named():
    f = distill.ConsistencyModel(_Const([0.0, 0.0]))
    with pytest.raises(ValueError, match=r"t: expected 7 rows"):
        f(torch.zeros(7, 2), torch.zeros(3))
    with pytest.raises(ValueError, match="times: expected increasing times"):
        distill.sample(f, torch.zeros(3, 2), times=(0.5, 0.2))
    with pytest.raises(ValueError, match="stop-gradient"):
        distill.distill_loss(f, f, _Const([0.0, 0.0]), torch.randn(4, 2), grid=4,
                             target_fn=lambda v, m, x, t, dt: m(x + dt[:, None] * v(x, t), t + dt))
    with pytest.raises(TypeError, match=r"dt: expected a torch.Tensor of shape \(3,\), one per row, got float"):
        distill.consistency_target(f, f, torch.zeros(3, 2), torch.zeros(3), 0.1)
    with pytest.raises(ValueError, match="dt: expected 3 rows, one per row of x_t"):
        distill.consistency_target(f, f, torch.zeros(3, 2), torch.zeros(3), torch.zeros(2))
    with pytest.raises(ValueError, match="grid: expected an int >= 1"):
        distill.distill_loss(f, f, _Const([0.0, 0.0]), torch.randn(4, 2), grid=0)
    with pytest.raises(TypeError, match="times: expected a sequence of times in \\[0, 1\\]"):
        distill.sample(f, torch.zeros(3, 2), times="0")
    with pytest.raises(TypeError, match="times: expected a number, got str"):
        distill.sample(f, torch.zeros(3, 2), times=("0",))


def test_budgets_are_defined_for_every_mode():
    for mode in ("quick", "lecture", "full"):
        B = distill.budget(mode)
        assert B.mode == mode and B.grid >= 2 and 0 < B.mu < 1


def test_distillation_beats_the_teachers_one_euler_step():
    """The teacher's one Euler step sends every point to mu (spread 0); the ODE's end is mu + s x_0 (spread
    s = 0.5). After 250 steps the one-step student's squared error to the ODE's end must be under a tenth of
    the teacher's one step's (measured: 0.008 against 0.50), and its spread must come back above 0.35."""
    torch.manual_seed(0)
    teacher = _Gaussian()

    def data_fn(n, seed):
        g = torch.Generator().manual_seed(seed)
        return teacher.mu + teacher.s * torch.randn(n, 2, generator=g)
    student, hist = distill.distill(teacher, data_fn, 250, batch=256, grid=8, lr=2e-3, mu=0.9, progress=False)
    assert len(hist.losses) == 250 and hist.ema is not None
    x0 = torch.randn(4000, 2, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ode_end = teacher.mu + teacher.s * x0
        euler_one = x0 + teacher(x0, torch.zeros(4000))
        one_step = distill.sample(student, x0)
    err_teacher = (euler_one - ode_end).pow(2).sum(1).mean().item()
    err_student = (one_step - ode_end).pow(2).sum(1).mean().item()
    assert err_teacher > 0.4                                                      # s^2 * 2 = 0.5
    assert err_student < 0.1 * err_teacher, (err_student, err_teacher)
    assert one_step.std(0).min().item() > 0.35
    assert all(p.requires_grad for p in teacher.parameters())                      # the caller's model untouched
    assert all((p == 0).all() for p in teacher.res.out.parameters())               # (its zero last layer too)


def test_compare_scores_every_sampler_against_the_same_data():
    teacher = _Gaussian()
    student = distill.ConsistencyModel(_Gaussian())

    def data_fn(n, seed):
        return teacher.mu + teacher.s * torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))
    table = distill.compare(teacher, student, data_fn, 2000, teacher_steps=(1, 50))
    assert list(table) == ["student, 1 step", "teacher, 1 step", "teacher, 50 steps", "floor"]
    assert all(set(d) == {"swd", "tv"} for d in table.values())
    # the student starts as the teacher: its one step IS the teacher's one Euler step
    assert table["student, 1 step"] == pytest.approx(table["teacher, 1 step"], rel=1e-5)
    assert table["teacher, 50 steps"]["swd"] < 0.5 * table["teacher, 1 step"]["swd"]   # the exact flow, integrated
