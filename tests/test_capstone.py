"""Notebook 11's frontier recipe (course_lib.recipes.capstone): the registry samples images, the
measurement returns its figures, the sequential counts are the ones the samplers run, the reading
picks its words from the numbers, and bad input gets a clear error.

Quick mode. The sampling tests load (or, on a first run, train into the disk cache) the cheap
quick-mode models: the shapes evaluator, the continuous tokenizer, notebook 10's latent flow matching
and MeanFlow, and notebook 09's raster energy pair; about 60 s on 2 busy cores with an empty cache,
a few seconds once cached. The other tests build untrained models or use made-up result dicts."""
import dataclasses

import matplotlib.pyplot as plt
import pytest
import torch

from course_lib import data, evaluator, runtime
from course_lib.heads import backbone
from course_lib.recipes import (capstone, chaining_tokens, generation_heads, limit_of_tokens, maskgit,
                                next_scale)
from course_lib.recipes import capstone_figures as cf

CHEAP = ("flow matching in latents, 2 steps", "MeanFlow in latents, 1 step", "raster + energy head")


@pytest.fixture
def quick(monkeypatch):
    monkeypatch.setitem(runtime._state, "mode", "quick")
    return "quick"


# ----------------------------------------------------------------------------- the registry

def test_registry_names_are_unique_and_complete():
    names = [g.name for g in capstone.GENERATORS]
    assert len(names) == len(set(names))
    for g in capstone.GENERATORS:
        assert g.family in cf.FAMILIES, g.family
        assert g.tokenizer in capstone.TOKENIZERS, g.tokenizer
        assert g.prompts in ("whole", "both")
    # every notebook's generators are there, the one-step head and its ablation too
    for name in ("GPT, raster order", "MaskGIT, 1 step", "MaskGIT, 16 steps", "VAR", "Infinity, self-correction",
                 "continuous chain + gaussian head (07)", "masked + flow head, 8 steps",
                 "flow matching in latents, 32 steps", "MeanFlow in latents, 2 steps",
                 "raster + MeanFlow head, 1 pass", "raster + b = a ablation, 1 pass"):
        capstone.find(name)
    with pytest.raises(ValueError, match="expected one of"):
        capstone.find("DALL-E")


def test_open_frontier_holds_only_models_trained_with_the_place_open(quick):
    opened = capstone.generators(open_place=True)
    assert opened and all(g.prompts == "both" for g in opened)
    names = {g.name for g in opened}
    assert "GPT, raster order" in names and "raster + flow head, 8 steps" in names
    assert not names & {"VAR", "continuous chain + mse head (07)", "MeanFlow in latents, 1 step"}
    with pytest.raises(ValueError, match="whole prompts only"):
        capstone.load(capstone.find("VAR"), "quick", open_place=True)


@pytest.mark.parametrize("name", CHEAP)
def test_sample_returns_images_in_range(quick, name):
    gen = capstone.find(name)
    prompts = evaluator.reference(6).prompts
    images = gen.sample(capstone.load(gen, "quick"), prompts, 0, "quick")
    assert tuple(images.shape) == (6, 3, 16, 16)
    assert images.min() >= 0 and images.max() <= 1
    again = gen.sample(capstone.load(gen, "quick"), prompts, 0, "quick")
    assert torch.equal(images, again), "the same seed must give the same images"


def test_open_pair_samples_prompts_with_the_place_left_open(quick):
    gen = capstone.find("raster + energy head")
    prompts = generation_heads.leave_place_open(evaluator.reference(4).prompts)
    images = gen.sample(capstone.load(gen, "quick", open_place=True), prompts, 1, "quick")
    assert tuple(images.shape) == (4, 3, 16, 16) and 0 <= images.min() and images.max() <= 1


def test_measure_returns_every_figure(quick, monkeypatch):
    monkeypatch.setitem(capstone.BUDGETS, "quick", dataclasses.replace(capstone.BUDGETS["quick"], n_alone=2))
    gen = capstone.find("flow matching in latents, 2 steps")
    ref = evaluator.reference(12)
    row = capstone.measure(gen, "quick", ref=ref, seeds=(0, 1))
    for key in ("prompt_accuracy", "prompt_accuracy_std", "frechet", "frechet_std", "clean", "sequential_evaluations",
                "seconds_per_image_batch", "seconds_per_image_alone", "params", "params_generator", "name", "family",
                "tokenizer", "n", "seeds"):
        assert key in row, key
    assert 0 <= row["prompt_accuracy"] <= 1 and 0 <= row["clean"] <= 1 and row["frechet"] > 0
    assert len(row["frechet_per_seed"]) == 2 and row["frechet_std"] >= 0
    assert row["sequential_evaluations"] == 2 and row["n"] == 12 and row["seeds"] == [0, 1]
    assert row["seconds_per_image_batch"] > 0 and row["seconds_per_image_alone"] > 0
    assert row["params"] == row["params_generator"] + capstone.decoder_params("continuous", "quick")
    assert row["params_generator"] > 0
    with pytest.raises(ValueError, match="at least one seed"):
        capstone.measure(gen, "quick", ref=ref, seeds=())


