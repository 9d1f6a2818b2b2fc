"""Tests of course_lib.tokens.tokenizers, losses and titok: shapes, errors, and short learning runs."""
import pytest
import torch

from course_lib import data, metrics
from course_lib.tokens import bitwise
from course_lib.tokens import losses
from course_lib.tokens import vq as quantize
from course_lib.tokens import tokenizers
from course_lib.tokens.titok import TiTok


@pytest.mark.parametrize("q", [None, "vq", "rvq", "fsq", "bsq"])
def test_image_tokenizer_shapes_with_any_quantizer(q):
    make = {None: lambda: None, "vq": lambda: quantize.VectorQuantizer(16, 4),
            "rvq": lambda: quantize.ResidualVQ(2, 16, 4), "fsq": lambda: bitwise.FSQ([5, 5, 4, 4]),
            "bsq": lambda: bitwise.BSQ(4)}[q]
    m = tokenizers.ImageTokenizer(3, 16, 4, 2, quantizer=make())
    x = torch.rand(2, 3, 16, 16)
    out = m(x)
    assert out.recon.shape == x.shape and m.encode(x).shape == (2, 4, 4, 4)        # (B, h, w, D)
    if q is None:
        assert out.quant is None
    else:                                                # the quantizer's QuantOut, unchanged
        assert isinstance(out.quant, quantize.QuantOut) and out.quant.codes.shape[:3] == (2, 4, 4)
        assert out.quant.z_q.shape == (2, 4, 4, 4) and isinstance(out.quant.stats, quantize.CodeStats)
        torch.manual_seed(0)
        m.eval()
        again = m.quantizer(m.encode(x))
        assert torch.equal(m(x).quant.codes, again.codes)
        assert torch.allclose(m.decode(again.z_q), m(x).recon)
    with pytest.raises(ValueError, match="divisible by the patch size 4"):
        m(torch.rand(1, 3, 10, 10))


def test_audio_and_video_tokenizer_shapes():
    a = tokenizers.AudioTokenizer(8, 4, (4, 2), quantizer=quantize.ResidualVQ(3, 8, 4))
    w = torch.randn(2, 64)
    out = a(w, n_levels=2)
    assert out.recon.shape == w.shape and out.quant.codes.shape == (2, 8, 2)
    assert a.frame_rate(8000) == 1000
    with pytest.raises(ValueError, match="hop 8"):
        a(torch.randn(2, 60))
    v = tokenizers.VideoTokenizer(3, 8, 4, t=2, p=4)
    clip = torch.rand(2, 2, 3, 16, 16)
    assert v(clip).recon.shape == clip.shape
    t = TiTok(16, 4, n_tokens=3, token_dim=4, d_model=32, n_layer=1, quantizer=quantize.VectorQuantizer(8, 4))
    o = t(torch.rand(2, 3, 16, 16))
    assert o.recon.shape == (2, 3, 16, 16) and o.quant.codes.shape == (2, 3)
    img = tokenizers.ImageTokenizer(3, 8, 4, 2, quantizer=quantize.VectorQuantizer(8, 4))
    with pytest.raises(ValueError, match="n_levels needs a ResidualVQ"):
        img(torch.rand(1, 3, 8, 8), n_levels=1)


@pytest.mark.parametrize("strides", [(5, 4), (3, 5, 2), (4, 4, 2), (7,)])
def test_audio_tokenizer_keeps_every_sample_with_odd_strides(strides):
    """L / prod(strides) frames and L samples back for odd strides too (EnCodec and SoundStream use
    5): with padding s // 2, strides (5, 4) gave 19 frames for 400 samples."""
    a = tokenizers.AudioTokenizer(8, 4, strides)
    hop = a.hop
    w = torch.randn(2, 20 * hop)
    assert a.encode(w).shape == (2, 20, 4)
    assert a(w).recon.shape == w.shape
    # every output frame sees its own stretch of samples: a change in the last hop moves the last frame
    w2 = w.clone()
    w2[:, -hop:] += 1.0
    moved = (a.encode(w2) - a.encode(w)).abs().sum((0, 2))
    assert moved[-1] > 0


def test_audio_tokenizer_refuses_a_stride_of_one():
    with pytest.raises(ValueError, match=r"^strides: expected ints >= 2"):
        tokenizers.AudioTokenizer(8, 4, (4, 1))
    with pytest.raises(TypeError, match=r"^strides: expected an int"):
        tokenizers.AudioTokenizer(8, 4, (4, 2.5))


