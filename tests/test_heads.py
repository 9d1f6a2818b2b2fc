"""Generation heads (course_lib.heads) and the transformer that feeds them (course_lib.heads.backbone).

The learning test is the point of notebook 09 in miniature: a target with two modes per condition
(x = centre(c) +- 1 along y); the flow-matching and energy heads put their samples on both modes,
the MSE head collapses onto the mean, between them, where there is no data."""
import math

import pytest
import torch

from course_lib import heads
from course_lib.heads import backbone
from course_lib.orders.continuous import ContinuousConfig
from course_lib.recipes import generation_heads as recipe


def _heads(token_dim=3, cond_dim=8):
    torch.manual_seed(0)
    return [heads.MSEHead(token_dim, cond_dim, width=16), heads.FlowHead(token_dim, cond_dim, width=16, depth=2),
            heads.EnergyHead(token_dim, cond_dim, width=16, depth=2)]


@pytest.mark.parametrize("head", _heads(), ids=lambda h: type(h).__name__)
def test_interface_shapes_and_gradient_into_z(head):
    z = torch.randn(2, 5, 8, requires_grad=True)
    x = torch.randn(2, 5, 3)
    for p in head.parameters():                                # move off the zero init so z matters
        torch.nn.init.normal_(p, std=0.3)
    loss = head.loss(x, z, generator=torch.Generator().manual_seed(0))
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert z.grad is not None and z.grad.abs().sum() > 0      # the transformer is trained through the head
    s = head.sample(z.detach(), steps=3, generator=torch.Generator().manual_seed(1))
    assert s.shape == (2, 5, 3)
    assert head.sample(z[0].detach(), steps=2).shape == (5, 3)
    assert head.nfe(3) == (3 if isinstance(head, heads.FlowHead) else 1)


