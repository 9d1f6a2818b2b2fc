"""Notebook 03's recipe (course_lib.recipes.residual_and_bitwise_tokens): its models go through the model
cache, one entry per variant, with their training run."""
import dataclasses

import pytest
import torch

from course_lib import runtime
from course_lib.recipes import residual_and_bitwise_tokens as recipe


def _tiny():
    quick = recipe.budget("quick")
    return dataclasses.replace(quick, n_train=32, batch=4, hidden=8, bits_steps=3, video_steps=2,
                               codec=dataclasses.replace(quick.codec, clips=8, steps=2),
                               titok=dataclasses.replace(quick.titok, steps=2, tokens=(1, 2)))


def test_recipe_models_go_through_the_model_cache_with_their_history(tmp_path, monkeypatch):
    """A second call loads the first's weights (no training), gives back its loss curve and the same
    figures; each quantizer and each number of steps has its own entry; steps=0 is an error."""
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    monkeypatch.setattr(runtime, "_state", {"mode": "quick", "device": None})   # quick: never shipped weights
    B = _tiny()
    shapes = (recipe.data.shapes(32, size=recipe.SIZE, seed=0), recipe.data.shapes(8, size=recipe.SIZE, seed=1))
    first = recipe.train_image(B, "BSQ, 8 bits", shapes, progress=False)
    again = recipe.train_image(B, "BSQ, 8 bits", shapes, progress=False)
    assert not first.model.from_cache and again.model.from_cache
    assert len(first.history.losses) == 3 and again.history.losses == first.history.losses
    assert again.result["psnr"] == first.result["psnr"] and torch.equal(again.result["codes"], first.result["codes"])
    other = recipe.train_image(B, "FSQ (8, 6, 5)", shapes, progress=False)
    assert not other.model.from_cache
    assert len(list(tmp_path.glob("equal-bits-tokenizer-*.pt"))) == 2

    titok, hist, runs = recipe.train_titok(B, shapes, progress=False)
    titok2, hist2, runs2 = recipe.train_titok(B, shapes, progress=False)
    assert titok2.from_cache and hist2.losses == hist.losses and sorted(runs2) == [1, 2]
    assert all(runs2[k]["psnr"] == runs[k]["psnr"] for k in runs)

    clips = recipe.data.audio_clips(8, sample_rate=recipe.SAMPLE_RATE, seconds=0.1, seed=0)
    codec, h = recipe.train_codec(B, clips, progress=False)
    assert not codec.from_cache and len(h.losses) == 2
    assert recipe.train_codec(B, clips, progress=False)[0].from_cache
    assert not recipe.train_codec(B, clips, steps=3, progress=False)[0].from_cache     # another key
    with pytest.raises(ValueError, match="steps: expected an int >= 1, got 0"):
        recipe.train_codec(B, clips, steps=0)
    with pytest.raises(ValueError, match="quantizer: expected one of"):
        recipe.train_image(B, "VQ", shapes)


def test_pretrained_lists_every_model_the_notebook_trains():
    names = {p.name for p in recipe.PRETRAINED}
    assert names == {"audio-rvq-codec", "equal-bits-tokenizer", "titok-shapes", "video-tube-tokenizer"}
    assert all(p.notebooks == ("03",) for p in recipe.PRETRAINED)