def test_tokenizers_name_data_in_another_dtype_or_on_another_device():
    img = tokenizers.ImageTokenizer(3, 8, 4, 1)
    with pytest.raises(TypeError, match=r"^x has dtype torch.float64 but the model's weights are torch.float32"):
        img(torch.rand(1, 3, 4, 4, dtype=torch.float64))
    with pytest.raises(TypeError, match=r"^z has dtype torch.float64"):
        img.decode(torch.rand(1, 2, 2, 4, dtype=torch.float64))
    with pytest.raises(TypeError, match=r"^x has dtype torch.float64"):
        tokenizers.evaluate(img, torch.rand(2, 3, 4, 4, dtype=torch.float64))
    assert img.double()(torch.rand(1, 3, 4, 4, dtype=torch.float64)).recon.dtype == torch.float64
    titok = TiTok(8, 4, n_tokens=2, token_dim=4, d_model=16, n_layer=1)
    with pytest.raises(TypeError, match=r"^x has dtype torch.float64"):
        titok(torch.rand(1, 3, 8, 8, dtype=torch.float64))
    with torch.autocast("cpu", dtype=torch.bfloat16):     # bf16 activations into fp32 weights: allowed
        assert titok(torch.rand(1, 3, 8, 8)).recon.shape == (1, 3, 8, 8)
        assert img.float()(torch.rand(1, 3, 4, 4)).recon.shape == (1, 3, 4, 4)
    meta = tokenizers.ImageTokenizer(3, 8, 4, 1).to("meta")
    with pytest.raises(ValueError, match=r"^x is on cpu but the model is on meta"):
        tokenizers.evaluate(meta, torch.rand(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"^x is on cpu but the model is on meta"):
        TiTok(8, 4, n_tokens=2, token_dim=4, d_model=16, n_layer=1).to("meta")(torch.rand(1, 3, 8, 8))


def test_vq_tokenizer_learns_shapes():
    torch.manual_seed(0)
    imgs = data.shapes(512, 16, seed=0).images
    vq = quantize.VectorQuantizer(32, 4, ema=True, kmeans_init=True, dead_threshold=0.5)
    m = tokenizers.ImageTokenizer(3, 16, 4, 2, quantizer=vq)
    before = tokenizers.evaluate(m, imgs[:128])["psnr"]
    tokenizers.fit(m, tokenizers.sample_batch(imgs, 32), 200, lr=3e-3, progress=False)
    after = tokenizers.evaluate(m, imgs[:128])
    assert after["psnr"] > before + 3 and after["psnr"] > 14, (before, after["psnr"])
    assert after["perplexity"] > 4


def test_shift_by_one_has_large_mse_but_small_stft_loss():
    w = data.audio_clips(4, kind="note", seconds=0.25, seed=0).waves
    shifted = torch.roll(w, 1, dims=1)
    noise = w + torch.randn_like(w) * (shifted - w).pow(2).mean().sqrt()
    assert losses.multi_resolution_stft_loss(w, shifted) < 0.5 * losses.multi_resolution_stft_loss(w, noise)


def test_adaptive_weight_and_hinge():
    last = torch.nn.Parameter(torch.randn(3, 3))
    x = torch.randn(5, 3)
    out = x @ last
    rec, g = out.pow(2).mean(), -(2 * out).mean()
    lam = losses.adaptive_weight(rec, g, last)
    gr = torch.autograd.grad(rec, last, retain_graph=True)[0].norm()
    gg = torch.autograd.grad(g, last)[0].norm()
    assert torch.isclose(lam, gr / (gg + 1e-4)) and not lam.requires_grad
    assert losses.hinge_d_loss(torch.full((4,), 2.0), torch.full((4,), -2.0)).item() == 0.0
    d = losses.PatchDiscriminator(3, 8, 2)
    assert d(torch.rand(2, 3, 16, 16)).shape == (2, 1, 4, 4)


def test_titok_tail_drop_decodes_from_the_first_k_tokens():
    torch.manual_seed(0)
    t = TiTok(16, 4, n_tokens=6, token_dim=4, d_model=32, n_layer=1, tail_drop=True).eval()
    x = torch.rand(2, 3, 16, 16)
    a, b = t(x, n_tokens=2), t(x)
    assert a.quant is None and t.encode(x).shape == (2, 6, 4)
    assert torch.allclose(a.recon, t.decode(t.encode(x)[:, :2]), atol=1e-6)   # the first 2 tokens only
    assert not torch.allclose(a.recon, b.recon)
    with pytest.raises(ValueError, match="n_tokens must be in 1..6"):
        t(x, n_tokens=7)


def test_fit_divides_by_data_variance():
    torch.manual_seed(0)
    m = tokenizers.AudioTokenizer(8, 4, (4, 2))
    w = torch.randn(4, 64) * 0.1
    h = tokenizers.fit(m, lambda s: w, 1, data_variance=0.01, progress=False)
    with torch.no_grad():
        mse = (m(w).recon - w).pow(2).mean().item()
    assert h.logs["rec"][0] > 10 * mse
    with pytest.raises(ValueError, match="data_variance"):
        tokenizers.fit(m, lambda s: w, 1, data_variance=0.0, progress=False)


def test_evaluate_reports_quality_and_stats_for_every_quantizer():
    torch.manual_seed(0)
    waves = torch.randn(6, 64)
    codec = tokenizers.AudioTokenizer(8, 4, (4, 2), quantizer=quantize.ResidualVQ(3, 8, 4))
    r = tokenizers.evaluate(codec, waves, batch=4, n_levels=2)        # two batches
    assert r["recon"].shape == waves.shape and r["codes"].shape == (6, 8, 2) and "psnr" not in r
    assert r["snr_db"] == pytest.approx(metrics.snr_db(waves, r["recon"]))
    assert len(r["stats"].level_perplexity) == 2 and r["perplexity"] == r["stats"].perplexity
    img = tokenizers.ImageTokenizer(3, 8, 4, 2, quantizer=bitwise.FSQ([5, 4, 3, 2]))
    x = torch.rand(5, 3, 8, 8)
    r = tokenizers.evaluate(img, x)
    assert "snr_db" not in r and 0 < r["psnr"] < 60 and 1 <= r["perplexity"] <= 120
    cont = tokenizers.evaluate(tokenizers.ImageTokenizer(3, 8, 4, 2), x)
    assert cont["codes"] is None and "perplexity" not in cont


def test_fit_logs_perplexity_for_residual_vq_too():
    torch.manual_seed(0)
    codec = tokenizers.AudioTokenizer(8, 4, (4, 2), quantizer=quantize.ResidualVQ(3, 8, 4, quantizer_dropout=True))
    w = torch.randn(4, 64)
    h = tokenizers.fit(codec, lambda s: w, 3, progress=False)
    assert len(h.logs["perplexity"]) == 3 and all(1 <= p <= 8 for p in h.logs["perplexity"])
    assert len(h.logs["usage"]) == 3


def test_fit_trains_the_discriminator_explicitly_after_disc_start():
    torch.manual_seed(0)
    m = tokenizers.ImageTokenizer(3, 8, 4, 1, quantizer=quantize.ema_vq(16, 4, vectors_per_batch=4 * 16))
    d = losses.PatchDiscriminator(3, 8, 2)
    before = [p.detach().clone() for p in d.parameters()]
    x = torch.rand(4, 3, 8, 8)
    h = tokenizers.fit(m, lambda s: x, 2, discriminator=d, disc_start=2, progress=False)
    assert "adversary_loss" not in h.logs                             # steps 0, 1 < disc_start
    assert all(torch.equal(a, b) for a, b in zip(before, d.parameters()))
    h = tokenizers.fit(m, lambda s: x, 3, discriminator=d, disc_start=1, progress=False)
    assert len(h.logs["adversary_loss"]) == 2                         # steps 1 and 2
    assert not all(torch.equal(a, b) for a, b in zip(before, d.parameters()))


def test_sample_crops_are_windows_of_the_image():
    img = torch.arange(3 * 10 * 12, dtype=torch.float32).reshape(3, 10, 12)
    crops = tokenizers.sample_crops(img, 4, 5, seed=1)(0)
    assert crops.shape == (5, 3, 4, 4)
    for c in crops:                                                   # each crop is a window of img
        y, x = divmod(int(c[0, 0, 0]), 12)
        assert torch.equal(c, img[:, y:y + 4, x:x + 4])


# ----------------------------------------------------------------------------- notebook 02's recipe

def test_recipe_tokenizers_go_through_the_model_cache_with_their_history(tmp_path, monkeypatch):
    """A second call loads the first's weights (no training) and gives back its history; each loss
    and quantizer variant has its own cache entry; 0 steps is an error, not the budget's default."""
    import dataclasses

    from course_lib.recipes import tokens as recipe
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    B = dataclasses.replace(recipe.budget("quick"), n_train=64, batch=8, hidden=8, clf_steps=2)
    shapes = recipe.shapes_data(B)
    first = recipe.train_vq(B, 8, 3, shapes=shapes, progress=False)
    again = recipe.train_vq(B, 8, 3, shapes=shapes, progress=False)
    assert not first.model.from_cache and again.model.from_cache
    assert again.history.losses == first.history.losses and len(again.history.logs["perplexity"]) == 3
    assert again.result["psnr"] == first.result["psnr"]
    other = recipe.train_vq(B, 8, 3, fixed=False, similar="gan", shapes=shapes, progress=False)
    assert not other.model.from_cache and "trained here" in recipe.origin([other])
    assert len(list(tmp_path.glob("tokens-vq-*.pt"))) == 2
    with pytest.raises(ValueError, match="steps: expected an int >= 1, got 0"):
        recipe.collapse_runs(B, steps=0, shapes=shapes, progress=False)
    with pytest.raises(ValueError, match="similar: expected one of"):
        recipe.train_vq(B, 8, 3, similar="l2", shapes=shapes)
