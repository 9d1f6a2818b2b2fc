import math

import pytest
import torch

from course_lib import data, metrics


def test_swd_is_zero_for_identical_and_grows_with_shift():
    x = torch.randn(2000, 2, generator=torch.Generator().manual_seed(0))
    assert metrics.sliced_wasserstein(x, x) == pytest.approx(0.0, abs=1e-12)
    d1 = metrics.sliced_wasserstein(x, x + torch.tensor([0.5, 0.0]))
    d2 = metrics.sliced_wasserstein(x, x + torch.tensor([1.0, 0.0]))
    # a shift by s moves every projection by s*cos(angle): SWD = s * sqrt(E cos^2) = s / sqrt(2)
    assert d1 == pytest.approx(0.5 / math.sqrt(2), rel=0.1)
    assert d2 == pytest.approx(2 * d1, rel=1e-6)


def test_swd_separates_data_sets_beyond_the_noise_floor():
    floor = metrics.noise_floor(lambda n, seed: data.toy_2d("spirals", n, seed=seed), 4096)
    far = metrics.sliced_wasserstein(data.toy_2d("spirals", 4096, seed=0), data.toy_2d("moons", 4096, seed=0))
    assert far > 5 * floor


def test_swd_unequal_sizes_and_errors():
    x = torch.randn(1000, 3, generator=torch.Generator().manual_seed(0))
    y = torch.randn(700, 3, generator=torch.Generator().manual_seed(1))
    assert metrics.sliced_wasserstein(x, y) < 0.15
    with pytest.raises(ValueError, match=r"same dimension, got 3 and 2"):
        metrics.sliced_wasserstein(x, torch.randn(10, 2))
    with pytest.raises(ValueError, match=r"shape \(N, D\)"):
        metrics.sliced_wasserstein(torch.randn(10), x)
    with pytest.raises(TypeError, match="floating"):
        metrics.sliced_wasserstein(torch.ones(4, 2, dtype=torch.long), x[:, :2])


def test_mmd_small_for_same_large_for_different():
    a = data.toy_2d("moons", 800, seed=0)
    b = data.toy_2d("moons", 800, seed=1)
    c = data.toy_2d("8gaussians", 800, seed=0)
    assert abs(metrics.mmd(a, b)) < 0.02 < metrics.mmd(a, c)


def test_psnr_and_snr_by_hand():
    x = torch.zeros(100)
    y = x + 0.1                                       # MSE 0.01 -> PSNR 20 dB at peak 1
    assert metrics.psnr(x, y) == pytest.approx(20.0)
    s = torch.ones(100)
    assert metrics.snr_db(s, s * 0.9) == pytest.approx(20.0)  # noise 0.1 of the signal
    assert metrics.psnr(x, x) == math.inf
    with pytest.raises(ValueError, match="equal shapes"):
        metrics.snr_db(s, s[:10])
