"""TarFlow on 2-D points (course_lib/flow/tarflow.py, notebook 11 project C): the affine step, the
causal network, the stack's inverse and log-determinant, denoising, bad input, and a learning test."""
import dataclasses

import pytest
import torch

from course_lib import metrics
from course_lib.flow import tarflow as tf


def _random_flow(blocks=3, tokens=2, dim=2, seed=0):
    torch.manual_seed(seed)
    model = tf.TarFlow(tf.FlowConfig(dim=dim, tokens=tokens, blocks=blocks, hidden=16))
    for net in model.nets:                                     # leave the identity start
        torch.nn.init.normal_(net.out.weight, std=0.5)
        torch.nn.init.normal_(net.out.bias, std=0.5)
    return model.double()


def test_ar_affine_forward_shifts_right_and_sums_the_log_scales():
    x = torch.randn(4, 3, 2)
    a_raw, b_raw = torch.randn(4, 3, 2), torch.randn(4, 3, 2)
    z, logdet = tf.ar_affine_forward(x, lambda v: (a_raw, b_raw))
    assert z.shape == (4, 3, 2) and logdet.shape == (4,)
    assert torch.equal(z[:, 0], x[:, 0])                       # token 0 gets a = b = 0
    assert torch.allclose(z[:, 2], (x[:, 2] - b_raw[:, 1]) * torch.exp(-a_raw[:, 1]))
    assert torch.allclose(logdet, -a_raw[:, :2].sum(dim=(1, 2)))   # the last raw a is never used
    z1, ld1 = tf.ar_affine_forward(x[:, :1], lambda v: (a_raw[:, :1], b_raw[:, :1]))
    assert torch.equal(z1, x[:, :1]) and torch.equal(ld1, torch.zeros(4))   # one token: the identity


def test_causal_mlp_output_i_depends_only_on_tokens_up_to_i():
    torch.manual_seed(0)
    net = tf.CausalMLP(tokens=4, dim=2, hidden=24, depth=2)
    torch.nn.init.normal_(net.out.weight)
    x = torch.randn(3, 4, 2)
    a, b = net(x)
    for j in range(4):
        y = x.clone()
        y[:, j] += 1.0
        a2, b2 = net(y)
        assert torch.equal(a2[:, :j], a[:, :j]) and torch.equal(b2[:, :j], b[:, :j]), j   # tokens < j untouched
    assert (a.abs() < net.clip).all()                                                 # the soft clip


def test_untrained_flow_is_the_identity():
    model = tf.TarFlow(tf.FlowConfig(blocks=3))
    x = torch.randn(10, 2)
    z, logdet = model(x)
    assert torch.equal(z, x) and torch.equal(logdet, torch.zeros(10))


@pytest.mark.parametrize("tokens,dim", [(2, 2), (1, 2), (3, 6)])
def test_reverse_inverts_forward_and_logdet_is_the_jacobian(tokens, dim):
    model = _random_flow(blocks=3, tokens=tokens, dim=dim)
    x = torch.randn(6, dim, dtype=torch.float64)
    z, logdet = model(x)
    assert torch.allclose(model.reverse(z), x, atol=1e-10)
    for i in range(3):
        J = torch.autograd.functional.jacobian(lambda v: model(v[None])[0][0], x[i])
        sign, logabs = torch.linalg.slogdet(J)
        assert sign > 0 and abs(float(logabs) - float(logdet[i].detach())) < 1e-9


def test_blocks_alternate_the_token_order():
    model = _random_flow(blocks=2)
    x = torch.randn(5, 2, dtype=torch.float64)
    z, _ = model(x)
    # block 0 leaves token 0 (the first coordinate) as it is; block 1 runs flipped and leaves token 1
    h0, _ = tf.ar_affine_forward(x[:, :, None], model.nets[0])
    assert torch.equal(h0[:, 0, 0], x[:, 0])
    assert torch.allclose(z[:, 1], h0[:, 1, 0])


def test_nll_and_denoise_of_the_identity_flow():
    model = tf.TarFlow(tf.FlowConfig())
    x = torch.randn(100, 2)
    assert torch.allclose(tf.nll(model, x), 0.5 * x.pow(2).mean())
    # density N(0, I): grad of -log p is x, so one Tweedie step is x (1 - sigma^2)
    assert torch.allclose(tf.denoise(model, x, 0.3), x * (1 - 0.09), atol=1e-6)
    assert not tf.denoise(model, x, 0.3).requires_grad


def test_a_learners_step_is_used_by_the_flow():
    calls = []

    def step(x, params):
        calls.append(x.shape)
        return tf.ar_affine_forward(x, params)
    model = tf.TarFlow(tf.FlowConfig(blocks=3))
    model(torch.randn(7, 2), step)
    assert calls == [(7, 2, 1)] * 3


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"x: expected a 3-D tensor"):
        tf.ar_affine_forward(torch.randn(4, 2), lambda v: (v, v))
    with pytest.raises(ValueError, match=r"params\(x\)'s a: expected shape \(4, 2, 1\)"):
        tf.ar_affine_forward(torch.randn(4, 2, 1), lambda v: (v[:, :1], v))
    with pytest.raises(TypeError, match=r"must return a pair \(a, b\)"):
        tf.ar_affine_forward(torch.randn(4, 2, 1), lambda v: v)
    with pytest.raises(ValueError, match="tokens must divide dim"):
        tf.TarFlow(tf.FlowConfig(dim=2, tokens=3))
    with pytest.raises(ValueError, match="clip: expected a number > 0"):
        tf.CausalMLP(2, 1, clip=0.0)
    with pytest.raises(ValueError, match=r"x: expected last dimension 2"):
        tf.TarFlow()(torch.randn(5, 3))
    model = tf.TarFlow()
    with pytest.raises(ValueError, match="n: expected an int >= 1, got 0"):
        tf.sample(model, 0)
    with pytest.raises(ValueError, match=r"sigma: expected a number in \[0.0, inf\], got -1"):
        tf.sample(model, 4, sigma=-1.0)
    with pytest.raises(TypeError, match="sigma: expected a number, got str"):
        tf.denoise(model, torch.randn(4, 2), "0.1")


def test_sample_is_seeded():
    model = _random_flow().float()
    a, b, c = tf.sample(model, 50, seed=1), tf.sample(model, 50, seed=1), tf.sample(model, 50, seed=2)
    assert a.shape == (50, 2) and torch.equal(a, b) and not torch.equal(a, c)


def test_a_few_hundred_steps_learn_the_spirals():
    """300 steps of a 2-block flow take its samples from a Gaussian's distance to the spirals (0.63
    at 2048 points) to well below it (0.25 measured)."""
    B = dataclasses.replace(tf.budget("quick"), steps=300, blocks=2, hidden=32)
    model, hist = tf.train_spirals(B, progress=False)
    assert sum(hist.losses[-50:]) / 50 < hist.losses[0] - 0.2
    gauss = metrics.swd_to_data(lambda n, s: torch.randn(n, 2, generator=torch.Generator().manual_seed(s)),
                                tf.spirals, 2048)
    assert tf.swd(model, 2048) < 0.6 * gauss
