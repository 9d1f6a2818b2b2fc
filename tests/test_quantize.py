"""Unit and learning tests of course_lib.tokens.vq and course_lib.tokens.bitwise."""
import math

import pytest
import torch

from course_lib import metrics
from course_lib.tokens import bitwise
from course_lib.tokens import vq as quantize


def test_straight_through_gradient_is_identity():
    z = torch.randn(5, 3, requires_grad=True)
    zq = torch.randn(5, 3)
    out = quantize.straight_through(z, zq)
    assert torch.equal(out, zq + 0 * z) or torch.allclose(out, zq)
    w = torch.randn(5, 3)
    (out * w).sum().backward()
    assert torch.allclose(z.grad, w)


def test_losses_are_computed_on_the_raw_code_before_ste():
    """With the losses on the STE value, the codebook would get no gradient: this test fails then."""
    torch.manual_seed(0)
    vq = quantize.VectorQuantizer(8, 4, beta=0.25, ema=False)
    z = torch.randn(32, 4, requires_grad=True)
    out = vq(z)
    out.loss.backward()
    assert vq.codebook.grad is not None and vq.codebook.grad.abs().sum() > 0
    # expected codebook gradient: d/de mean|sg z - e|^2 over assigned vectors
    codes = out.codes
    want = torch.zeros_like(vq.codebook)
    want.index_add_(0, codes, 2 * (vq.codebook[codes] - z.detach()) / z.numel())
    assert torch.allclose(vq.codebook.grad, want, atol=1e-6)
    # and the commitment gradient reaches z with weight beta
    assert torch.allclose(z.grad, 2 * 0.25 * (z.detach() - vq.codebook[codes].detach()) / z.numel(), atol=1e-6)


def test_nearest_code_is_argmin_and_fp32():
    g = torch.Generator().manual_seed(1)
    z, cb = torch.randn(50, 6, generator=g), torch.randn(10, 6, generator=g)
    assert torch.equal(quantize.nearest_code(z, cb), torch.cdist(z, cb).argmin(1))
    assert torch.equal(quantize.nearest_code(z.to(torch.bfloat16), cb.to(torch.bfloat16)),
                       quantize.nearest_code(z.to(torch.bfloat16).float(), cb.to(torch.bfloat16).float()))
    with pytest.raises(ValueError, match="codebook must have shape"):
        quantize.nearest_code(z, torch.randn(10, 5))


def test_ema_update_matches_hand_computation():
    n = torch.tensor([1.0, 2.0])
    m = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    z = torch.tensor([[1.0, 1.0], [3.0, 1.0], [0.0, 4.0]])
    codes = torch.tensor([0, 0, 1])
    d, eps = 0.9, 1e-5
    n2, m2, e = quantize.ema_update(n, m, z, codes, d, eps)
    assert torch.allclose(n2, torch.tensor([0.9 * 1 + 0.1 * 2, 0.9 * 2 + 0.1 * 1]))
    assert torch.allclose(m2, torch.tensor([[0.9 + 0.1 * 4, 0.1 * 2], [0.0, 1.8 + 0.4]]))
    total = n2.sum()
    smoothed = (n2 + eps) / (total + 2 * eps) * total
    assert torch.allclose(e, m2 / smoothed[:, None])


def test_ema_vq_has_buffer_codebook_and_beta_only_loss():
    vq = quantize.VectorQuantizer(16, 4, ema=True)
    assert "codebook" not in dict(vq.named_parameters())
    z = torch.randn(64, 4)
    out = vq(z)
    assert math.isclose(out.loss.item(), 0.25 * out.stats.terms["commitment"], rel_tol=1e-5)


def test_kmeans_init_and_dead_code_restart_raise_usage():
    torch.manual_seed(0)
    z = torch.randn(512, 2) * 0.1 + 5.0         # far from the N(0, 1) initial codebook
    plain = quantize.VectorQuantizer(32, 2, ema=True)
    fixed = quantize.VectorQuantizer(32, 2, ema=True, kmeans_init=True, dead_threshold=1.0)
    for _ in range(20):
        a, b = plain(z), fixed(z)
    assert a.stats.usage < 0.2
    assert b.stats.usage > 0.8 and b.stats.perplexity > 5 * a.stats.perplexity
    assert b.stats.terms["restarted"] >= 0 and "restarted" not in a.stats.terms


