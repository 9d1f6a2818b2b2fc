"""course_lib.flow.meanflow: the identity on an exact average velocity, the JVP target and its
pitfalls (each one breaks a test), the time sampler, the adaptive loss, sampling, baked-in guidance,
and a learning test on a Gaussian-to-Gaussian flow whose average velocity is known in closed form."""
import pytest
import torch

from course_lib import nets
from course_lib.flow import alphaflow as af
from course_lib.flow import meanflow as mf
from course_lib.recipes import meanflow as recipe
from course_lib.recipes import meanflow_toy

# ----------------------------------------------------------------------------- an exactly solvable flow
# x_0 ~ N(0, I) -> x_1 ~ N(mu, diag(sig^2)): v and u in closed form (recipe.GaussianFlow).

GF = recipe.GaussianFlow((2.0, -1.0), (0.5, 1.5))
MU, SIG = GF.mu, GF.sig
exact_v, exact_u = GF.v, GF.u


def _points(n=128, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 2, generator=g, dtype=dtype)
    a = torch.rand(n, generator=g, dtype=dtype) * 0.6
    b = a + torch.rand(n, generator=g, dtype=dtype) * (1 - a)
    return z, a, b


def _residual(target_fn, u=exact_u):
    """RMS of u - u_tgt relative to u, with the target rule ``target_fn(u, z, a, b, v)``."""
    z, a, b = _points()
    u_pred, u_tgt = target_fn(u, z, a, b, exact_v(z, a))
    return float((u_pred - u_tgt).pow(2).mean().sqrt() / u_pred.pow(2).mean().sqrt())


def test_exact_average_velocity_is_the_average_of_v():
    # u(z, a, b) against a fine quadrature of v along the exact trajectory
    z, a, b = _points(16)
    n = 2000
    acc = torch.zeros_like(z)
    h = (b - a) / n
    for k in range(n):                                   # midpoint rule on the exact flow map
        tm = a + (k + 0.5) * h
        xm = exact_u(z, a, tm) * (tm - a)[:, None] + z
        acc = acc + h[:, None] * exact_v(xm, tm)
    assert torch.allclose(acc / (b - a)[:, None], exact_u(z, a, b), atol=1e-6)
    # at a = b the average is the instantaneous velocity
    assert torch.allclose(exact_u(z, a, a), exact_v(z, a))


def test_identity_residual_of_the_exact_u_is_zero():
    assert _residual(mf.jvp_target) < 1e-12
    z, a, b = _points()
    assert mf.identity_residual(exact_u, exact_v, z, a, b) < 1e-12


# The pitfalls (recipe.PITFALLS, notebook 10 section 9): each broken target rule must fail the very
# assertion the library passes.

@pytest.mark.parametrize("broken", [recipe.PITFALLS[k][0] for k in ("swapped tangent", "no tangent on z", "paper's sign")])
def test_a_wrong_tangent_or_sign_breaks_the_identity(broken):
    assert _residual(broken) > 0.05, broken.__name__


def rounded_time_u(z, a, b):
    """The exact u, but it sees its anchor time rounded to 1/1000 (a lookup-table embedding)."""
    return exact_u(z, torch.round(a * 1000) / 1000, b)


def test_a_rounded_time_embedding_breaks_the_identity_silently():
    # no error anywhere: the JVP just sees d_a u = 0 ...
    assert _residual(mf.jvp_target, rounded_time_u) > 0.05
    # ... and the finite-difference check names it
    z, a, b = _points()
    assert mf.time_derivative_error(exact_u, z, a, b) < 1e-4
    assert mf.time_derivative_error(rounded_time_u, z, a, b) > 0.5


