"""course_lib.nets.mlp: shapes, the time embedding's smoothness, conditioning and error messages."""
import pytest
import torch

from course_lib import nets


def test_shapes_and_zero_init():
    m = nets.VelocityMLP(nets.MLPConfig(dim=3, hidden=32, depth=2))
    x = torch.randn(5, 3)
    out = m(x, torch.rand(5))
    assert out.shape == (5, 3)
    assert torch.all(out == 0), "the output layer starts at zero: an untrained model predicts v = 0"
    assert m(x, 0.5).shape == (5, 3) and m(x, torch.tensor(0.5)).shape == (5, 3)
    assert nets.count_parameters(m) > 0


def test_count_parameters_counts_frozen_and_shared_weights_once():
    a, b = torch.nn.Linear(4, 3), torch.nn.Linear(3, 2)                   # 15 and 8 parameters
    assert nets.count_parameters(a) == 15 and nets.count_parameters(a, b) == 23
    assert nets.count_parameters(a, a) == 15                              # a shared tensor counts once
    b.requires_grad_(False)                                               # as a model loaded from the cache
    assert nets.count_parameters(a, b) == 23
    assert nets.count_parameters(a, b, trainable_only=True) == 15
    with pytest.raises(TypeError, match="at least one"):
        nets.count_parameters()
    with pytest.raises(TypeError, match=r"modules\[1\]: expected an nn.Module, got Tensor"):
        nets.count_parameters(a, torch.zeros(3))


def test_time_embedding_is_smooth_and_differentiable():
    emb = nets.FourierTime(16, max_freq=100.0)
    t = torch.tensor([0.0, 0.3, 1.0], requires_grad=True)
    phi = emb(t)
    assert phi.shape == (3, 16)
    (grad,) = torch.autograd.grad(phi.sum(), t)
    want = (emb.freqs * (torch.cos(t.detach()[:, None] * emb.freqs) - torch.sin(t.detach()[:, None] * emb.freqs))).sum(1)
    assert torch.allclose(grad, want, atol=1e-4)
    assert (emb(torch.tensor([0.5])) - emb(torch.tensor([0.5001]))).abs().max() < 0.05   # continuous


def test_jvp_through_time_matches_finite_difference():
    torch.manual_seed(0)
    m = nets.VelocityMLP(nets.MLPConfig(dim=2, hidden=32, depth=2, time_inputs=2)).double()
    torch.nn.init.normal_(m.out.weight, std=0.1)
    x, t, r = (torch.randn(4, 2, dtype=torch.float64), torch.rand(4, dtype=torch.float64),
               torch.rand(4, dtype=torch.float64))
    f = lambda tt: m(x, tt, r=r)                                     # noqa: E731
    _, dvdt = torch.func.jvp(f, (t,), (torch.ones_like(t),))
    eps = 1e-5
    fd = (f(t + eps) - f(t - eps)) / (2 * eps)
    assert torch.allclose(dvdt, fd, atol=1e-5), (dvdt, fd)


def test_conditional_model_uses_labels_and_null_class():
    torch.manual_seed(0)
    m = nets.VelocityMLP(nets.MLPConfig(dim=2, hidden=32, depth=2, n_classes=4))
    torch.nn.init.normal_(m.out.weight, std=0.1)
    x, t = torch.randn(6, 2), torch.rand(6)
    assert m.null_class == 4
    a, b = m(x, t, torch.zeros(6, dtype=torch.long)), m(x, t, torch.ones(6, dtype=torch.long))
    assert not torch.allclose(a, b)
    assert torch.allclose(m(x, t), m(x, t, torch.full((6,), 4)))   # None means the null class
    with pytest.raises(ValueError, match="0..4"):
        m(x, t, torch.full((6,), 5))


def test_errors_name_what_was_expected():
    m = nets.VelocityMLP(nets.MLPConfig(dim=2, hidden=16, depth=1))
    with pytest.raises(ValueError, match=r"shape \(B, 2\)"):
        m(torch.randn(5, 3), 0.1)
    with pytest.raises(ValueError, match=r"shape \(5,\)"):
        m(torch.randn(5, 2), torch.rand(4))
    with pytest.raises(TypeError, match="floating"):
        m(torch.randn(5, 2), torch.arange(5))
    with pytest.raises(ValueError, match="unconditional"):
        m(torch.randn(5, 2), 0.1, torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="time_inputs=1"):
        m(torch.randn(5, 2), 0.1, r=0.2)
    with pytest.raises(ValueError, match="time_features"):
        nets.MLPConfig(time_features=7)
    with pytest.raises(TypeError, match="either"):
        nets.VelocityMLP(nets.MLPConfig(), hidden=3)


def test_keyword_config_and_determinism():
    torch.manual_seed(1)
    a = nets.VelocityMLP(dim=2, hidden=16, depth=2)
    torch.manual_seed(1)
    b = nets.VelocityMLP(dim=2, hidden=16, depth=2)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    assert a.config.hidden == 16


def test_data_in_another_dtype_or_on_another_device_is_named():
    m = nets.VelocityMLP(nets.MLPConfig(dim=2, hidden=8, depth=1))
    with pytest.raises(TypeError, match=r"x has dtype torch.float64 but the model's weights are torch.float32"):
        m(torch.randn(3, 2, dtype=torch.float64), 0.5)
    assert m.double()(torch.randn(3, 2, dtype=torch.float64), 0.5).dtype == torch.float64
    meta = nets.VelocityMLP(nets.MLPConfig(dim=2, hidden=8, depth=1, n_classes=3)).to("meta")
    with pytest.raises(ValueError, match=r"x is on cpu but the model is on meta"):
        meta(torch.randn(3, 2), 0.5)
    with pytest.raises(ValueError, match=r"y is on cpu but the model is on meta"):
        meta(torch.randn(3, 2, device="meta"), 0.5, torch.zeros(3, dtype=torch.long))