@pytest.mark.parametrize("head", _heads(), ids=lambda h: type(h).__name__)
def test_bad_input_names_what_was_expected(head):
    with pytest.raises(ValueError, match="z"):
        head.loss(torch.randn(4, 3), torch.randn(4, 7))
    with pytest.raises(ValueError, match="x"):
        head.loss(torch.randn(5, 3), torch.randn(4, 8))
    with pytest.raises(TypeError, match="x"):
        head.loss(torch.zeros(4, 3, dtype=torch.long), torch.randn(4, 8))
    with pytest.raises(ValueError, match="z_uncond"):
        head.sample(torch.randn(4, 8), cfg_scale=2.0)
    z = torch.randn(4, 8)
    same = head.sample(z, z_uncond=torch.randn(4, 8), cfg_scale=1.0, generator=torch.Generator().manual_seed(0))
    plain = head.sample(z, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(same, plain)                  # scale 1 = no guidance


def test_flow_head_loss_is_the_course_convention_with_batch_mul_draws():
    torch.manual_seed(0)
    head = heads.FlowHead(2, 4, width=16, depth=1, batch_mul=3, time="uniform")
    for p in head.parameters():
        torch.nn.init.normal_(p, std=0.3)
    z, x = torch.randn(5, 4), torch.randn(5, 2)
    got = head.loss(x, z, generator=torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    x0 = torch.randn(15, 2, generator=g)                      # noise first, then t: the head's draw order
    t = torch.rand(15, generator=g)
    x1, zz = x.repeat(3, 1), z.repeat(3, 1)
    x_t = (1 - t[:, None]) * x0 + t[:, None] * x1             # t = 0 noise, t = 1 data
    want = (head(x_t, t, zz) - (x1 - x0)).pow(2).mean()
    torch.testing.assert_close(got, want)


def test_flow_head_sampler_integrates_from_noise_at_0_to_data_at_1(monkeypatch):
    """With the exact velocity field of a point mass at c, v(x, t) = (c - x) / (1 - t), Euler lands on
    c at t = 1 for any step count; a sampler run the other way, or with a shifted time grid, does not."""
    head = heads.FlowHead(2, 4, width=8, depth=1)
    c = torch.tensor([1.5, -2.0])
    monkeypatch.setattr(head, "forward", lambda x, t, z: (c - x) / (1 - t[:, None]))
    for steps in (1, 3, 8):
        s = head.sample(torch.randn(6, 4), steps=steps, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(s, c.expand(6, 2), atol=1e-5, rtol=0)


def test_energy_score_loss_formula_and_that_it_prefers_the_true_distribution():
    x1, x2, y = torch.randn(7, 3), torch.randn(7, 3), torch.randn(7, 3)
    want = ((x1 - y).norm(dim=1) + (x2 - y).norm(dim=1) - (x1 - x2).norm(dim=1)).mean()
    torch.testing.assert_close(heads.energy_score_loss(x1, x2, y), want)
    # y = +-1 with probability 1/2: samples from the same law score 2 E|X - y| - E|X - X'| = 2 - 1 = 1;
    # the mean (always 0) scores 2 + 2 - 0 ... / 2 per sample pair = 2: the repulsive term is what rewards spread
    ys = torch.tensor([1.0, -1.0]).repeat(4000)[:, None]
    g = torch.Generator().manual_seed(0)
    xa = torch.where(torch.rand(8000, 1, generator=g) < 0.5, 1.0, -1.0)
    xb = torch.where(torch.rand(8000, 1, generator=g) < 0.5, 1.0, -1.0)
    true_law = heads.energy_score_loss(xa, xb, ys).item()
    mean_only = heads.energy_score_loss(torch.zeros(8000, 1), torch.zeros(8000, 1), ys).item()
    assert abs(true_law - 1.0) < 0.05 and abs(mean_only - 2.0) < 1e-6


def test_m_sample_energy_score_is_the_two_sample_loss_at_m_2_and_unbiased_for_larger_m():
    g = torch.Generator().manual_seed(0)
    xs, y = torch.randn(2, 9, 3, generator=g), torch.randn(9, 3, generator=g)
    torch.testing.assert_close(heads.energy_score_samples(xs, y), heads.energy_score_loss(xs[0], xs[1], y))
    # a hand-written m = 3 case: (2/3) sum_i |x_i - y| - (1/3) sum_{i<j} |x_i - x_j|
    x3 = torch.tensor([[[0.0]], [[1.0]], [[3.0]]])
    want = (2 / 3) * (1 + 0 + 2) - (1 / 3) * (1 + 3 + 2)
    torch.testing.assert_close(heads.energy_score_samples(x3, torch.tensor([[1.0]])), torch.tensor(want))
    # y = +-1 and samples from the same law: 2 E|X - y| - E|X - X'| = 1 at any m (dropping the
    # 1/(m(m-1)) normalisation, or the i != j restriction, would move it)
    ys = torch.tensor([1.0, -1.0]).repeat(4000)[:, None]
    xm = torch.where(torch.rand(8, 8000, 1, generator=g) < 0.5, 1.0, -1.0)
    assert abs(heads.energy_score_samples(xm, ys).item() - 1.0) < 0.03
    with pytest.raises(ValueError, match="at least 2 samples"):
        heads.EnergyHead(2, 3, n_samples=1)


def test_energy_head_with_8_samples_trains_through_z():
    torch.manual_seed(0)
    head = heads.EnergyHead(3, 8, width=16, depth=2, n_samples=8, noise_dim=12)
    for p in head.parameters():                                # move off the zero init so z matters
        torch.nn.init.normal_(p, std=0.3)
    z = torch.randn(5, 8, requires_grad=True)
    loss = head.loss(torch.randn(5, 3), z, generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and z.grad.abs().sum() > 0
    assert head.sample(z.detach()).shape == (5, 3)


def test_leaving_the_place_open_nulls_the_place_only():
    from course_lib import data, evaluator
    ref = evaluator.reference(6)
    open_place = recipe.leave_place_open(ref.prompts)
    assert (open_place[:, recipe.PLACE] == data.N_VALUES[recipe.PLACE]).all()
    keep = [a for a in range(4) if a != recipe.PLACE]
    assert torch.equal(open_place[:, keep], ref.prompts[:, keep]) and not torch.equal(open_place, ref.prompts)


def test_mse_head_is_deterministic_and_one_step_heads_ignore_steps():
    mse, _, energy = _heads()
    z = torch.randn(4, 8)
    torch.testing.assert_close(mse.sample(z, generator=torch.Generator().manual_seed(0)),
                               mse.sample(z, generator=torch.Generator().manual_seed(1)))
    torch.testing.assert_close(energy.sample(z, steps=1, generator=torch.Generator().manual_seed(0)),
                               energy.sample(z, steps=9, generator=torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match="unknown head"):
        heads.make("gaussian", 2, 4)


# ----------------------------------------------------------------------------- learning: two modes

def _fit_and_sample(kind, steps=500):
    torch.manual_seed(0)
    kw = dict(width=64) if kind == "mse" else dict(width=64, depth=2)
    head = heads.make(kind, 2, 3, **kw)
    recipe.fit_toy(head, steps)
    res = recipe.on_modes(head)
    return res["on_modes"], res["upper"]


@pytest.mark.parametrize("kind", ["flow", "energy"])
def test_generative_heads_reproduce_both_modes(kind):
    on_mode, upper = _fit_and_sample(kind)
    assert on_mode > 0.7, f"{kind}: only {on_mode:.2f} of the samples within 0.3 of a mode"
    assert 0.3 < upper < 0.7, f"{kind}: {upper:.2f} of the samples in the upper mode (both modes hold half)"


def test_toy_head_goes_through_the_cache_and_a_learners_head_is_written_nowhere(tmp_path, monkeypatch):
    """toy_head trains once per budget (a second call loads it, with its loss curve); a learner's
    subclass (share=False) trains with its own loss and leaves no file behind."""
    import dataclasses
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    B = dataclasses.replace(recipe.budget("quick"), toy_steps=5)
    first = recipe.toy_head("flow", B)
    again = recipe.toy_head("flow", B)
    assert not first.from_cache and again.from_cache and len(list(tmp_path.glob("heads-toy-*.pt"))) == 1
    assert again.history.losses == first.history.losses and len(again.history.losses) == 5
    for k, v in first.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k
    calls = []

    class LearnersFlowHead(heads.FlowHead):
        def flat_loss(self, x, z, generator=None):
            calls.append(1)
            return super().flat_loss(x, z, generator)
    mine = recipe.toy_head("flow", dataclasses.replace(B, toy_steps=3), head_class=LearnersFlowHead)
    assert isinstance(mine, LearnersFlowHead) and len(calls) == 3 and not mine.from_cache
    assert len(list(tmp_path.glob("heads-toy-*.pt"))) == 1
    with pytest.raises(TypeError, match="head_class"):
        recipe.toy_head("flow", B, head_class=heads.EnergyHead)


def test_mse_head_collapses_to_the_mean():
    on_mode, _ = _fit_and_sample("mse")
    assert on_mode < 0.05, f"the MSE head put {on_mode:.2f} of its outputs on a mode; its optimum is the mean"


# ----------------------------------------------------------------------------- the transformer that feeds them

CFG = ContinuousConfig(latent_dim=3, n_tokens=16, d_model=32, n_layer=1, n_head=2)


def test_mar_mask_share_is_between_0_7_and_1_and_the_same_for_every_row():
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        m = backbone.mar_mask(6, 16, g)
        counts = m.sum(1)
        assert (counts == counts[0]).all() and math.ceil(0.7 * 16) <= int(counts[0]) <= 16


def test_masked_transformer_does_not_read_the_masked_latents():
    torch.manual_seed(0)
    model = backbone.MaskedAR(CFG).eval()
    x = torch.randn(2, 16, 3)
    prompts = torch.tensor([[0, 1, 2, 1], [3, 5, 8, 0]])
    mask = torch.rand(2, 16) < 0.5
    z1 = model(x, prompts, mask)
    z2 = model(torch.where(mask[..., None], torch.randn(2, 16, 3), x), prompts, mask)
    torch.testing.assert_close(z1, z2)
    with pytest.raises(ValueError, match="mask"):
        model(x, prompts, mask[:, :8])


@pytest.mark.parametrize("order,steps", [("raster", 8), ("masked", 4), ("masked", 16), ("masked", 40)])
def test_generate_decides_every_token_and_times_transformer_and_head(order, steps):
    torch.manual_seed(0)
    model = backbone.build(order, CFG)
    head = heads.FlowHead(3, 32, width=16, depth=1)
    prompts = torch.tensor([[0, 1, 2, 1], [3, 5, 8, 0], [1, 1, 1, 1]])
    out = backbone.generate(model, head, prompts, steps=steps, head_steps=3, cfg_scale=2.0,
                            generator=torch.Generator().manual_seed(0))
    assert out.latents.shape == (3, 16, 3) and out.head_nfe == 3
    assert out.passes == (16 if order == "raster" else min(steps, 16))
    assert int(out.order.max()) == out.passes - 1 and int(out.order.min()) == 0
    assert out.seconds_head > 0 and out.seconds_backbone > 0 and 0 < out.head_share < 1
    if order == "masked":                                     # the cosine schedule decides few first
        first = (out.order == 0).sum(1)
        assert (first == first[0]).all() and int(first[0]) <= 16 // min(steps, 16) + 1


def test_loss_trains_transformer_and_head_together():
    torch.manual_seed(0)
    for order in backbone.ORDERS:
        model, head = backbone.build(order, CFG), heads.EnergyHead(3, 32, width=16, depth=1)
        for p in head.parameters():                  # off adaLN-Zero's start, where no gradient reaches z
            torch.nn.init.normal_(p, std=0.1)
        x, prompts = torch.randn(4, 16, 3), torch.tensor([[0, 1, 2, 1]] * 4)
        backbone.loss(model, head, x, prompts, generator=torch.Generator().manual_seed(0)).backward()
        inputs = model.embed_input if order == "raster" else model.proj
        assert inputs.weight.grad.abs().sum() > 0, order       # the transformer learns through z
        assert head.net.out.weight.grad.abs().sum() > 0, order


def test_notes_heads_learn_a_note_not_noise():
    """The audio example of notebook 09: with notes normalised to the noise's scale, the generative
    heads draw notes close to real ones (raw waveforms, a fifth of that scale, left the flow head at
    about 0.12, i.e. noise)."""
    import dataclasses
    res = recipe.audio_heads(dataclasses.replace(recipe.budget("quick"), audio_steps=300), n_train=1024)
    for kind in ("flow", "energy"):
        assert res[kind]["similarity"] > 0.4, f"{kind} head: similarity {res[kind]['similarity']:.2f} to a real note"
    assert res["real"]["samples"].shape == (12, 1000)


def test_adaln_blocks_compute_mars_simple_mlp_adaln():
    """LTH14/mar models/diffloss.py: y = t_emb + cond_embed(c); each ResBlock x + gate * mlp(modulate(
    in_ln(x), shift, scale)) with an AFFINE in_ln; FinalLayer with a plain LayerNorm. Computed here that
    way with the course network's own weights (set to random values); the time embedding differs on
    purpose (adaln module docstring), so y is taken from the course network."""
    from course_lib.heads.adaln import AdaLNMLP
    torch.manual_seed(0)
    net = AdaLNMLP(6, 10, width=16, depth=2)
    assert net(torch.randn(3, 6), torch.randn(3, 10), torch.rand(3)).abs().max() == 0   # adaLN-Zero start
    for p in net.parameters():
        p.data.normal_(0, 0.3)
    x, z, t = torch.randn(4, 6), torch.randn(4, 10), torch.rand(4)
    F = torch.nn.functional
    y = net.cond_proj(z) + net.time_embed(t)
    h = net.input_proj(x)
    for b in net.blocks:
        shift, scale, gate = b.ada(y).chunk(3, -1)
        h = h + gate * b.mlp(F.layer_norm(h, (16,), b.norm.weight, b.norm.bias, 1e-6) * (1 + scale) + shift)
    shift, scale = net.final_ada(y).chunk(2, -1)
    want = net.out(F.layer_norm(h, (16,), eps=1e-6) * (1 + scale) + shift)
    assert torch.allclose(net(x, z, t), want, atol=1e-6)
