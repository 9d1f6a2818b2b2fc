"""Tests of course_lib.tokens.tokenizers, losses and titok: shapes, errors, and short learning runs."""
import pytest
import torch

from course_lib import data
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
    assert out.recon.shape == x.shape and out.z.shape == (2, 4, 4, 4)
    if q is not None:
        assert out.codes.shape[:3] == (2, 4, 4)
    with pytest.raises(ValueError, match="divisible by the patch size 4"):
        m(torch.rand(1, 3, 10, 10))


def test_audio_and_video_tokenizer_shapes():
    a = tokenizers.AudioTokenizer(8, 4, (4, 2), quantizer=quantize.ResidualVQ(3, 8, 4))
    w = torch.randn(2, 64)
    out = a(w, n_q=2)
    assert out.recon.shape == w.shape and out.codes.shape == (2, 8, 2)
    assert a.frame_rate(8000) == 1000
    with pytest.raises(ValueError, match="hop 8"):
        a(torch.randn(2, 60))
    v = tokenizers.VideoTokenizer(3, 8, 4, t=2, p=4)
    clip = torch.rand(2, 2, 3, 16, 16)
    assert v(clip).recon.shape == clip.shape
    t = TiTok(16, 4, n_tokens=3, token_dim=4, d_model=32, n_layer=1, quantizer=quantize.VectorQuantizer(8, 4))
    o = t(torch.rand(2, 3, 16, 16))
    assert o.recon.shape == (2, 3, 16, 16) and o.codes.shape == (2, 3)


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
    assert a.z.shape == (2, 2, 4) and b.z.shape == (2, 6, 4) and not torch.allclose(a.recon, b.recon)
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
