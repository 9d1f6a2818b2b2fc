"""VAR's multi-scale tokenizer and block-causal transformer, Infinity's bits and bitwise
self-correction (course_lib.orders.var, course_lib.orders.infinity)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course_lib import data
from course_lib.nets import count_parameters
from course_lib.nets.transformer import Config
from course_lib.orders import infinity, var
from course_lib.orders.prompt import drop_prompts
from course_lib.tokens import tokenizers
from course_lib.tokens.bitwise import bits_to_index
from course_lib.train import train

SCALES = (1, 2, 3, 4)
TINY = Config(d_model=32, n_layer=1, n_head=2)


def _prompts(n, seed=0):
    return data.shapes(n, seed=seed).prompts.cpu()


# ----------------------------------------------------------------------------- VAR tokenizer

def test_multiscale_vq_shapes_and_codes_roundtrip():
    q = var.MultiScaleVQ(16, 4, SCALES).eval()
    z = torch.randn(3, 4, 4, 4)
    out = q(z)
    assert out.z_q.shape == z.shape and out.codes.shape == (3, 30) and out.loss.dim() == 0
    codes, partial = q.encode_scales(z)
    assert torch.equal(codes, out.codes)
    assert torch.allclose(out.z_q, partial[-1], atol=1e-5)          # forward value = f_hat
    assert torch.allclose(q.decode_codes(codes), partial[-1], atol=1e-5)
    assert [c.shape[1:] for c in q.split(codes)] == [(p, p) for p in SCALES]
    assert q.teacher_inputs(codes).shape == (3, 29, 4)


def test_multiscale_vq_quantizes_the_residual_not_f():
    """Scale 2's codes are the nearest codes of area-down(f - h_1), not of area-down(f) (VAR §3.2)."""
    torch.manual_seed(0)
    q = var.MultiScaleVQ(32, 4, SCALES).eval()
    z = torch.randn(8, 4, 4, 4) * 2
    codes, _ = q.encode_scales(z)
    f = z.permute(0, 3, 1, 2)
    h1 = q.embed(0, q.split(codes)[0])
    want = torch.cdist(var.area_down(f - h1, 2).permute(0, 2, 3, 1).reshape(-1, 4), q.codebook).argmin(1)
    from_f = torch.cdist(var.area_down(f, 2).permute(0, 2, 3, 1).reshape(-1, 4), q.codebook).argmin(1)
    assert torch.equal(q.split(codes)[1].reshape(-1), want)
    assert not torch.equal(want, from_f)


def _vars_phi_choice(K, SN):
    """VAR's quant.py ``PhiPartiallyShared`` as written there: float64 numpy ticks, argmin."""
    ticks = np.linspace(1/3/K, 1-1/3/K, K) if K == 4 else np.linspace(1/2/K, 1-1/2/K, K)
    return [np.argmin(np.abs(ticks - si/(SN-1))).item() for si in range(SN)]


def _picks(q):
    return [next(i for i, m in enumerate(q.phis) if m is q.phi(k)) for k in range(len(q.scales))]


@pytest.mark.parametrize("scales", [SCALES, (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)])    # the course's, VAR's 256px
@pytest.mark.parametrize("n_phi", [1, 2, 3, 4, 6])
def test_phi_per_scale_is_vars_choice(scales, n_phi):
    """Scale k uses the phi VAR's code picks (ticks at 1/(3K) for K = 4, 1/(2K) otherwise, float64):
    with VAR's 10 scales and its 4 phis k/9 ties two ticks at k = 2 and 7."""
    assert _picks(var.MultiScaleVQ(8, 4, scales, n_phi=n_phi)) == _vars_phi_choice(n_phi, len(scales))


def test_phi_choice_of_the_course_and_of_var():
    assert _picks(var.MultiScaleVQ(8, 4, SCALES, n_phi=4)) == [0, 1, 2, 3]   # the course's 4 scales
    assert var.phi_indices(4, 10) == [0, 0, 1, 1, 1, 2, 2, 3, 3, 3]           # VAR's 10 scales