def test_perplexity_and_usage():
    assert math.isclose(metrics.perplexity(torch.arange(8), 8), 8.0, rel_tol=1e-6)
    assert math.isclose(metrics.perplexity(torch.zeros(10, dtype=torch.long), 8), 1.0)
    assert metrics.usage(torch.tensor([0, 0, 3]), 4) == 0.5


def test_vq_learns_a_mixture():
    """Codebook-loss VQ (learned codebook) fits 4 clusters within 200 steps."""
    torch.manual_seed(0)
    centres = torch.tensor([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.0], [0.0, -2.0]])
    vq = quantize.VectorQuantizer(4, 2, kmeans_init=True)
    opt = torch.optim.Adam(vq.parameters(), lr=0.05)
    for _ in range(200):
        z = centres[torch.randint(4, (256,))] + 0.1 * torch.randn(256, 2)
        out = vq(z)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    err = (out.z_q - z).pow(2).sum(1).mean().item()
    assert err < 0.05, err


def test_rvq_error_non_increasing_with_depth():
    torch.manual_seed(0)
    rvq = quantize.ResidualVQ(6, 32, 4, ema=True, kmeans_init=True)
    z = torch.randn(8, 64, 4)
    for _ in range(5):
        rvq(z)
    rvq.eval()
    errs = [(rvq(z, n_levels=n).z_q - z).pow(2).mean().item() for n in range(1, 7)]
    assert all(b <= a + 1e-6 for a, b in zip(errs, errs[1:])), errs
    assert errs[-1] < 0.5 * errs[0]
    codes = rvq(z).codes
    assert codes.shape == (8, 64, 6)
    assert torch.allclose(rvq.decode_codes(codes), rvq(z).z_q, atol=1e-5)


def test_rvq_gradient_reaches_encoder_through_every_level():
    """Every level's commitment loss reaches z (the residual subtracts a detached code), and every
    level's codebook gets its codebook-loss gradient."""
    torch.manual_seed(0)
    L, beta = 4, 0.25
    rvq = quantize.ResidualVQ(L, 16, 3, beta=beta)                  # learned codebooks, no dropout
    z = torch.randn(32, 10, 3, requires_grad=True)
    out = rvq(z)
    out.loss.backward()
    want, r = torch.zeros_like(z), z.detach()
    for vq in rvq.levels:                                            # d/dz of beta |r_i - sg q_i|^2
        q = vq.codebook.detach()[quantize.nearest_code(r, vq.codebook)]
        want += 2 * beta * (r - q) / r.numel()
        r = r - q
    assert torch.allclose(z.grad, want, atol=1e-6)
    assert all(vq.codebook.grad is not None and vq.codebook.grad.abs().sum() > 0 for vq in rvq.levels)
    z.grad = None
    rvq(z).z_q.sum().backward()                                      # straight-through on the sum
    assert torch.allclose(z.grad, torch.ones_like(z))
    with pytest.raises(ValueError, match="n_levels must be in 1..4"):
        rvq(z, n_levels=5)


def test_rvq_quantizer_dropout_varies_the_levels_per_example():
    torch.manual_seed(0)
    L = 4
    rvq = quantize.ResidualVQ(L, 16, 3, quantizer_dropout=True)       # learned codebooks: forward changes none
    z = torch.randn(64, 5, 3)
    with torch.no_grad():
        train_out = rvq(z)                                           # training mode: n ~ U{1..4} per example
        rvq.eval()
        fixed = torch.stack([rvq(z, n_levels=n).z_q for n in range(1, L + 1)])    # (L, 64, 5, 3)
    err = (fixed - train_out.z_q[None]).abs().amax((2, 3))            # (L, 64)
    assert (err.min(0).values < 1e-6).all()                           # each example = one prefix of levels
    used = err.argmin(0) + 1                                          # (64,) levels each example used
    assert set(used.tolist()) == set(range(1, L + 1))                 # all four counts occur in 64 draws
    rvq.train()
    with torch.no_grad():
        again = rvq(z).z_q
    assert not torch.allclose(again, train_out.z_q)                   # a new draw per call


def test_every_quantizer_reports_the_same_stats_fields():
    z = torch.randn(4, 16, 8)
    rvq = quantize.ResidualVQ(3, 16, 8)
    for q in [quantize.VectorQuantizer(16, 8), rvq, bitwise.FSQ([4, 4, 2, 2, 2, 2, 2, 2]),
              bitwise.LFQ(8), bitwise.BSQ(8)]:
        st = q(z).stats
        assert isinstance(st, quantize.CodeStats), type(q).__name__
        assert 1.0 <= st.perplexity <= q.codebook_size and 0.0 < st.usage <= 1.0, (type(q).__name__, st)
        assert {"perplexity", "usage"} <= set(st.as_dict())
    st = rvq(z).stats
    assert len(st.level_perplexity) == len(st.level_usage) == 3
    assert math.isclose(st.perplexity, sum(st.level_perplexity) / 3)
    assert {"perplexity_0", "perplexity_1", "perplexity_2"} <= set(st.as_dict())
    big = bitwise.LFQ(24)(torch.randn(10, 24)).stats                  # 2^24 codes: no histogram
    assert math.isnan(big.perplexity) and "codebook_entropy" in big.terms