def test_real_draw_is_the_floors_draw(quick):
    ref = evaluator.reference(32)
    assert capstone.real_draw(ref).shape == ref.images.shape
    whole = evaluator.frechet(capstone.real_draw(ref), ref.images)
    assert whole == pytest.approx(evaluator.frechet_floor(32), rel=1e-5)
    opened = evaluator.frechet(capstone.real_draw(ref, open_place=True), ref.images)
    assert opened == pytest.approx(generation_heads.open_floor(32), rel=1e-5)


# ----------------------------------------------------------------------------- sequential evaluations

def test_sequential_counts_of_known_cases(quick):
    B = generation_heads.budget("quick")
    seq = {name: capstone.find(name).sequential for name in (
        "GPT, raster order", "MaskGIT, 1 step", "MaskGIT, 4 steps", "MaskGIT, 16 steps", "VAR", "Infinity",
        "continuous chain + mse head (07)", "raster + flow head, 8 steps", "raster + energy head",
        "masked + flow head, 8 steps", "flow matching in latents, 32 steps", "MeanFlow in latents, 1 step",
        "raster + MeanFlow head, 1 pass", "raster + MeanFlow head, 2 passes")}
    assert seq["GPT, raster order"](chaining_tokens.build(chaining_tokens.budget("quick"))) == 16
    assert [seq[f"MaskGIT, {k} step{'s' * (k > 1)}"](None) for k in (1, 4, 16)] == [1, 4, 16]
    assert seq["VAR"](None) == seq["Infinity"](None) == len(next_scale.SCALES) == 4
    assert seq["continuous chain + mse head (07)"](limit_of_tokens.build("mse", limit_of_tokens.budget("quick"))) == 32

    def pair(order, kind):
        p = generation_heads.build(B, order, kind)
        p.capstone_mode = "quick"
        return p
    assert seq["raster + flow head, 8 steps"](pair("raster", "flow")) == 16 * (1 + B.head.flow_steps)
    assert seq["raster + energy head"](pair("raster", "energy")) == 16 * 2
    assert seq["masked + flow head, 8 steps"](pair("masked", "flow")) == B.mar_steps * (1 + B.head.flow_steps)
    assert seq["flow matching in latents, 32 steps"](None) == 32 and seq["MeanFlow in latents, 1 step"](None) == 1
    assert seq["raster + MeanFlow head, 1 pass"](pair("raster", "meanflow")) == 32
    assert seq["raster + MeanFlow head, 2 passes"](pair("raster", "meanflow")) == 48


def test_sequential_count_is_what_the_sampler_runs(quick):
    """An untrained masked pair, generated with the notebook's settings: passes x (1 + head passes)."""
    B = generation_heads.budget("quick")
    p = generation_heads.build(B, "masked", "flow")
    p.capstone_mode = "quick"
    out = backbone.generate(p.backbone, p.head, evaluator.reference(3).prompts, steps=B.mar_steps,
                            generator=torch.Generator().manual_seed(0))
    assert capstone.find("masked + flow head, 8 steps").sequential(p) == out.passes * (1 + out.head_nfe)


# ----------------------------------------------------------------------------- reading the numbers

def _row(name, frechet, accuracy=0.9, clean=0.9, seq=16, alone=0.01, params=1000, tokenizer="continuous",
         family="heads, raster (09)"):
    return dict(name=name, short=name[:4], family=family, tokenizer=tokenizer, prompt_accuracy=accuracy,
                prompt_accuracy_std=0.01, frechet=frechet, frechet_std=1.0, clean=clean, sequential_evaluations=seq,
                seconds_per_image_batch=alone / 10, seconds_per_image_alone=alone, params=params)