def test_tokenizer_reconstruction_improves_with_each_scale():
    """A trained multi-scale tokenizer: the decoded running reconstruction gets closer to the image
    at every scale."""
    torch.manual_seed(0)
    tok = tokenizers.ImageTokenizer(3, 16, 8, 2, quantizer=var.MultiScaleVQ(32, 8, SCALES))
    pool = data.shapes(1024, seed=0).images.cpu()
    tokenizers.fit(tok, tokenizers.sample_batch(pool, 32), 150, lr=3e-3, progress=False)
    tok.eval()
    test = data.shapes(256, seed=5).images.cpu()
    with torch.no_grad():
        _, partial = tok.quantizer.encode_scales(tok.encode(test))
        mse = [(tok.decode(p).clamp(0, 1) - test).pow(2).mean().item() for p in partial]
    assert all(b < a for a, b in zip(mse, mse[1:])), mse
    assert mse[-1] < 0.5 * mse[0], mse


# ----------------------------------------------------------------------------- VAR transformer

def test_block_causal_mask_scale_k_sees_only_scales_up_to_k():
    m = var.VAR(16, 4, SCALES, TINY)
    mask = m.mask()
    blocks = [4, 1, 4, 9, 16]
    ids = torch.repeat_interleave(torch.arange(5), torch.tensor(blocks))
    assert mask.shape == (34, 34)
    for i in range(34):
        for j in range(34):
            assert bool(mask[i, j]) == bool(ids[j] <= ids[i])
    # full attention inside a scale: the first token of scale 4 sees the last token of scale 4
    assert mask[18, 33] and not mask[17, 18]


def test_var_outputs_do_not_depend_on_later_scales():
    torch.manual_seed(0)
    m = var.VAR(16, 4, SCALES, TINY).eval()
    p = _prompts(2)
    x = torch.randn(2, 29, 4)
    y = x.clone()
    y[:, 4:] = torch.randn(2, 25, 4)                                  # change scales 3 and 4 only
    a, b = m(x, p), m(y, p)
    assert torch.allclose(a[:, :5], b[:, :5], atol=1e-6)             # scales 1 and 2 unchanged
    assert not torch.allclose(a[:, 5:], b[:, 5:])


def test_var_generation_uses_exactly_one_forward_pass_per_scale():
    m = var.VAR(16, 4, SCALES, TINY)
    q = var.MultiScaleVQ(16, 4, SCALES).eval()
    calls = []
    m.register_forward_hook(lambda *a: calls.append(1))
    for cfg_scale in (1.0, 2.5):
        calls.clear()
        out = var.generate(m, q, _prompts(5), cfg_scale=cfg_scale, generator=torch.Generator().manual_seed(0))
        assert len(calls) == len(SCALES) == out["nfe"]
        assert out["latent"].shape == (5, 4, 4, 4) and out["codes"].shape == (5, 30)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("order", ["var", "infinity"])
def test_generate_samples_in_eval_mode_and_gives_the_callers_mode_back(order, training):
    if order == "var":
        m, q, sample = var.VAR(16, 4, SCALES, TINY), var.MultiScaleVQ(16, 4, SCALES).eval(), var.generate
    else:
        m, q, sample = infinity.Infinity(6, SCALES, TINY), infinity.MultiScaleBSQ(6, SCALES), infinity.generate
    m.train(training)
    seen = []
    m.register_forward_hook(lambda mod, *a: seen.append(mod.training))
    sample(m, q, _prompts(2), cfg_scale=2.0, generator=torch.Generator().manual_seed(0))
    assert len(seen) == len(SCALES) and not any(seen)          # every pass with dropout off
    assert all(sub.training == training for sub in m.modules())


def test_var_guidance_ramps_over_scales():
    assert [var.guidance_scale(1.5, k, 4) for k in range(4)] == [1.0, 1.5, 2.0, 2.5]


def test_var_rejects_partial_scales_and_bad_inputs():
    m = var.VAR(16, 4, SCALES, TINY)
    with pytest.raises(ValueError, match="whole scales"):
        m(torch.randn(2, 3, 4), _prompts(2))
    with pytest.raises(ValueError, match=r"inputs: expected shape \(B, n, 4\)"):
        m(torch.randn(2, 4, 5), _prompts(2))
    with pytest.raises(ValueError, match="scales"):
        var.MultiScaleVQ(8, 4, (2, 1))


