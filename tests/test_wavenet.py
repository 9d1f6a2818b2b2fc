"""course_lib.pixels.wavenet: mu-law, causality and receptive field, cached generation, a learning test."""
import math

import pytest
import torch

from course_lib import data, train
from course_lib.pixels import wavenet as W


def test_mu_law_range_and_round_trip_bound():
    mu = 255
    x = torch.linspace(-1, 1, 20001)
    q = W.mu_law_encode(x)
    assert q.dtype == torch.long and q.min() == 0 and q.max() == mu
    assert (q[1:] >= q[:-1]).all(), "encoding is monotone"
    err = (W.mu_law_decode(q) - x).abs()
    # half a bin in the companded domain (1/mu) times the slope dx/df = ln(1+mu)/mu * (1 + mu|x|),
    # taken at the far end of the half bin (a factor (1+mu)^(1/mu))
    bound = math.log1p(mu) / mu / mu * (1 + mu * x.abs()) * (1 + mu) ** (1 / mu)
    assert (err <= bound + 1e-6).all(), f"worst excess {float((err - bound).max()):.3g}"
    assert err.max() < 0.023 and err[x.abs() < 0.01].max() < 3e-4, "quiet samples are kept finely"
    assert torch.equal(W.mu_law_encode(W.mu_law_decode(torch.arange(256))), torch.arange(256))


def test_mu_law_is_ibabs_encode_and_decode():
    """ibab/tensorflow-wavenet wavenet/ops.py, computed its way: mu = channels - 1, |x| clipped to 1,
    int32((sign(x) log1p(mu |x|) / log1p(mu) + 1) / 2 * mu + 0.5); decode
    sign(s) (1/mu) ((1 + mu)^|s| - 1) with s = 2 q / mu - 1."""
    x = torch.cat([torch.linspace(-1.2, 1.2, 4801), torch.randn(500, generator=torch.Generator().manual_seed(0))])
    mu = 255.0
    f = torch.sign(x) * torch.log1p(mu * x.abs().clamp(max=1.0)) / math.log1p(mu)
    want = ((f + 1) / 2 * mu + 0.5).to(torch.int32).long()
    assert torch.equal(W.mu_law_encode(x), want)
    q = torch.arange(256)
    s = 2 * (q.float() / mu) - 1
    assert torch.allclose(W.mu_law_decode(q), torch.sign(s) * (1 / mu) * ((1 + mu) ** s.abs() - 1), atol=1e-6)


def test_mu_law_clips_and_checks_types():
    assert W.mu_law_encode(torch.tensor([-5.0, 5.0])).tolist() == [0, 255]
    with pytest.raises(TypeError, match="float"):
        W.mu_law_encode(torch.tensor([1, 2]))
    with pytest.raises(TypeError, match="integer"):
        W.mu_law_decode(torch.tensor([0.5]))


def test_quantize_bits():
    x = torch.linspace(-1, 1, 1000)
    assert W.quantize_bits(x, 1).unique().numel() == 2
    assert W.quantize_bits(x, 4).unique().numel() == 16
    assert (W.quantize_bits(x, 8) - x).abs().max() <= 1 / 255 + 1e-6


def test_causal_and_receptive_field():
    torch.manual_seed(0)
    m = W.WaveNet(channels=8, skip_channels=8, dilations=(1, 2, 4, 8))
    assert m.receptive_field == 16
    q = torch.randint(0, 256, (1, 60))
    base = m(q)
    for t in (20, 40):
        q2 = q.clone()
        q2[0, t] = (q2[0, t] + 100) % 256
        out = m(q2)
        changed = (out - base).abs().amax(1)[0] > 1e-6          # (L,)
        assert not changed[:t].any(), f"changing sample {t} changed an earlier prediction"
        assert changed[t], "the prediction at t must see sample t (it predicts t + 1)"
        assert changed[t + 15] and not changed[t + 16:].any(), "receptive field is 16 samples"


def test_cached_generation_matches_the_full_forward(monkeypatch):
    torch.manual_seed(0)
    m = W.WaveNet(channels=8, skip_channels=8, dilations=(1, 2, 4, 1, 2))
    prime = torch.randint(0, 256, (2, 7))
    seen = []
    real = torch.multinomial

    def spy(probs, k, generator=None):
        seen.append(probs.clone())
        return real(probs, k, generator=generator)
    monkeypatch.setattr(torch, "multinomial", spy)
    out = m.generate(25, prime, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 32) and torch.equal(out[:, :7], prime) and len(seen) == 25
    full = torch.softmax(m(out), dim=1)                           # (N, 256, L)
    for k, p in enumerate(seen):
        assert torch.allclose(p, full[:, :, 6 + k], atol=1e-5), f"step {k} differs from the full pass"
    with pytest.raises(ValueError, match="prime"):
        m.generate(5, torch.zeros(2, 0, dtype=torch.long))


def test_generation_can_show_progress_and_draws_the_same_samples(capsys):
    m = W.WaveNet(channels=8, skip_channels=8, dilations=(1, 2))
    prime = torch.randint(0, 256, (2, 4), generator=torch.Generator().manual_seed(1))
    quiet = m.generate(10, prime, generator=torch.Generator().manual_seed(0))
    assert capsys.readouterr().err == ""
    shown = m.generate(10, prime, generator=torch.Generator().manual_seed(0), progress=True)
    assert torch.equal(quiet, shown)
    assert "WaveNet generation: 13/13 steps" in capsys.readouterr().err     # no kernel, no terminal: one line


