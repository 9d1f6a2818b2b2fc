"""course_lib.pixels.pixel_ar: masks, causality by gradients, baselines, sampling, and a learning test."""
import math

import pytest
import torch

from course_lib import data, train
from course_lib.pixels import pixel_ar as P


def later_or_self(h, w, i, j):
    idx = torch.arange(h * w).view(h, w)
    return idx >= i * w + j                                         # (H, W) bool


def test_masks_by_hand():
    assert P.causal_mask(3, "A").tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert P.causal_mask(3, "B").tolist() == [[1, 1, 1], [1, 1, 0], [0, 0, 0]]
    assert P.causal_mask(1, "A").sum() == 0 and P.causal_mask(1, "B").sum() == 1
    for k in (5, 7):
        assert P.causal_mask(k, "B").sum() - P.causal_mask(k, "A").sum() == 1
        assert P.causal_mask(k, "A").sum() == k * k // 2


@pytest.mark.parametrize("bad", [(4, "A"), (0, "B"), (3, "C"), (3, "a")])
def test_mask_rejects_bad_arguments(bad):
    with pytest.raises(ValueError, match="odd|mask_type"):
        P.causal_mask(*bad)


@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_masked_conv_never_sees_later_pixels(mask_type):
    torch.manual_seed(0)
    conv = P.MaskedConv2d(1, 4, 5, mask_type)
    h = w = 6
    for i, j in [(0, 0), (2, 3), (5, 5), (3, 0)]:
        x = torch.randn(1, 1, h, w, requires_grad=True)
        conv(x)[0, :, i, j].sum().backward()
        seen = x.grad[0, 0] != 0
        forbidden = later_or_self(h, w, i, j)
        if mask_type == "B":
            forbidden[i, j] = False                                 # B may see the pixel itself
            assert seen[i, j]
        assert not (seen & forbidden).any(), f"mask {mask_type} leaks at {(i, j)}"


def _models():
    torch.manual_seed(0)
    return {"pixelcnn": (P.PixelCNN(channels=8, n_layers=4), None),
            "pixelcnn-conditional": (P.PixelCNN(channels=8, n_layers=4, n_classes=10), torch.tensor([7])),
            "gated": (P.GatedPixelCNN(channels=8, n_layers=8), None),
            "gated-conditional": (P.GatedPixelCNN(channels=8, n_layers=3, n_classes=10), torch.tensor([2]))}


@pytest.mark.parametrize("name", list(_models()))
def test_whole_network_is_causal(name):
    model, labels = _models()[name]
    h, w = 8, 8
    for i in range(h):
        for j in range(w):
            seen = P.dependence(lambda x: model(x, labels), h, w, i, j)
            assert not (seen & later_or_self(h, w, i, j)).any(), f"{name}: output {(i, j)} sees itself or later"


def test_blind_spot_of_masked_stack_and_its_fix():
    torch.manual_seed(0)
    plain = P.PixelCNN(channels=8, n_layers=8, first_kernel=3)
    gated = P.GatedPixelCNN(channels=8, n_layers=8)
    h = w = 8
    i, j = 6, 3
    earlier = ~later_or_self(h, w, i, j)
    plain_seen = P.dependence(plain, h, w, i, j)
    gated_seen = P.dependence(gated, h, w, i, j)
    assert (earlier & ~plain_seen).any(), "stacked 3x3 masked convs should have a blind spot"
    assert not (earlier & ~plain_seen)[i].any(), "the current row to the left is always seen"
    assert torch.equal(gated_seen, earlier), "8 gated layers on 8x8 should see every earlier pixel"


def test_conditional_model_uses_labels_and_checks_them():
    torch.manual_seed(0)
    m = P.PixelCNN(channels=8, n_layers=2, n_classes=10)
    x = torch.randint(0, 17, (2, 1, 8, 8))
    a, b = m(x, torch.tensor([0, 0])), m(x, torch.tensor([0, 5]))
    assert torch.equal(a[0], b[0]) and not torch.allclose(a[1], b[1])
    with pytest.raises(ValueError, match="pass labels"):
        m(x)
    with pytest.raises(ValueError, match="unconditional"):
        P.PixelCNN(channels=8, n_layers=2)(x, torch.tensor([0, 1]))


def test_input_errors():
    m = P.PixelCNN(channels=8, n_layers=2)
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        m(torch.zeros(2, 8, 8, dtype=torch.long))
    with pytest.raises(TypeError, match="int64"):
        m(torch.zeros(2, 1, 8, 8, dtype=torch.int32))
    with pytest.raises(ValueError, match="do not match"):
        P.bits_per_dim(torch.zeros(2, 17, 8, 8), torch.zeros(2, 8, 7, dtype=torch.long))