def test_var_learns_the_scale_codes():
    """After 200 CPU steps on the codes of a fixed random tokenizer the per-token cross-entropy
    falls well under log K (what a model that ignores its input scores at best is the entropy of the
    code histogram, measured here)."""
    torch.manual_seed(0)
    tok = tokenizers.ImageTokenizer(3, 16, 4, 2, quantizer=var.MultiScaleVQ(16, 4, SCALES)).eval()
    shapes = data.shapes(512, seed=0)
    with torch.no_grad():
        codes, _ = tok.quantizer.encode_scales(tok.encode(shapes.images.cpu()))
    inputs, prompts = tok.quantizer.teacher_inputs(codes), shapes.prompts.cpu()
    hist = torch.bincount(codes.flatten(), minlength=16).float()
    unigram = -(hist / hist.sum() * (hist / hist.sum()).clamp_min(1e-12).log()).sum().item()
    m = var.VAR(16, 4, SCALES, Config(d_model=48, n_layer=2, n_head=4))
    g = torch.Generator().manual_seed(0)

    def loss_fn(step):
        i = torch.randint(512, (32,), generator=g)
        return m.loss(codes[i], inputs[i], drop_prompts(prompts[i], 0.1, g))
    hist_ = train(m, loss_fn, 200, lr=3e-3, progress=False)
    final = sum(hist_.losses[-20:]) / 20
    assert final < 0.6 * unigram, (final, unigram)


# ----------------------------------------------------------------------------- Infinity

def test_multiscale_bsq_matches_self_correction_without_flips():
    torch.manual_seed(0)
    q = infinity.MultiScaleBSQ(6, SCALES).eval()
    z = torch.randn(4, 4, 4, 6)
    out = q(z)
    sc = infinity.self_correct(q, z, p_max=0.0)
    assert torch.equal(sc.labels, sc.used) and sc.p == [0.0] * 4
    assert torch.equal(bits_to_index(sc.labels), out.codes)
    assert torch.allclose(q.decode_bits(sc.labels), out.z_q, atol=1e-5)
    _, partial = q.encode_scales(z)
    err = [(p - z).pow(2).mean().item() for p in partial]
    assert err[-1] < err[0]


def test_self_correction_labels_come_from_the_requantized_residual():
    """Scale k's label is the sign of area-down(f - cum) where cum sums the FLIPPED bits of the
    earlier scales; the flipped scale's own label is the clean one."""
    torch.manual_seed(0)
    q = infinity.MultiScaleBSQ(8, SCALES)
    z = torch.randn(64, 4, 4, 8)
    sc = infinity.self_correct(q, z, p_max=0.3, generator=torch.Generator().manual_seed(3))
    clean = infinity.self_correct(q, z, p_max=0.0)
    sizes = [p * p for p in SCALES]
    used, labels = sc.used.split(sizes, 1), sc.labels.split(sizes, 1)
    f = z.permute(0, 3, 1, 2)
    cum = torch.zeros_like(f)
    for k, p in enumerate(SCALES):
        want = (var.area_down(f - cum, p) > 0).long().flatten(2).transpose(1, 2)
        assert torch.equal(labels[k], want), f"scale {k}"
        cum = cum + q.codes_of(k, used[k])
    assert torch.equal(labels[0], clean.labels[:, :1])                # scale 1 never sees a flip
    assert (sc.used != sc.labels).any()                                # some bits were flipped
    assert not torch.equal(sc.labels, clean.labels)                    # and later labels changed
    # the inputs are the corrupted running sum resized as Infinity's flip_requant does:
    # F.interpolate(cum, size, mode="trilinear") over (T, H, W) = 1 x H x W
    cum = torch.zeros_like(f)
    for k, p in enumerate(SCALES[1:]):
        cum = cum + q.codes_of(k, used[k])
        want = F.interpolate(cum.unsqueeze(2), size=(1, p, p), mode="trilinear").flatten(2).transpose(1, 2)
        start = sum(s * s for s in SCALES[1:k + 1])
        assert torch.allclose(sc.inputs[:, start:start + p * p], want, atol=1e-6), f"input of scale {k + 1}"