def _net(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(dim=2, hidden=64, depth=3, time_inputs=2, max_freq=3.0)
    cfg.update(kw)
    return mf.MeanFlowNet(nets.MLPConfig(**cfg))


def test_the_network_is_differentiable_in_time_and_a_rounded_embedding_is_caught():
    u = _net()
    for p in u.parameters():                              # a random, non-zero network
        torch.nn.init.normal_(p, std=0.3)
    z, a, b = (t.float() for t in _points())
    assert mf.time_derivative_error(u, z, a, b) < 1e-2
    meanflow_toy.round_time(u)
    assert mf.time_derivative_error(u, z, a, b) > 0.5


def test_target_is_detached_and_prediction_keeps_its_graph():
    u = _net()
    z, a, b = (t.float() for t in _points(32))
    u_pred, u_tgt = mf.jvp_target(u, z, a, b, torch.randn_like(z))
    assert u_pred.requires_grad and not u_tgt.requires_grad
    # one forward-mode pass gives the same derivative as two reverse passes
    v = torch.randn_like(z)
    _, fwd = torch.func.jvp(lambda z_, a_: u(z_, a_, b), (z, a), (v, torch.ones_like(a)))
    _, rev = torch.autograd.functional.jvp(lambda z_, a_: u(z_, a_, b), (z, a), (v, torch.ones_like(a)))
    assert torch.allclose(fwd, rev, atol=1e-5)


def test_loss_skips_the_jvp_only_where_b_equals_a():
    u = _net()
    for p in u.parameters():
        torch.nn.init.normal_(p, std=0.2)
    g = torch.Generator().manual_seed(3)
    x1, x0 = torch.randn(64, 2, generator=g) + 2, torch.randn(64, 2, generator=g)
    a, b = mf.sample_times(64, 0.5, generator=g)
    got = mf.loss(u, x1, x0=x0, a=a, b=b, p=0.5)
    z = (1 - a)[:, None] * x0 + a[:, None] * x1
    want = mf.adaptive_loss(*mf.jvp_target(u, z, a, b, x1 - x0), p=0.5)
    params = list(u.parameters())
    for gg, gw in zip(torch.autograd.grad(got, params), torch.autograd.grad(want, params)):
        assert torch.allclose(gg, gw, atol=1e-6)
    assert torch.allclose(got, want)
    with pytest.raises(ValueError, match="b must be >= a"):
        mf.loss(u, x1, x0=x0, a=b, b=a)


def test_time_sampler():
    g = torch.Generator().manual_seed(0)
    a, b = mf.sample_times(20000, 0.75, generator=g)
    assert a.shape == b.shape == (20000,) and (b >= a).all() and 0 < a.min() and b.max() < 1
    assert (a == b).float().mean().item() == pytest.approx(0.75, abs=1e-4)
    # logit-normal(+0.4, 1): in the course's convention the mass leans to the data end
    both = torch.sigmoid(0.4 + torch.randn(20000, generator=g))
    assert both.median() > 0.55
    a0, b0 = mf.sample_times(1000, 0.0, generator=g)
    assert (b0 > a0).all()
    with pytest.raises(ValueError, match="share_equal"):
        mf.sample_times(10, 1.5)


def test_adaptive_loss_weights():
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(16, 3, generator=g, requires_grad=True)
    tgt = torch.randn(16, 3, generator=g)
    d2 = (pred - tgt).pow(2).sum(1)
    assert torch.allclose(mf.adaptive_loss(pred, tgt, p=0.0), d2.mean())      # p = 0: a SUM over dims, mean over batch
    assert torch.allclose(mf.adaptive_loss(pred, tgt, p=1.0, c=0.0), torch.ones(()))
    # the weight carries no gradient: d/dpred of d2/sg(d2 + c) is (2 (pred - tgt)) / (d2 + c) / B
    l = mf.adaptive_loss(pred, tgt, p=1.0, c=1e-3)
    (gr,) = torch.autograd.grad(l, pred)
    want = 2 * (pred - tgt) / (d2 + 1e-3)[:, None] / 16
    assert torch.allclose(gr, want.detach(), atol=1e-6)


def test_one_and_two_step_sampling():
    x0 = torch.randn(100, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    one = mf.sample(exact_u, x0, 1)
    assert torch.allclose(one, x0 + exact_u(x0, torch.zeros(100, dtype=x0.dtype), torch.ones(100, dtype=x0.dtype)))
    two, traj = mf.sample(exact_u, x0, 2, trajectory=True)
    assert traj.shape == (3, 100, 2)
    # the exact u is exact at any step count: one step and two steps land on the same points
    assert torch.allclose(one, two, atol=1e-10)
    assert torch.allclose(one, MU + SIG * x0, atol=1e-10)


def test_baked_guidance():
    torch.manual_seed(0)
    u = mf.MeanFlowNet(nets.MLPConfig(dim=2, hidden=32, depth=2, time_inputs=2, n_classes=3))
    for p in u.parameters():
        torch.nn.init.normal_(p, std=0.3)
    z, v = torch.randn(8, 2), torch.randn(8, 2)
    a = torch.rand(8)
    y = torch.tensor([0, 1, 2, 3, 0, 1, 3, 2])                          # 3 = the null class
    same = mf.guided_velocity(u, z, a, v, y, 3, mf.Guidance(omega=1.0, kappa=0.0))
    assert torch.allclose(same, v)
    g = mf.Guidance(omega=2.0, kappa=0.5)
    got = mf.guided_velocity(u, z, a, v, y, 3, g)
    with torch.no_grad():
        want = 2.0 * v + (1 - 2.0 - 0.5) * u(z, a, a, torch.full_like(y, 3)) + 0.5 * u(z, a, a, y)
    keep = y != 3
    assert torch.allclose(got[keep], want[keep], atol=1e-6) and torch.allclose(got[~keep], v[~keep])
    assert g.scale == pytest.approx(4.0)
    x1 = torch.randn(8, 2)
    l = mf.loss(u, x1, y=y.clamp(max=2), p_uncond=0.1, guidance=g)
    assert l.dim() == 0 and l.requires_grad
    with pytest.raises(ValueError, match="guidance needs labels"):
        mf.loss(u, x1, guidance=g)


# ----------------------------------------------------------------------------- bad input: named

def _refused(call, error, name):
    """``call()`` raises ``error`` and its message names the argument ``name``."""
    with pytest.raises(error) as e:
        call()
    assert name in str(e.value), (name, str(e.value))


def test_bad_input_is_refused_with_the_argument_named():
    u = _net()
    x, a, b = torch.randn(8, 2), torch.full((8,), 0.2), torch.full((8,), 0.7)
    x_nan = x.clone()
    x_nan[3, 1] = float("nan")
    for call, error, name in [
        # steps >= 1, and an int
        (lambda: mf.sample(u, x, 0), ValueError, "steps"),
        (lambda: mf.sample(u, x, 1.0), TypeError, "steps"),
        # a generator, not a seed
        (lambda: mf.sample_times(8, generator=0), TypeError, "generator"),
        (lambda: mf.loss(u, x, generator=0), TypeError, "generator"),
        # shapes that would broadcast silently
        (lambda: mf.loss(u, x, x0=torch.randn(2)), ValueError, "x0"),
        (lambda: mf.loss(u, x, a=a[:1], b=b[:1]), ValueError, "a"),
        (lambda: u(x, a, b[:, None]), ValueError, "b"),
        (lambda: mf.jvp_target(u, x, a, b, torch.randn(1, 2)), ValueError, "v"),
        (lambda: mf.adaptive_loss(x, torch.randn(2)), ValueError, "u_tgt"),
        (lambda: mf.sample(u, x, 1, y=torch.zeros(3, dtype=torch.long)), ValueError, "y"),
        # NaN
        (lambda: mf.loss(u, x_nan), ValueError, "x1"),
        (lambda: mf.sample(u, x_nan, 1), ValueError, "x0"),
        (lambda: mf.loss(u, x, a=a.masked_fill(a > 0, float("nan")), b=b), ValueError, "a"),
        # a batch of at least one
        (lambda: mf.loss(u, torch.randn(0, 2)), ValueError, "x1"),
        (lambda: mf.sample(u, torch.randn(0, 2), 1), ValueError, "x0"),
        (lambda: mf.sample_times(0), ValueError, "n"),
        # numbers out of range
        (lambda: mf.Guidance(kappa=1.0), ValueError, "kappa"),
        (lambda: mf.Guidance(interval=(0.5, 0.2)), ValueError, "interval"),
        (lambda: mf.loss(u, x, p_uncond=2.0), ValueError, "p_uncond"),
        (lambda: mf.adaptive_loss(x, x, p=-1.0), ValueError, "p"),
        (lambda: mf.time_derivative_error(u, x, a, b, eps=0.0), ValueError, "eps"),
        (lambda: af.alpha_schedule(5, 0), ValueError, "steps"),
        (lambda: af.loss(u, x, 1.5), ValueError, "alpha"),
        (lambda: af.loss(u, x_nan, 0.5), ValueError, "x1"),
    ]:
        _refused(call, error, name)


# ----------------------------------------------------------------------------- α-Flow

def test_alpha_schedule_anneals_from_one_to_zero():
    steps = 1000
    al = [af.alpha_schedule(k, steps) for k in range(steps)]
    assert al[0] == 1.0 and al[-1] == 0.0                          # clamped at both ends
    assert all(x >= y for x, y in zip(al, al[1:]))                 # never goes back up
    assert al[500] == pytest.approx(0.5)                            # the sigmoid's middle
    # a late window (the paper's XL/2 run anneals from 50% to 83% of its steps)
    assert af.alpha_schedule(400, steps, start=0.5, end=0.83) == 1.0
    assert af.alpha_schedule(900, steps, start=0.5, end=0.83) == 0.0


def test_alpha_target_spans_trajectory_flow_matching_to_meanflow():
    z, a, b = _points()
    v = exact_v(z, a)
    # alpha = 1: the target is v itself (trajectory flow matching)
    assert torch.equal(af.alpha_target(exact_u, z, a, b, v, 1.0), v)
    # alpha -> 0: the finite step becomes the derivative, the target MeanFlow's JVP target
    _, jvp_tgt = mf.jvp_target(exact_u, z, a, b, v)
    gaps = [float((af.alpha_target(exact_u, z, a, b, v, al) - jvp_tgt).abs().max()) for al in (0.1, 0.01, 0.001)]
    assert gaps[2] < 1e-3 and gaps[2] < gaps[1] < gaps[0], gaps


def test_alpha_loss_at_one_is_trajectory_flow_matching():
    u = _net()
    for p in u.parameters():
        torch.nn.init.normal_(p, std=0.2)
    x1 = torch.randn(64, 2) + 2
    got = af.loss(u, x1, 1.0, share_equal=0.5, generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)                            # the same draws, in the same order
    x0 = torch.randn(x1.shape, generator=g)
    a, b = mf.sample_times(64, 0.5, mean=0.0, std=2.0, generator=g)
    z = (1 - a)[:, None] * x0 + a[:, None] * x1
    want = (u(z, a, b) - (x1 - x0)).pow(2).sum(1).mean()           # every interval regressed on v
    assert torch.allclose(got, want)
    # at alpha = 0 it is MeanFlow's loss, draw for draw
    l0 = af.loss(u, x1, 0.0, generator=torch.Generator().manual_seed(5))
    l_mf = mf.loss(u, x1, share_equal=0.5, mean=0.0, std=2.0, p=0.0, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(l0, l_mf)


# ----------------------------------------------------------------------------- learning

# Measured (1 CPU thread, 15 s): 0.08 with the smooth embedding, 1.6 with the rounded one. Times are
# drawn wide (logit-normal(0, 2)) so that the one-step pair (a, b) = (0, 1) is inside the training range.
LEARN_STEPS = 1500
ONE_STEP_BOUND = 0.2      # RMS error of u_theta(z, 0, 1) against the exact u; an untrained net is at ~2.4


def test_meanflow_learns_the_exact_one_step_map():
    u = recipe.toy_net()
    recipe.train_toy(u, GF, LEARN_STEPS)
    err = recipe.one_step_error(u, GF)
    assert err < ONE_STEP_BOUND, err
    x = mf.sample(u, torch.randn(8192, 2, generator=torch.Generator().manual_seed(4)), 1)
    assert torch.allclose(x.mean(0), MU.float(), atol=0.1) and torch.allclose(x.std(0), SIG.float(), atol=0.1)


def test_with_a_rounded_time_embedding_it_does_not_learn():
    u = meanflow_toy.round_time(recipe.toy_net())
    recipe.train_toy(u, GF, LEARN_STEPS)
    assert recipe.one_step_error(u, GF) > 2 * ONE_STEP_BOUND


def test_models_go_through_the_cache_with_their_record_and_a_learners_target_is_written_nowhere(tmp_path, monkeypatch):
    from course_lib import runtime
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    runtime.set_mode("quick")
    u = recipe.trained_toy(GF, 5, "swapped tangent", mode="quick")
    assert not u.from_cache and len(u.history.losses) == 5
    again = recipe.trained_toy(GF, 5, "swapped tangent", mode="quick")
    assert again.from_cache and again.history.losses == u.history.losses
    assert all(torch.equal(x, y) for x, y in zip(u.state_dict().values(), again.state_dict().values()))
    files = sorted(tmp_path.iterdir())
    mine = recipe.trained_toy(GF, 5, "correct", target=mf.jvp_target, mode="quick")      # "the learner's"
    assert not mine.from_cache and sorted(tmp_path.iterdir()) == files
    with pytest.raises(ValueError, match="target"):
        recipe.trained_toy(GF, 5, "paper's sign", target=mf.jvp_target, mode="quick")
    with pytest.raises(ValueError, match="pitfall"):
        recipe.trained_toy(GF, 5, "no such pitfall", mode="quick")
    with pytest.raises(ValueError, match="steps"):
        recipe.trained_toy(GF, 0, mode="quick")


def test_spirals_models_refuse_zero_steps_and_keep_their_curve(tmp_path, monkeypatch):
    from course_lib import runtime
    from course_lib.recipes import meanflow_routes as routes
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    runtime.set_mode("quick")
    B = recipe.budget("quick")
    for call in (lambda: recipe.train_fm(B, steps=0), lambda: recipe.train_mf(B, steps=0),
                 lambda: routes.train_alpha(B, steps=0), lambda: routes.train_exact(B, steps=0)):
        with pytest.raises(ValueError, match="steps"):
            call()
    m = recipe.train_mf(B, steps=6, progress=False)
    curve = m.record["curve"]
    assert len(m.history.losses) == 6 and curve["steps"][-1] == 6 and len(curve["tv"]) == len(curve["seconds"]) >= 2
    again = recipe.train_mf(B, steps=6, progress=False)
    assert again.from_cache and again.record["curve"] == curve


def test_bench_meanflow_quick_reports_every_key():
    from course_lib import runtime
    from course_lib.bench import meanflow as bench
    runtime.set_mode("quick")
    out = bench.run(["--n", "512", "--seeds", "1", "--tv-n", "1024"])
    for key in ("swd_meanflow_1", "swd_meanflow_2", "swd_fm", "noise_floor", "tv_floor", "tv_fm",
                "train_steps_per_second_meanflow", "train_steps_per_second_fm", "swd_alphaflow_1",
                "tv_alphaflow_1", "tv_exact_1"):
        assert key in out, key
    assert {"meanflow1_le_1.5x_fm100", "meanflow1_le_0.5x_fm1", "alphaflow1_tv_le_1.5x_fm100",
            "alphaflow1_le_1.5x_fm100", "alphaflow1_le_0.5x_fm1"} <= set(out["bars"])      # bench.measure's envelope
    assert set(out["swd_fm"]) == {"1", "2", "4", "8", "16", "32", "100"}
    assert out["train_steps_fm"] == recipe.budget("quick").fm_steps and out["train_steps_meanflow"] >= 1