def test_dead_code_threshold_is_a_fraction_of_the_mean_count():
    assert math.isclose(quantize.dead_code_threshold(64 * 16, 64), 0.1 * 16)
    q = quantize.ema_vq(256, 8, vectors_per_batch=2048)
    assert q.ema and not bool(q.initted) and math.isclose(q.dead_threshold, 0.1 * 2048 / 256)
    with pytest.raises(ValueError, match="vectors_per_batch"):
        quantize.dead_code_threshold(0, 64)


def test_fsq_levels_and_indices():
    fsq = bitwise.FSQ([5, 4, 3])
    z = torch.randn(100, 3) * 3
    out = fsq(z)
    assert out.codes.min() >= 0 and out.codes.max() < 60
    half = torch.tensor([2.0, 2.0, 1.0])
    ints = out.z_q * half
    assert torch.allclose(ints, ints.round(), atol=1e-5)                 # an integer grid
    assert set(ints[:, 0].round().tolist()) <= {-2, -1, 0, 1, 2}          # odd L = 5: symmetric
    assert set(ints[:, 1].round().tolist()) <= {-2, -1, 0, 1}             # even L = 4: shifted by half
    assert set(ints[:, 2].round().tolist()) <= {-1, 0, 1}
    zz = z.clone().requires_grad_(True)
    fsq(zz).z_q.sum().backward()
    assert zz.grad.abs().sum() > 0


def test_bsq_codes_on_unit_sphere_and_lfq_indices():
    z = torch.randn(50, 9)
    out = bitwise.BSQ(9)(z)
    assert torch.allclose(out.z_q.norm(dim=-1), torch.ones(50), atol=1e-5)
    assert torch.allclose(out.z_q.abs(), torch.full_like(out.z_q, 1 / 3), atol=1e-6)
    lfq = bitwise.LFQ(9)(z)
    bits = bitwise.index_to_bits(lfq.codes, 9)
    assert torch.equal(bits.bool(), z > 0)
    assert torch.equal(bitwise.bits_to_index(bits), lfq.codes)