def test_self_correction_flip_share_is_bounded_and_drawn_per_scale():
    q = infinity.MultiScaleBSQ(8, SCALES)
    z = torch.randn(256, 4, 4, 8)
    g = torch.Generator().manual_seed(0)
    seen = set()
    sizes = [p * p for p in SCALES]
    for _ in range(30):
        sc = infinity.self_correct(q, z, p_max=0.3, generator=g)
        assert len(sc.p) == 4 and sc.p[-1] == 0.0
        assert all(0.0 <= p <= 0.3 for p in sc.p)
        seen.update(sc.p[:-1])
        for k, (u, lab) in enumerate(zip(sc.used.split(sizes, 1), sc.labels.split(sizes, 1))):
            share = (u != lab).float().mean().item()
            if k < 3:
                assert share <= sc.p[k] + 0.05                           # flips only ever at rate p_k
            else:
                assert share == 0.0
    assert len(seen) > 10                                              # a fresh p per scale, not fixed
    with pytest.raises(ValueError, match="p_max"):
        infinity.self_correct(q, z, p_max=1.5)


def test_bitwise_head_counts():
    c = infinity.head_parameters(128, 16)
    assert c["bitwise"] == 129 * 16 and c["index_softmax"] == 129 * 65536
    m = infinity.Infinity(8, SCALES, TINY)
    assert count_parameters(m.head) == infinity.head_parameters(32, 8)["bitwise"]


def test_scale_weights_are_infinitys_reweight_loss_by_scale():
    """Infinity's trainer.py: lw = sqrt(area_last) / sqrt(area_k) per token, lw / lw.sum(); a
    scale's share grows with its side (1 : 2 : 3 : 4 here); off, every token weighs 1 / L."""
    schedule = [(1, p, p) for p in SCALES]
    last = np.sqrt(np.prod(schedule[-1]))
    lw = np.array([last / np.sqrt(pt * ph * pw) for pt, ph, pw in schedule for _ in range(pt * ph * pw)])
    w = infinity.scale_weights(SCALES)
    assert np.allclose(w.numpy(), lw / lw.sum(), atol=1e-7)
    per_scale = [s.sum().item() for s in w.split([1, 4, 9, 16])]
    assert np.allclose(per_scale, [0.1, 0.2, 0.3, 0.4], atol=1e-6)
    assert torch.allclose(infinity.scale_weights(SCALES, False), torch.full((30,), 1 / 30))


def test_infinity_generation_one_pass_per_scale():
    m = infinity.Infinity(6, SCALES, TINY)
    q = infinity.MultiScaleBSQ(6, SCALES)
    calls = []
    m.register_forward_hook(lambda *a: calls.append(1))
    out = infinity.generate(m, q, _prompts(3), cfg_scale=2.0, generator=torch.Generator().manual_seed(0))
    assert len(calls) == 4 == out["nfe"] and out["bits"].shape == (3, 30, 6)
    assert torch.allclose(out["latent"], q.decode_bits(out["bits"]), atol=1e-5)


def test_infinity_learns_the_bits():
    """200 CPU steps: the weighted per-bit cross-entropy falls well under ln 2 = 0.693 (a coin)."""
    torch.manual_seed(0)
    tok = tokenizers.ImageTokenizer(3, 16, 6, 2, quantizer=infinity.MultiScaleBSQ(6, SCALES)).eval()
    shapes = data.shapes(512, seed=0)
    with torch.no_grad():
        z = tok.encode(shapes.images.cpu())
    prompts = shapes.prompts.cpu()
    m = infinity.Infinity(6, SCALES, Config(d_model=48, n_layer=2, n_head=4))
    g = torch.Generator().manual_seed(0)

    def loss_fn(step):
        i = torch.randint(512, (32,), generator=g)
        sc = infinity.self_correct(tok.quantizer, z[i], 0.3, g)
        return m.loss(sc.labels, sc.inputs, drop_prompts(prompts[i], 0.1, g))
    hist = train(m, loss_fn, 200, lr=3e-3, progress=False)
    assert sum(hist.losses[-20:]) / 20 < 0.5 * F.binary_cross_entropy(torch.tensor(0.5), torch.tensor(1.0)).item()
