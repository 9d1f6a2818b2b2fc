"""FlowAR on the 16x16 shapes (course_lib/orders/flowar.py, notebook 11 project D): the pyramid and
the condition, the training pair, the per-scale networks, the sampler, bad input, and a learning test."""
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from course_lib import data
from course_lib.orders import flowar as fa

S = fa.SCALES


def _inputs(n=4, k=2, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 16, 16, generator=g, dtype=dtype) * 2 - 1
    t = torch.rand(n, generator=g, dtype=dtype)
    noise = torch.randn(n, 3, S[k], S[k], generator=g, dtype=dtype)
    return x, t, noise


@pytest.mark.parametrize("k", range(len(S)))
def test_pair_is_the_straight_path_to_the_area_map(k):
    x, t, noise = _inputs(k=k, dtype=torch.float64)
    x_t, v, cond = fa.flowar_scale_pair(x, S, k, t, noise)
    s = S[k]
    assert x_t.shape == v.shape == cond.shape == (4, 3, s, s)
    x_k = F.adaptive_avg_pool2d(x, s)                                            # area = block means
    assert torch.allclose(v, x_k - noise)
    assert torch.allclose(x_t, noise + t[:, None, None, None] * v)
    assert torch.allclose(x_k.mean(dim=(2, 3)), x.mean(dim=(2, 3)))              # area keeps the mean
    if k == 0:
        assert torch.equal(cond, torch.zeros_like(cond))
    else:
        prev = F.adaptive_avg_pool2d(x, S[k - 1])
        assert torch.allclose(cond, fa.next_input(prev, s, 16))
    ends = fa.flowar_scale_pair(x, S, k, torch.tensor([0.0, 1.0, 0.0, 1.0], dtype=torch.float64), noise)[0]
    assert torch.equal(ends[0], noise[0]) and torch.allclose(ends[1], x_k[1])     # t = 0 noise, t = 1 data


def test_last_scale_target_is_the_image_and_its_condition_the_previous_map_upsampled():
    x, t, noise = _inputs(k=4)
    _, v, cond = fa.flowar_scale_pair(x, S, 4, t, noise)
    assert torch.equal(v, x - noise)
    prev = F.interpolate(x, size=(8, 8), mode="area")
    assert torch.allclose(cond, F.interpolate(prev, size=(16, 16), mode="bicubic"))


def test_next_input_keeps_a_constant_map_and_the_inputs():
    prev = torch.full((2, 3, 2, 2), 0.3)
    assert torch.allclose(fa.next_input(prev, 4, 16), torch.full((2, 3, 4, 4), 0.3))
    x, t, noise = _inputs()
    before = [x.clone(), t.clone(), noise.clone()]
    fa.flowar_scale_pair(x, S, 2, t, noise)
    assert all(torch.equal(a, b) for a, b in zip((x, t, noise), before))


def test_bad_input_is_named():
    x, t, noise = _inputs()
    with pytest.raises(ValueError, match=r"k: expected a scale index in 0..4"):
        fa.flowar_scale_pair(x, S, 5, t, noise)
    with pytest.raises(ValueError, match=r"noise: expected shape \(4, 3, 4, 4\)"):
        fa.flowar_scale_pair(x, S, 2, t, noise[:, :, :2])
    with pytest.raises(ValueError, match=r"t: expected shape \(4,\)"):
        fa.flowar_scale_pair(x, S, 2, t[:3], noise)
    with pytest.raises(ValueError, match="strictly increasing"):
        fa.flowar_scale_pair(x, (1, 4, 2), 1, t, torch.randn(4, 3, 4, 4))
    with pytest.raises(ValueError, match="larger than the images"):
        fa.flowar_scale_pair(x[..., :8, :8], S, 2, t, noise)
    with pytest.raises(TypeError, match="x: expected a floating-point tensor"):
        fa.flowar_scale_pair(x.long(), S, 2, t, noise)
    with pytest.raises(ValueError, match="side: expected a divisor of full = 16"):
        fa.next_input(torch.randn(2, 3, 4, 4), 5, 16)
    with pytest.raises(ValueError, match=r"images: expected a 4-D tensor"):
        fa.to_model(torch.rand(3, 16))


def test_scale_nets_start_at_zero_and_keep_shapes():
    model = fa.FlowAR(fa.Config(width=8, depth=1))
    prompts = data.shapes(3).prompts.cpu()
    for s, net in zip(model.scales, model.nets):
        x = torch.randn(3, 3, s, s)
        out = net(x, torch.rand(3), x, prompts)
        assert out.shape == (3, 3, s, s) and torch.equal(out, torch.zeros_like(out))
    assert [getattr(n, "patch", None) for n in model.nets] == [None, None, None, 1, 2]   # MLPs, then 16x16 in 2x2 patches


def test_loss_reaches_every_scale_and_uses_the_learners_pair():
    model = fa.FlowAR(fa.Config(width=8, depth=1))
    for net in model.nets:
        torch.nn.init.normal_(net.out.weight, std=0.1)
    sh = data.shapes(6)
    seen = []

    def pair(x, scales, k, t, noise):
        seen.append(k)
        return fa.flowar_scale_pair(x, scales, k, t, noise)
    loss = fa.loss(model, sh.images.cpu(), sh.prompts.cpu(), pair, generator=torch.Generator().manual_seed(0))
    assert loss.dim() == 0 and seen == [0, 1, 2, 3, 4]
    loss.backward()
    assert all(net.out.weight.grad.abs().sum() > 0 for net in model.nets)


def test_generate_runs_each_scale_steps_times_and_is_seeded():
    model = fa.FlowAR(fa.Config(width=8, depth=1))
    for net in model.nets:
        torch.nn.init.normal_(net.out.weight, std=0.1)
    calls = []
    for net in model.nets:
        net.register_forward_hook(lambda m, i, o: calls.append(o.shape[-1]))
    prompts = data.shapes(4).prompts.cpu()
    a = fa.generate(model, prompts, steps=3, seed=1)
    assert calls == [1] * 3 + [2] * 3 + [4] * 3 + [8] * 3 + [16] * 3
    assert a.shape == (4, 3, 16, 16) and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, fa.generate(model, prompts, steps=3, seed=1))
    assert not torch.equal(a, fa.generate(model, prompts, steps=3, seed=2))
    calls.clear()
    fa.generate(model, prompts, steps=2, cfg_scale=2.0)
    assert len(calls) == 2 * 2 * 5                                              # guidance: two passes a step


def test_a_few_steps_lower_the_flow_matching_loss():
    """60 steps of tiny nets (width 16) take the loss from about 1.9 (v = 0) to about 1.04 (measured)."""
    B = dataclasses.replace(fa.budget("quick"), steps=60, batch=32, width=16, depth=1, n_train=512)
    _, hist = fa.train_shapes(B, progress=False)
    assert hist.losses[0] > 1.5 and sum(hist.losses[-10:]) / 10 < 1.3