def test_forward_rejects_floats():
    with pytest.raises(TypeError, match="int64"):
        W.WaveNet(channels=8, skip_channels=8, dilations=(1,))(torch.zeros(1, 10))


def test_levels_out_of_range_and_other_devices_name_the_argument():
    m = W.WaveNet(levels=16, channels=4, skip_channels=4, dilations=(1, 2))
    with pytest.raises(ValueError, match=r"q: expected values in \[0, 15\], got values in \[0, 16\]"):
        m(torch.tensor([[0, 3, 16]]))
    with pytest.raises(ValueError, match=r"q: expected values in \[0, 15\]"):
        W.wavenet_loss(m, torch.tensor([[0, -1, 2]]))
    meta = W.WaveNet(levels=16, channels=4, skip_channels=4, dilations=(1, 2)).to("meta")
    q = torch.zeros(2, 8, dtype=torch.long)
    with pytest.raises(ValueError, match=r"^q is on cpu but the model is on meta"):
        meta(q)
    with pytest.raises(ValueError, match=r"^prime is on cpu but the model is on meta"):
        meta.generate(3, q)
    with pytest.raises(ValueError, match=r"^levels is on cpu but the model is on meta"):
        W.fit(meta, q, 1, batch=2, crop=4, progress=False)
    with pytest.raises(ValueError, match=r"^levels is on cpu but the model is on meta"):
        W.evaluate_bits(meta, q)


def test_generate_temperature_top_k_and_errors():
    torch.manual_seed(0)
    m = W.WaveNet(channels=8, skip_channels=8, dilations=(1, 2))
    prime = torch.randint(0, 256, (3, 4))
    greedy = m.generate(6, prime, top_k=1, generator=torch.Generator().manual_seed(0))
    again = m.generate(6, prime, top_k=1, generator=torch.Generator().manual_seed(1))
    assert torch.equal(greedy, again), "top_k=1 is greedy: the generator does not matter"
    full = m(greedy)                                                 # (3, 256, 10)
    assert torch.equal(greedy[:, 4:], full[:, :, 3:-1].argmax(1)), "each greedy sample is the argmax"
    per_clip = m.generate(6, prime, temperature=torch.tensor([1.0, 0.5, 2.0]),
                          generator=torch.Generator().manual_seed(0))
    assert per_clip.shape == (3, 10)
    with pytest.raises(ValueError, match="temperature"):
        m.generate(5, prime, temperature=torch.tensor([1.0, 0.5]))
    with pytest.raises(ValueError, match="temperature"):
        m.generate(5, prime, temperature=0.0)
    with pytest.raises(ValueError, match=r"prime: expected values in \[0, 255\]"):
        m.generate(5, torch.full((1, 3), 256))


def test_random_windows_are_consecutive_samples_of_one_clip():
    waves = torch.arange(3 * 100).view(3, 100)                      # clip c, sample t holds 100 c + t
    w = W.random_windows(waves, 50, 20, torch.Generator().manual_seed(0))
    assert w.shape == (50, 20)
    assert (w.diff(dim=1) == 1).all(), "a window is consecutive samples"
    assert ((w[:, 0] % 100) <= 80).all() and set((w[:, 0] // 100).tolist()) == {0, 1, 2}
    with pytest.raises(ValueError, match="longer than the clips"):
        W.random_windows(waves, 2, 101, torch.Generator())


def test_learning_beats_the_marginal_distribution():
    """150 CPU steps predict the next mu-law sample far better than the marginal histogram."""
    torch.manual_seed(0)
    waves = data.audio_clips(16, seconds=0.5, seed=1).waves
    q = W.mu_law_encode(waves)
    counts = torch.bincount(q.flatten().cpu(), minlength=256).float() + 1
    p = counts / counts.sum()
    marginal = float(-(p * p.log2()).sum())                       # bits per sample, no context
    m = W.WaveNet(channels=16, skip_channels=32, dilations=(1, 2, 4, 8, 16, 32)).to(q.device)
    g = torch.Generator().manual_seed(0)
    train.train(m, lambda s: W.wavenet_loss(m, W.random_windows(q, 8, 512, g), skip=63), 150, lr=3e-3,
                progress=False)
    with torch.no_grad():
        bits = W.wavenet_loss(m, q[:, :2048], skip=63).item()
    assert bits < marginal - 1.5, f"{bits:.2f} bits/sample vs {marginal:.2f} for the marginal"


def test_recipe_trains_through_the_model_cache(tmp_path, monkeypatch):
    """trained_wavenet keeps the model and its history in the cache; a learner's encode is kept nowhere."""
    import dataclasses
    from course_lib import runtime
    from course_lib.recipes import pixels_and_samples as recipe
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    monkeypatch.setattr(runtime, "_state", {"mode": "quick", "device": None})   # quick: never shipped weights
    B = recipe.budget("quick")
    B = dataclasses.replace(B, wave=dataclasses.replace(B.wave, channels=4, skip=8, dilations=(1, 2), clips=4,
                                                         steps=3, batch=2, crop=32))
    first, again = recipe.trained_wavenet(B, progress=False), recipe.trained_wavenet(B, progress=False)
    assert not first.from_cache and again.from_cache and again.history.losses == first.history.losses
    files = sorted(tmp_path.iterdir())
    encoded = []
    mine = recipe.trained_wavenet(B, encode=lambda x: encoded.append(x.shape) or W.mu_law_encode(x), progress=False)
    assert not mine.from_cache and encoded == [(4, recipe.SAMPLE_RATE)] and sorted(tmp_path.iterdir()) == files