def test_levels_labels_and_targets_out_of_range_name_the_argument():
    m = P.PixelCNN(levels=17, channels=8, n_layers=2)
    with pytest.raises(ValueError, match=r"x: expected values in \[0, 16\], got values in \[0, 17\]"):
        m(torch.tensor([[[[0, 17], [3, 4]]]]))
    with pytest.raises(ValueError, match=r"x: expected values in \[0, 16\]"):
        P.GatedPixelCNN(levels=17, channels=8, n_layers=2)(torch.full((1, 1, 2, 2), -1))
    with pytest.raises(ValueError, match=r"x: expected pixel levels in \[0, 16\]"):
        m(torch.full((1, 1, 2, 2), 16.5))
    cond = P.PixelCNN(channels=8, n_layers=2, n_classes=10)
    x = torch.zeros(2, 1, 4, 4, dtype=torch.long)
    with pytest.raises(ValueError, match=r"labels: expected values in \[0, 9\], got values in \[0, 10\]"):
        cond(x, torch.tensor([0, 10]))
    with pytest.raises(TypeError, match=r"labels: expected an integer tensor"):
        cond(x, torch.tensor([0.0, 1.0]))
    with pytest.raises(TypeError, match=r"targets: expected an integer tensor .* got dtype torch.float32"):
        P.bits_per_dim(torch.zeros(2, 17, 4), torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"targets: expected values in \[0, 16\], got values in \[0, 17\]"):
        P.bits_per_dim(torch.zeros(1, 17, 2), torch.tensor([[0, 17]]))
    with pytest.raises(TypeError, match=r"logits: expected a floating-point tensor"):
        P.bits_per_dim(torch.zeros(1, 17, 2, dtype=torch.long), torch.tensor([[0, 1]]))


def test_pixelcnn_follows_the_model_dtype():
    """model.double() runs: the input is scaled in the model's dtype, not cast with .float()."""
    torch.manual_seed(0)
    for cls in (P.PixelCNN, P.GatedPixelCNN):
        m = cls(channels=8, n_layers=2)
        x = torch.randint(0, 17, (2, 1, 4, 4))
        want = m(x)
        got = m.double()(x)
        assert got.dtype == torch.float64
        assert torch.allclose(got.float(), want, atol=1e-5)


def test_model_and_data_on_different_devices_name_both():
    """The meta device stands in for a GPU: the model is there, the data on the CPU."""
    m = P.PixelCNN(channels=8, n_layers=2, n_classes=3).to("meta")
    x = torch.zeros(2, 1, 4, 4, dtype=torch.long)
    labels = torch.tensor([0, 1])
    with pytest.raises(ValueError, match=r"^x is on cpu but the model is on meta"):
        m(x, labels)
    with pytest.raises(ValueError, match=r"^images is on cpu but the model is on meta"):
        P.evaluate_bpd(m, x, labels)
    with pytest.raises(ValueError, match=r"^images is on cpu but the model is on meta"):
        P.fit(m, x, 1, labels=labels, progress=False)
    with pytest.raises(ValueError, match=r"^labels is on cpu but the model is on meta"):
        P.sample(m, 2, 4, 4, labels=labels)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"^device: device 'cuda' asked for"):
            P.raster_sample(lambda c: torch.zeros(c.shape[0], 3, 2, 2), 1, 2, 2, device="cuda")


def test_bits_per_dim_and_baselines():
    assert P.bits_per_dim(torch.zeros(3, 17, 4, 4), torch.zeros(3, 4, 4, dtype=torch.long)).item() == pytest.approx(math.log2(17))
    sure = torch.full((1, 4, 2, 2), -1e4)
    sure[:, 2] = 0
    assert P.bits_per_dim(sure, torch.full((1, 2, 2), 2)).item() == pytest.approx(0, abs=1e-6)
    tr, te = data.digits("train"), data.digits("test")
    probs = P.histogram_probs(tr.images)
    assert probs.shape == (17, 8, 8) and torch.allclose(probs.sum(0), torch.ones(8, 8))
    assert 2.2 < P.histogram_bpd(probs, te.images) < 2.6
    assert P.uniform_bpd(17) == pytest.approx(4.087, abs=1e-3)