def _result(mse, flow, ceiling_vq=150.0, ceiling_cont=110.0):
    rows = [_row("raster + MSE head", mse, seq=32, alone=0.03), _row("raster + flow head, 8 steps", flow, seq=144,
                                                                      alone=0.13),
            _row("raster + energy head", 300.0, seq=32, alone=0.04),
            _row("GPT, raster order", 250.0, seq=16, alone=0.04, tokenizer="VQ", family="token GPT (04)"),
            _row("raster + MeanFlow head, 1 pass", 200.0, seq=32, alone=0.03, family="one-step head (11)"),
            _row("raster + b = a ablation, 1 pass", 400.0, seq=32, alone=0.03, family="one-step head (11)")]
    ceil = {"real images": dict(prompt_accuracy=1.0, frechet=90.0, clean=1.0),
            "VQ": dict(prompt_accuracy=0.98, frechet=ceiling_vq, clean=0.98),
            "continuous": dict(prompt_accuracy=1.0, frechet=ceiling_cont, clean=1.0)}
    return dict(rows=rows, floor=90.0, ceilings=ceil, n_eval=64, seeds=[0])


def _sentence(lines, start):
    found = [s for s in lines if s.startswith(start)]
    assert len(found) == 1, (start, lines)
    return found[0]


def test_reading_picks_its_words_from_the_numbers():
    good = _sentence(capstone.reading(_result(mse=600.0, flow=150.0)), "What a head buys (the whole")
    assert "the flow head is 4.0x lower (better) than the MSE head" in good
    bad = _sentence(capstone.reading(_result(mse=150.0, flow=600.0)), "What a head buys (the whole")
    assert "the flow head is 4.0x higher (worse) than the MSE head" in bad
    same = _sentence(capstone.reading(_result(mse=150.0, flow=151.0)), "What a head buys (the whole")
    assert "about the same" in same
    limit = _sentence(capstone.reading(_result(600, 150, ceiling_vq=300.0, ceiling_cont=100.0)), "Where the discrete")
    assert "the VQ ceiling is 3.0x higher (worse)" in limit
    limit = _sentence(capstone.reading(_result(600, 150, ceiling_vq=100.0, ceiling_cont=300.0)), "Where the discrete")
    assert "the VQ ceiling is 3.0x lower (better)" in limit
    one = _sentence(capstone.reading(_result(600, 150)), "What one step gives up (the whole")
    assert "200, 1.3x higher (worse) than the flow head's 150" in one and "the one-pass Fréchet is 2.0x lower (better) than without it" in one
    one = _sentence(capstone.reading(_result(600, 100)), "What one step gives up (the whole")
    assert "200, 2.0x higher (worse) than the flow head's 100" in one
    # the open frontier's sentences come only with an open result
    assert not [s for s in capstone.reading(_result(600, 150)) if "place left open" in s]
    both = capstone.reading(_result(600, 150), _result(100, 900))
    assert "the flow head is 9.0x higher (worse)" in _sentence(both, "What a head buys (the place left open")


def test_reading_the_costs():
    result = _result(600, 150)
    for r in result["rows"]:                       # time in step with the sequential evaluations, not the size
        r["seconds_per_image_alone"], r["params"] = 1e-3 * r["sequential_evaluations"] + 1e-5 * len(r["name"]), 1000
    lines = capstone.reading(result)
    costs = _sentence(lines, "Chaining costs")
    assert "token GPT 16" in costs and "heads, raster 32-144" in costs
    alone = _sentence(lines, "One image alone")
    assert "to 144.3 ms (raster + flow head, 8 steps)" in alone
    assert "sequential evaluations closely" in alone and "parameters hardly (0.00)" in alone
    for r in result["rows"]:                       # now the other way round
        r["seconds_per_image_alone"] = 1.0 / r["sequential_evaluations"] + 1e-5 * len(r["name"])
    alone = _sentence(capstone.reading(result), "One image alone")
    assert "sequential evaluations hardly" in alone


