"""The tokenizer shared by notebooks 04 and 05 (quick mode: a few seconds of training, cached)."""
import pytest
import torch

from course_lib import data
from course_lib.recipes import shape_tokens


def test_token_data_round_trips_through_decode():
    tokens, prompts = shape_tokens.token_data(64, seed=5, mode="quick")
    assert tokens.shape == (64, shape_tokens.N_TOKENS) and tokens.dtype == torch.long
    assert int(tokens.min()) >= 0 and int(tokens.max()) < shape_tokens.CODEBOOK
    assert torch.equal(prompts, data.shapes(64, seed=5).prompts)
    images = shape_tokens.decode(tokens, mode="quick")
    assert images.shape == (64, 3, 16, 16) and float(images.min()) >= 0 and float(images.max()) <= 1
    assert torch.equal(shape_tokens.encode(images, mode="quick"), shape_tokens.encode(images, mode="quick"))
    # the decoded image is closer to its own source than to another image's
    real = data.shapes(64, seed=5).images
    own = (images - real).pow(2).mean()
    other = (images - real.roll(1, 0)).pow(2).mean()
    assert own < 0.5 * other


def test_decode_rejects_bad_tokens():
    with pytest.raises(ValueError, match=r"tokens: expected values in \[0, 255\]"):
        shape_tokens.decode(torch.full((2, 16), 256), mode="quick")
    with pytest.raises(ValueError, match=r"expected shape \(N, 16\)"):
        shape_tokens.decode(torch.zeros(2, 15, dtype=torch.long), mode="quick")
