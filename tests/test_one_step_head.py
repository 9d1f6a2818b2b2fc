"""Notebook 11's one-step heads under notebook 09's continuous transformer (course_lib.recipes.generation_heads,
ONE_STEP: the MeanFlow head and its ablation trained with b = a only). They build and train through the
model cache under their own name, generate images with one head pass per token (head_nfe == steps),
and one_step_study lines them up with the flow and energy heads; notebook 09's cache keys do not move,
and a kind that does not exist is named. Quick mode with a budget of a few steps: plumbing, not quality
(the learning test of the head is tests/test_meanflow_head.py)."""
import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

from course_lib import cache, heads, train
from course_lib.recipes import generation_heads as recipe

TINY = dict(steps=3, n_eval=32)          # training steps of each pair, held-out prompts of evaluate
PROMPTS = torch.tensor([[0, 1, 2, 1], [3, 5, 8, 0], [1, 1, 1, 1], [2, 0, 4, 2]])


@pytest.fixture
def tiny(monkeypatch):
    """Quick mode's budget with 3 training steps; the pairs' calls of train.cached recorded (name, config)."""
    B = dataclasses.replace(recipe.budget("quick"), **TINY)
    monkeypatch.setitem(recipe.BUDGETS, "quick", B)
    asked, real = [], train.cached

    def spy(name, config, build, fit, verbose=True, *, share=True):
        if name.startswith("heads-"):                     # not the tokenizer's or the evaluator's
            asked.append((name, config))
        return real(name, config, build, fit, verbose, share=share)
    monkeypatch.setattr(train, "cached", spy)
    return B, asked


@pytest.mark.parametrize("kind", list(recipe.ONE_STEP))
def test_one_step_kinds_train_under_their_own_name_and_generate_with_one_pass(tiny, kind):
    B, asked = tiny
    pair = recipe.trained_pair(B, "raster", kind, open_place=True, progress=False)
    name, config = asked[-1]
    assert name == "heads-one-step-raster-open" == recipe.one_step_name("raster", True)
    assert config["kind"] == kind and config["open_place"] is True
    assert config["head_kwargs"] == dict(width=B.head.width, depth=B.head.depth, **recipe.ONE_STEP[kind])
    assert isinstance(pair.head, heads.MeanFlowHead) and pair.kind == kind
    assert pair.head.times["share_equal"] == recipe.ONE_STEP[kind]["share_equal"] == (0.75 if kind == "meanflow" else 1)
    assert pair.head.weighting["p"] == recipe.ONE_STEP[kind]["p"]
    assert (pair.head.token_dim, pair.head.cond_dim) == (recipe.shape_latents.LATENT_DIM, B.d_model)
    assert len(pair.history.losses) == TINY["steps"] and all(math.isfinite(v) for v in pair.history.losses)
    fresh = recipe.build(recipe.pair_budget(B), "raster", kind)    # the same seed: what training started from
    for part in ("backbone", "head"):                              # both trained (the transformer through z)
        before, after = getattr(fresh, part).state_dict(), getattr(pair, part).state_dict()
        assert any(not torch.equal(before[k].cpu(), after[k].cpu()) for k in before), f"{part} did not move"
    for steps in (1, 2):
        images, out = recipe.generate(pair, PROMPTS, B, head_steps=steps)
        assert images.shape == (4, 3, 16, 16) and torch.isfinite(images).all()
        assert out.head_nfe == steps and out.passes == 16 and out.latents.shape[:2] == (4, 16)
    row = recipe.evaluate(pair, B, open_place=True)                # no head_steps: the head's default, one pass
    assert row["head"] == kind and row["head_nfe"] == row["head_steps"] == 1 and row["passes"] == 16
    assert math.isfinite(row["frechet"]) and 0 <= row["prompt_accuracy"] <= 1 and 0 <= row["clean"] <= 1
    assert row["params_head"] > 0 and row["params_backbone"] > 0


def test_one_step_study_lines_up_every_head_on_the_same_prompts(tiny):
    B, asked = tiny
    rows = recipe.one_step_study(B, open_place=False, progress=False)
    want = [("flow", s) for s in (1, 2, 8)] + [("energy", 1)] + [(k, s) for k in ("meanflow", "meanflow_fm")
                                                                   for s in (1, 2)]
    assert [(r["head"], r["head_nfe"]) for r in rows] == want
    assert all(r["order"] == "raster" and r["open_place"] is False and math.isfinite(r["frechet"])
               and r["train_seconds"] > 0 and math.isfinite(r["final_loss"]) for r in rows)
    assert {n for n, _ in asked} == {"heads-raster-whole", "heads-one-step-raster-whole"}
    # each pair trained (or loaded) once, its rows then differ only by the head's steps
    assert len(asked) == 4


def test_unknown_kind_is_named_and_notebook_09s_kinds_stay_three():
    assert recipe.KINDS == ("mse", "flow", "energy") and tuple(heads.KINDS) == recipe.KINDS
    assert recipe.ALL_KINDS == recipe.KINDS + ("meanflow", "meanflow_fm")
    B = recipe.budget("quick")
    for call in (lambda: recipe.build(B, "raster", "meanflow2"),
                 lambda: recipe.trained_pair(B, "raster", "gaussian"),
                 lambda: recipe.pair_head_kwargs(B, "mean flow")):
        with pytest.raises(ValueError, match="kind"):
            call()
    with pytest.raises(ValueError, match="order"):
        recipe.build(B, "zigzag", "meanflow")
    with pytest.raises(ValueError, match="unknown head"):           # not a head of notebook 09's make
        heads.make("meanflow", 8, 32)


def test_notebook_09s_cache_keys_do_not_change():
    """The config of an old kind is what it was (a literal dict), and every shipped lecture pair of
    notebook 09 in data/weights/manifest.json still has the file name its config hashes to."""
    B = recipe.budget("lecture")
    assert recipe.pair_config(B, "raster", "flow", False) == dict(
        budget=recipe.pair_budget(B), order="raster", kind="flow",
        head_kwargs=dict(width=64, depth=3, default_steps=8), open_place=False, seed=0)
    assert recipe.pair_head_kwargs(B, "energy") == dict(width=64, depth=3, n_samples=8, noise_dim=16)
    assert recipe.pair_head_kwargs(B, "mse") == dict(width=64)
    assert recipe.pair_head_kwargs(B, "meanflow_fm") == dict(width=64, depth=3, p=0.5, share_equal=1.0)
    manifest = Path(recipe.__file__).resolve().parents[2] / "data" / "weights" / "manifest.json"
    if not manifest.is_file():
        pytest.skip("no shipped weights in this checkout")
    names = {recipe.pair_name(o, op): op for o, op in recipe.PAIRS}
    checked = 0
    for file, entry in json.loads(manifest.read_text())["files"].items():
        if entry.get("name") in names and entry.get("mode") == "lecture":
            s = entry["settings"]
            config = recipe.pair_config(B, s["order"], s["kind"], s["open_place"])
            assert s["head_kwargs"] == config["head_kwargs"], file
            assert cache.cache_path(entry["name"], config).stem + ".safetensors" == file
            checked += 1
    assert checked == 0 or checked == len(recipe.PAIRS) * len(recipe.KINDS)


def test_pretrained_lists_the_one_step_pairs_of_the_capstone():
    entries = {p.name: p for p in recipe.PRETRAINED}
    for name in ("heads-one-step-raster-whole", "heads-one-step-raster-open"):
        assert entries[name].notebooks == ("11",)
    assert all("11" not in p.notebooks for p in recipe.PRETRAINED if not p.name.startswith("heads-one-step"))