def test_rank_correlation():
    assert cf.rank_correlation([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert cf.rank_correlation([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert cf.rank_correlation([1, 1, 2, 3], [5, 5, 6, 7]) == pytest.approx(1.0)      # ties share their rank
    assert cf.rank_correlation([1, 2, 3], [2, 2, 2]) == 0.0
    with pytest.raises(ValueError, match="same length"):
        cf.rank_correlation([1, 2, 3], [1, 2])


def test_figure_and_table_from_result_dicts():
    whole, opened = _result(600, 150), _result(900, 300)
    fig = capstone.frontier_figure(whole, opened)
    assert len(fig.axes) == 12
    assert fig.axes[0].get_yscale() == "log" and fig.axes[0].get_xscale() == "log"
    plt.close(fig)
    fig = capstone.frontier_figure(whole)
    assert len(fig.axes) == 6
    plt.close(fig)
    table = capstone.frontier_table(whole).splitlines()
    assert len(table) == 2 + len(whole["rows"]) + len(whole["ceilings"])
    assert table[2].startswith("| raster + MSE head | continuous | 0.900 ± 0.010 | 600.0 ± 1.0 |")
    with pytest.raises(TypeError, match="capstone.frontier"):
        capstone.frontier_figure([1, 2])


def test_sample_grid_figure():
    fig = capstone.sample_grid_figure({"a": torch.rand(4, 3, 16, 16), "b": torch.rand(4, 3, 16, 16)}, "a prompt")
    assert fig._suptitle.get_text() == "a prompt"
    plt.close(fig)
    with pytest.raises(TypeError, match="non-empty dict"):
        capstone.sample_grid_figure({})


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("prompt, error, match", [
    ([0, 1, 2], ValueError, "expected 4 integers"),
    ([0, 1, 2, 1, 0], ValueError, "expected 4 integers"),
    ([4, 0, 0, 0], ValueError, r"prompt\[0\] \(shape\): expected an int in \[0, 3\], got 4"),
    ([0, 0, 9, 0], ValueError, r"prompt\[2\] \(position\): expected an int in \[0, 8\], got 9"),
    ([0, -1, 0, 0], ValueError, r"prompt\[1\] \(color\)"),
    ([0, 0, 0, 1.0], TypeError, r"prompt\[3\] \(size\): expected an int"),
    (torch.zeros(1, 4, dtype=torch.long), ValueError, "1-D"),
    (torch.zeros(4), TypeError, "integer"),
    ("red circle", ValueError, "expected 4 integers"),
])
def test_samples_for_rejects_bad_prompts(prompt, error, match):
    with pytest.raises(error, match=match):
        capstone.samples_for(prompt, mode="quick")


def test_check_prompt_leaves_the_place_open():
    assert capstone.check_prompt([1, 2, 3, 0]).tolist() == [[1, 2, 3, 0]]
    null = data.N_VALUES[generation_heads.PLACE]
    assert capstone.check_prompt(torch.tensor([1, 2, 3, 0]), open_place=True).tolist() == [[1, 2, null, 0]]
    assert capstone.check_prompt([1, 2, null, 0], open_place=True).tolist() == [[1, 2, null, 0]]
    with pytest.raises(ValueError, match="position"):
        capstone.check_prompt([1, 2, null, 0])
    with pytest.raises(ValueError, match="positive|>= 1"):
        capstone.samples_for([1, 2, 3, 0], mode="quick", n=0)


def test_budget_and_decoder_params(quick):
    assert capstone.budget().mode == "quick" and capstone.budget("lecture").seeds == (0, 1, 2)
    with pytest.raises(ValueError, match="tokenizer"):
        capstone.decoder_params("pixels")
    assert maskgit.STEPS == (1, 2, 4, 8, 16)


def test_ceilings_score_each_tokenizers_reconstruction(quick):
    ceil = capstone.ceilings("quick", n=16)
    assert set(ceil) == {"real images", *capstone.TOKENIZERS}
    for name, s in ceil.items():
        assert 0 <= s["prompt_accuracy"] <= 1 and 0 <= s["clean"] <= 1 and s["frechet"] > 0, name
    assert ceil["real images"]["frechet"] == pytest.approx(evaluator.frechet_floor(16), rel=1e-5)
    assert ceil["real images"]["prompt_accuracy"] > 0.9
    images = capstone.real_draw(evaluator.reference(4))
    assert capstone.reconstruct("VAR", images, "quick").shape == images.shape
    with pytest.raises(ValueError, match="tokenizer"):
        capstone.reconstruct("JPEG", images, "quick")


def test_reconstruct_refuses_images_the_tokenizers_cannot_take():
    with pytest.raises(ValueError, match=r"images: expected shape \(N, 3, 16, 16\), got \(2, 3, 8, 8\)"):
        capstone.reconstruct("VQ", torch.rand(2, 3, 8, 8), "quick")
    with pytest.raises(ValueError, match="tokenizer: expected one of"):
        capstone.reconstruct("FSQ", torch.rand(2, 3, 16, 16), "quick")