def test_raster_sample_calls_once_per_pixel_and_is_seeded():
    calls = []
    def fn(x):
        calls.append(x.clone())
        return torch.zeros(x.shape[0], 5, *x.shape[2:])
    a = P.raster_sample(fn, 3, 2, 4, generator=torch.Generator().manual_seed(0))
    b = P.raster_sample(fn, 3, 2, 4, generator=torch.Generator().manual_seed(0))
    assert len(calls) == 16 and torch.equal(a, b) and a.dtype == torch.long and a.shape == (3, 1, 2, 4)
    assert (calls[5][:, 0, 0, :] == a[:, 0, 0, :]).all(), "row 0 is filled before row 1 is sampled"
    with pytest.raises(ValueError, match="temperature"):
        P.raster_sample(fn, 1, 2, 2, temperature=0)


def test_low_temperature_is_greedy():
    torch.manual_seed(0)
    m = P.PixelCNN(channels=8, n_layers=2)
    x = P.sample(m, 2, temperature=1e-5, generator=torch.Generator().manual_seed(1))
    y = P.sample(m, 2, temperature=1e-5, generator=torch.Generator().manual_seed(2))
    assert torch.equal(x, y) and x.min() >= 0 and x.max() <= 16


def test_top_k_one_is_greedy_and_top_k_limits_the_levels():
    def fn(x):                                                      # level 3 most likely, then 1, then 0
        logits = torch.tensor([1.0, 2.0, -5.0, 3.0, -5.0])
        return logits[None, :, None, None].expand(x.shape[0], 5, *x.shape[2:])
    greedy = P.raster_sample(fn, 4, 3, 3, top_k=1, generator=torch.Generator().manual_seed(0))
    assert (greedy == 3).all()
    hot = P.raster_sample(fn, 64, 3, 3, temperature=10.0, top_k=2, generator=torch.Generator().manual_seed(0))
    assert set(hot.unique().tolist()) == {1, 3}, "top_k=2 draws only the two most likely levels"


def test_conditional_copy_starts_as_the_unconditional_model():
    from course_lib.recipes import pixels_and_samples as recipe
    B = recipe.budget("quick")
    base = recipe.pixelcnn(B)
    cond = recipe.conditional_pixelcnn(B, base)
    x = torch.randint(0, 17, (3, 1, 8, 8), device=next(base.parameters()).device)
    base.eval(), cond.eval()
    assert torch.allclose(cond(x, torch.tensor([0, 4, 9], device=x.device)), base(x))
    assert (cond.cond.embed.weight == 0).all() and cond.cond.embed.num_embeddings == 10


def test_learning_beats_the_histogram_baseline():
    """A few hundred CPU steps of a small gated PixelCNN beat the per-pixel histogram on the test split."""
    torch.manual_seed(0)
    tr, te = data.digits("train"), data.digits("test")
    hist = P.histogram_bpd(P.histogram_probs(tr.images), te.images)
    model = P.GatedPixelCNN(channels=16, n_layers=4).to(tr.images.device)
    g = torch.Generator().manual_seed(0)

    def loss_fn(step):
        x = tr.images[torch.randint(0, len(tr), (32,), generator=g).to(tr.images.device)]
        return P.bits_per_dim(model(x), x[:, 0])
    train.train(model, loss_fn, 300, lr=3e-3, progress=False)
    bpd = P.evaluate_bpd(model, te.images)
    assert bpd < hist - 0.2, f"test bits/dim {bpd:.3f} after 300 steps, histogram baseline {hist:.3f}"


def test_recipe_trains_through_the_model_cache(tmp_path, monkeypatch):
    """trained_pixelcnn / trained_conditional keep the model and its training run (history) in the cache;
    with a learner's loss (bpd=...) nothing is written, and the model trains with that loss."""
    import dataclasses
    from course_lib import runtime
    from course_lib.recipes import pixels_and_samples as recipe
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    monkeypatch.setattr(runtime, "_state", {"mode": "quick", "device": None})   # quick: never shipped weights
    B = dataclasses.replace(recipe.budget("quick"), channels=8, layers=2, steps=4, cond_steps=3)
    first = recipe.trained_pixelcnn(B, progress=False)
    again = recipe.trained_pixelcnn(B, progress=False)
    assert not first.from_cache and again.from_cache
    assert len(first.history.losses) == 4 and again.history.losses == first.history.losses
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))
    cond = recipe.trained_conditional(B, again, progress=False)
    assert len(cond.history.losses) == 3 and recipe.trained_conditional(B, again, progress=False).from_cache
    files = sorted(tmp_path.iterdir())
    calls = []

    def learners(logits, targets):
        calls.append(1)
        return P.bits_per_dim(logits, targets)
    mine = recipe.trained_pixelcnn(B, bpd=learners, progress=False)
    assert not mine.from_cache and len(calls) == 4 and sorted(tmp_path.iterdir()) == files
