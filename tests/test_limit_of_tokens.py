"""Notebook 07's recipe: rounding continuous tokens to a bit budget, the best guess under the
squared error, the "one clean shape" judge, and the two experiments in quick mode."""
import pytest
import torch

from course_lib import data, evaluator
from course_lib.orders import continuous
from course_lib.recipes import limit_of_tokens as L
from course_lib.recipes import shape_latents, shape_tokens


def test_round_to_bits_uses_2_to_the_bits_equiprobable_levels():
    x = torch.randn(20000, generator=torch.Generator().manual_seed(0))
    for bits in (1, 2, 3):
        y = L.round_to_bits(x, bits)
        levels = y.unique()
        assert len(levels) == 2 ** bits
        assert torch.allclose(levels, -levels.flip(0), atol=1e-6)              # symmetric about 0
        share = torch.stack([(y == v).float().mean() for v in levels])
        assert (share - 1 / 2 ** bits).abs().max() < 0.3 / 2 ** bits               # each level used about equally
        assert torch.equal(L.round_to_bits(y, bits), y)                          # a level stays itself
        # every number went to its nearest level
        assert torch.equal((x[:, None] - levels).abs().argmin(1), (y[:, None] == levels).float().argmax(1))
    assert torch.allclose(L.round_to_bits(torch.tensor([0.1, -5.0]), 1), torch.tensor([0.6745, -0.6745]), atol=1e-4)
    with pytest.raises(ValueError, match="bits: expected an int >= 1"):
        L.round_to_bits(x, 0)


def test_best_mse_guess_minimises_the_expected_squared_error():
    g = torch.Generator().manual_seed(1)
    answers, weights = torch.randn(3, 4, 5, generator=g), torch.rand(3, 4, generator=g) + 0.1
    guess = continuous.best_mse_guess(answers, weights)
    p = weights / weights.sum(1, keepdim=True)

    def expected(y):                                                           # (3, 5) -> (3,)
        return (p * (y[:, None] - answers).pow(2).sum(-1)).sum(1)
    best = expected(guess)
    for _ in range(10):
        assert (expected(guess + 0.1 * torch.randn(3, 5, generator=g)) > best).all()
    for k in range(4):                                                         # better than any one answer
        assert (expected(answers[:, k]) > best).all()


def test_clean_shape_judge_passes_real_images_and_fails_averages():
    real = evaluator.reference(64).images
    renders, residual = L.nearest_rendering(real)
    assert renders.shape == real.shape and residual.shape == (64,)
    assert L.clean_rate(real) == 1.0
    two = data.render_prompts(torch.tensor([[0, 0, 3, 0], [0, 0, 5, 0]]))     # left and right circles
    nine = data.render_prompts(torch.tensor([[1, 2, p, 1] for p in range(9)]))
    assert L.clean_rate(two.mean(0, keepdim=True)) == 0.0                      # two-headed
    assert L.clean_rate(nine.mean(0, keepdim=True)) == 0.0                     # blurred everywhere
    assert L.clean_rate(torch.zeros(3, 3, 16, 16)) == 0.0                      # nothing
    assert L.distinct_readings(real[:1].repeat(5, 1, 1, 1)) == 1


def test_compare_compression_rows_and_bits():
    res = L.compare_compression(mode="quick", n=64, round_bits=(1, 2, 6))
    rows = {r["name"]: r for r in res["rows"]}
    per_image = shape_latents.N_TOKENS * shape_latents.LATENT_DIM
    assert rows["VQ, K = 256"]["bits"] == shape_tokens.N_TOKENS * 8 == 128
    assert rows["continuous, 2 bits/number"]["bits"] == 2 * per_image
    assert rows["continuous, float32"]["bits"] == 32 * per_image
    # more bits, better reconstructions (a coarse rounding cannot beat a fine one by much)
    assert rows["continuous, 6 bits/number"]["psnr"] > rows["continuous, 1 bit/number"]["psnr"] + 1.0
    assert rows["continuous, float32"]["psnr"] >= rows["continuous, 6 bits/number"]["psnr"] - 0.5
    assert res["images"]["VQ, K = 256"].shape == (8, 3, 16, 16)
    called = []
    L.compare_compression(mode="quick", n=8, round_bits=(2,),
                          round_fn=lambda x, b: called.append(b) or L.round_to_bits(x, b))
    assert called == [2]


def test_mse_trap_quick_mse_is_deterministic_and_gaussian_samples():
    res = L.mse_trap(mode="quick", n=32, n_show=4)
    for cond in ("prompt", "null"):
        assert set(res[cond]) == {"discrete_ce", "continuous_mse", "continuous_gaussian", "real", "vq", "latents"}
        assert res["images"][(cond, "continuous_mse")].shape == (4, 3, 16, 16)
    # the MSE head has nothing to draw: the null prompt gives one picture, whatever the seed
    mse = res["images"][("null", "continuous_mse")]
    assert torch.allclose(mse, mse[:1].expand_as(mse), atol=1e-5)
    assert res["null"]["continuous_mse"]["distinct"] == 1
    gauss = res["images"][("null", "continuous_gaussian")]
    assert (gauss - gauss[:1]).abs().amax() > 0.05                              # the Gaussian head samples
    assert res["prompt"]["real"]["clean"] == 1.0 and res["null"]["real"]["prompt_accuracy"] is None
    flat = L.trap_figures(res)
    assert flat["null_continuous_mse_distinct"] == 1 and "images" not in flat
    assert "null_real_prompt_accuracy" not in flat and "prompt_real_prompt_accuracy" in flat


def test_trained_continuous_rejects_unknown_heads():
    with pytest.raises(ValueError, match="expected one of 'mse', 'gaussian'"):
        L.trained_continuous("flow", mode="quick")
