"""The continuous tokenizer shared by notebooks 07, 09 and 10 (quick mode: trained once, cached)."""
import pytest
import torch

from course_lib import data, metrics
from course_lib.recipes import shape_latents as SL


def test_latent_data_round_trips_through_decode():
    latents, prompts = SL.latent_data(64, seed=5, mode="quick")
    assert latents.shape == (64, SL.N_TOKENS, SL.LATENT_DIM) and latents.dtype == torch.float32
    assert torch.equal(prompts, data.shapes(64, seed=5).prompts)
    images = SL.decode(latents, mode="quick")
    assert images.shape == (64, 3, 16, 16) and float(images.min()) >= 0 and float(images.max()) <= 1
    assert torch.equal(SL.encode(images, mode="quick"), SL.encode(images, mode="quick"))
    real = data.shapes(64, seed=5).images
    own = (images - real).pow(2).mean()
    other = (images - real.roll(1, 0)).pow(2).mean()
    assert own < 0.3 * other                             # each image decodes to itself, not to another
    assert metrics.psnr(images, real) > 17.0             # a learning bound: 300 steps reach ~20 dB


def test_latents_are_normalised_per_channel_on_the_training_set():
    latents, _ = SL.latent_data(SL.budget("quick").n_train, seed=SL.TRAIN_SEED, mode="quick")
    flat = latents.reshape(-1, SL.LATENT_DIM)
    assert flat.mean(0).abs().max() < 1e-3
    assert (flat.std(0) - 1).abs().max() < 1e-3


def test_raster_order_first_token_is_the_top_left_cell():
    """Token i is cell (i // 4, i % 4): an image black outside its top-left 4x4 pixels differs
    from a black image in token 0 most."""
    black = torch.zeros(1, 3, 16, 16)
    corner = black.clone()
    corner[:, 0, :4, :4] = 1.0
    diff = (SL.encode(corner, mode="quick") - SL.encode(black, mode="quick")).norm(dim=-1)[0]   # (16,)
    assert int(diff.argmax()) == 0
    assert diff[0] > 2 * diff[[5, 10, 15]].max()


def test_decoder_tolerates_latent_noise_of_the_training_size():
    latents, _ = SL.latent_data(64, seed=6, mode="quick")
    tok = SL.tokenizer("quick")
    clean = SL.decode(latents, mode="quick")
    noisy = SL.decode(latents + tok.noise * torch.randn_like(latents), mode="quick")
    far = SL.decode(latents + 3 * torch.randn_like(latents), mode="quick")
    assert (noisy - clean).pow(2).mean() < 0.1 * (far - clean).pow(2).mean()


def test_tokenizer_is_frozen_and_in_eval_mode():
    tok = SL.tokenizer("quick")
    assert not tok.training and not any(p.requires_grad for p in tok.parameters())
    assert tok.mean.shape == tok.std.shape == (SL.LATENT_DIM,)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=rf"latents: expected shape \(N, 16, {SL.LATENT_DIM}\)"):
        SL.decode(torch.zeros(2, 16, SL.LATENT_DIM + 1), mode="quick")
    with pytest.raises(TypeError, match="latents: expected a floating-point tensor"):
        SL.decode(torch.zeros(2, 16, SL.LATENT_DIM, dtype=torch.long), mode="quick")
    with pytest.raises(ValueError, match=r"images: expected shape \(N, 3, 16, 16\)"):
        SL.encode(torch.zeros(2, 3, 8, 8), mode="quick")
    with pytest.raises(ValueError, match="n: expected an int >= 1"):
        SL.latent_data(0, mode="quick")