def test_bad_inputs_raise_clear_errors():
    vq = quantize.VectorQuantizer(8, 4)
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        vq(torch.randn(3, 5))
    with pytest.raises(TypeError, match="floating"):
        vq(torch.ones(3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="levels"):
        bitwise.FSQ([1, 4])


def test_codebook_entropy_sees_correlated_bits_and_matches_exact():
    # 4 bits that are all equal: every bit is balanced, yet only 2 of 16 codes are used
    bit = (torch.rand(4000) < 0.5).float()
    logits = (bit[:, None].expand(-1, 4) * 2 - 1) * 20                   # (N, 4), near-certain bits
    _, per_bit = bitwise.bitwise_entropy_loss(logits, group_size=1)
    h_sample, exact = bitwise.bitwise_entropy_loss(logits, group_size=4)
    assert abs(per_bit.item() - 4 * math.log(2)) < 1e-2                   # the per-bit form is fooled
    assert abs(exact.item() - math.log(2)) < 1e-2                         # the true entropy: 2 codes
    assert h_sample.item() < 1e-3
    # the grouped entropy equals the entropy of the explicit 2^d distribution
    logits = torch.randn(64, 6)
    p = torch.sigmoid(logits)
    bits = bitwise.index_to_bits(torch.arange(64), 6).float()            # (64 codes, 6)
    q = (p[:, None] * bits + (1 - p[:, None]) * (1 - bits)).prod(-1)      # (N, 64 codes)
    avg = q.mean(0)
    _, h = bitwise.bitwise_entropy_loss(logits, group_size=6)
    assert abs(h.item() + (avg * avg.log()).sum().item()) < 1e-4
    with pytest.raises(ValueError, match="group_size"):
        bitwise.bitwise_entropy_loss(logits, group_size=0)


def test_rvq_no_quantization_rate_bypasses_examples():
    torch.manual_seed(0)
    rvq = quantize.ResidualVQ(2, 8, 3, quantizer_dropout=True, no_quantization_rate=0.5, ema=True)
    z = torch.randn(64, 5, 3)
    out = rvq(z)
    exact = (out.z_q - z).abs().amax((1, 2)) == 0                         # (64,) bypassed examples
    assert 10 < int(exact.sum()) < 54
    rvq.eval()
    assert not ((rvq(z).z_q - z).abs().amax((1, 2)) == 0).any()          # never at evaluation
    with pytest.raises(ValueError, match="no_quantization_rate"):
        quantize.ResidualVQ(2, 8, 3, no_quantization_rate=1.0)


def test_vq_mask_of_the_wrong_shape_or_type_names_mask():
    vq = quantize.VectorQuantizer(8, 2)
    z = torch.randn(4, 3, 2)
    with pytest.raises(ValueError, match=r"^mask: expected a bool tensor of shape \(4, 3\) .* got shape \(4,\)"):
        vq(z, mask=torch.ones(4, dtype=torch.bool))
    with pytest.raises(TypeError, match=r"^mask: expected a bool tensor of shape \(4, 3\) .* got dtype torch.int64"):
        vq(z, mask=torch.ones(4, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"^mask: expected a bool tensor of shape \(12,\)"):
        quantize.vq_losses(z.reshape(12, 2), z.reshape(12, 2), torch.ones(6, dtype=torch.bool))
    assert vq(z, mask=torch.rand(4, 3) < 0.5).z_q.shape == z.shape


def test_fsq_with_two_levels_splits_the_inputs_evenly():
    """L = 2 without the even-L shift: the boundary at z = 0 (with the shift tan(1 / 0.999) ~ 1.56
    of the paper's code it sits at z ~ -1.56 and 94% of the inputs take one level)."""
    z = torch.randn(20000, 3, generator=torch.Generator().manual_seed(0))
    out = bitwise.FSQ([2, 2, 3])(z)
    ints = torch.stack([out.codes % 2, out.codes // 2 % 2], 1)              # the two binary channels
    assert torch.equal(ints.bool(), z[:, :2] > 0)
    frac = ints.float().mean(0)
    assert ((frac > 0.48) & (frac < 0.52)).all(), frac
    assert set(out.z_q[:, 0].tolist()) == {-1.0, 0.0}
    # the other even and odd levels keep the shifted bound of the paper's code
    half_l = 3 * 0.999 / 2
    want = torch.tanh(z[:, :1] + math.tan(0.5 / half_l)) * half_l - 0.5
    assert torch.allclose(bitwise.FSQ([4])(z[:, :1]).z_q * 2, want.round())


def test_fsq_matches_the_papers_code():
    """FSQ paper appendix A.1 (google-research/google-research, fsq/fsq.ipynb): half_l = (L-1)(1-eps)/2,
    shift = tan(offset / half_l), codes in mixed radix with basis cumprod([1] + levels[:-1]). Computed
    here in float64 the way that code does; about 1% of these vectors fall on another code with
    lucidrains' (1+eps)/atanh bound, so the comparison pins the official one."""
    levels = [8, 5, 5, 5, 4, 3]
    z = torch.randn(20000, len(levels), generator=torch.Generator().manual_seed(1)) * 2
    L = torch.tensor(levels, dtype=torch.float64)
    half_l = (L - 1) * (1 - 1e-3) / 2
    offset = torch.where(L % 2 == 1, 0.0, 0.5)
    zhat = torch.round(torch.tanh(z.double() + torch.tan(offset / half_l)) * half_l - offset) / (L // 2)
    basis = torch.cumprod(torch.tensor([1.0] + levels[:-1], dtype=torch.float64), 0)
    index = ((zhat * (L // 2) + L // 2) * basis).sum(-1).long()
    out = bitwise.FSQ(levels)(z)
    assert torch.equal(out.codes, index)
    assert torch.allclose(out.z_q.double(), zhat, atol=1e-6)


def test_bsq_maps_zero_to_minus_one_and_divides_the_entropy_by_the_inverse_temperature():
    z = torch.tensor([[0.0, 1.0, -2.0, 0.5]])
    u_hat = bitwise.bsq_quantize(z)
    assert torch.equal(torch.sign(u_hat), torch.tensor([[-1.0, 1.0, -1.0, 1.0]]))     # sign(0) = -1
    assert torch.allclose(u_hat.norm(dim=-1), torch.ones(1))
    assert int(bitwise.BSQ(4)(z).codes) == 0b1010                                  # bit 0 for the zero
    # loss = beta * commitment + zeta * (H_sample - gamma H_codebook) / inv_temperature (bsq-vit)
    zz = torch.randn(64, 6, generator=torch.Generator().manual_seed(1))
    q = bitwise.BSQ(6, beta=0.3, entropy_weight=0.7, gamma=0.9, inv_temperature=5.0)
    u = zz / zz.norm(dim=-1, keepdim=True)
    h_s, h_b = bitwise.bitwise_entropy_loss(4 * u / math.sqrt(6) * 5.0)
    commit = (u - bitwise.bsq_quantize(zz)).pow(2).sum(-1).mean()
    want = 0.7 * (h_s - 0.9 * h_b) / 5.0 + 0.3 * commit
    assert q(zz).loss.item() == pytest.approx(want.item(), rel=1e-6)
    # the defaults keep the effective entropy weight of 0.1 (zeta 1.0 / inv_temperature 10)
    d = bitwise.BSQ(6)
    h_s, h_b = bitwise.bitwise_entropy_loss(4 * u / math.sqrt(6) * 10.0)
    assert d(zz).loss.item() == pytest.approx(0.1 * (h_s - h_b).item(), rel=1e-6)


def test_bsq_straight_through_is_on_the_sign_as_in_bsq_vit():
    """bsq-vit (transcoder/models/quantizer/bsq.py): zq = (u + sg(sign(u) - u)) * (1 / sqrt(d)), so
    the gradient w.r.t. u is 1/sqrt(d) (not the identity), computed here the way that code does."""
    d = 6
    z = torch.randn(5, d, generator=torch.Generator().manual_seed(2))
    w = torch.randn(5, d, generator=torch.Generator().manual_seed(3))
    z1, z2 = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
    u = torch.nn.functional.normalize(z1, dim=-1)
    want = (u + (torch.where(u > 0, 1.0, -1.0) - u).detach()) * (1 / d ** 0.5)
    (want * w).sum().backward()
    got = bitwise.bsq_quantize(z2)
    (got * w).sum().backward()
    assert torch.allclose(got, want) and torch.allclose(z2.grad, z1.grad, atol=1e-6)
    # Infinity's quantize_new (multiscale_bsq.py): u + sg(sign(u) / sqrt(d) - u), the identity gradient
    z3, z4 = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
    u = torch.nn.functional.normalize(z3, dim=-1)
    want = u + (torch.where(u > 0, 1.0, -1.0) / d ** 0.5 - u).detach()
    (want * w).sum().backward()
    got = bitwise.bsq_quantize(z4, "code")
    (got * w).sum().backward()
    assert torch.allclose(got, want) and torch.allclose(z4.grad, z3.grad, atol=1e-6)
    assert bitwise.BSQ(d, ste="code").ste == "code"
    with pytest.raises(ValueError, match="^ste: expected one of 'sign', 'code'"):
        bitwise.BSQ(d, ste="u")


def test_dead_code_restarts_follow_the_seed_and_leave_the_global_rng_alone():
    def restarted(seed):
        vq = quantize.VectorQuantizer(16, 2, dead_threshold=5.0, seed=seed).train()
        z = torch.randn(256, 2, generator=torch.Generator().manual_seed(3)) + 4.0
        vq(z)
        return vq.codebook.detach().clone(), vq.restarts
    torch.manual_seed(0)
    state = torch.get_rng_state()
    a, n = restarted(0)
    assert torch.equal(torch.get_rng_state(), state), "restarts draw from their own generator"
    torch.manual_seed(123)                                                  # another global state
    b, _ = restarted(0)
    assert torch.equal(a, b) and n == 1
    c, _ = restarted(1)
    assert not torch.equal(a, c)


def test_first_step_without_kmeans_restarts_the_unused_codes_from_the_batch():
    """Documented: counts start at 1, so with a threshold above it the first training step
    replaces every code the batch does not use enough with a batch vector (EnCodec's behaviour)."""
    vq = quantize.VectorQuantizer(16, 2, dead_threshold=quantize.dead_code_threshold(1024, 16)).train()
    z = torch.randn(1024, 2, generator=torch.Generator().manual_seed(0)) * 0.1 + 5.0   # far from N(0, 1)
    out = vq(z)
    assert out.stats.terms["restarted"] >= 15
    batch_rows = (vq.codebook.detach()[:, None] == z[None]).all(-1).any(1)            # (16,) from the batch
    assert int(batch_rows.sum()) >= 15
