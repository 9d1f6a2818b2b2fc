"""python -m course_lib.pretrain: every registered model is made by its recipe's own function through
the model cache, written once with its manifest entry, listed per notebook, and bit-identical when
made twice with the same seed, mode and thread count. A toy model stands in for the course's (whose
quick budgets take tens of seconds each); no test needs shipped weights."""
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from course_lib import cache, pretrain, runtime, train, weights

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ToyBudget:
    mode: str
    steps: int = 40
    width: int = 16


def make_toy(mode: str, fits: list | None = None) -> nn.Module:
    """A recipe in miniature: a seeded MLP trained by train.train on a seeded stream, via cached."""
    B = ToyBudget(mode)

    def build():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(2, B.width), nn.GELU(), nn.Linear(B.width, 2))

    def fit(model):
        if fits is not None:
            fits.append(1)
        g = torch.Generator().manual_seed(0)

        def loss_fn(step):
            x = torch.randn(64, 2, generator=g)
            return (model(x) - x.flip(1)).pow(2).mean()
        train.train(model, loss_fn, B.steps, lr=1e-2, schedule="cosine", progress=False)
    return cache.cached("toy-mlp", B, build, fit, verbose=False)


@pytest.fixture
def toy(monkeypatch):
    fits = []
    monkeypatch.setitem(pretrain.MODELS, "toy-mlp", pretrain.Model(
        "toy-mlp", ("04",), lambda m: make_toy(m, fits),
        figures=lambda mode: {"loss": (make_toy(mode)(torch.ones(1, 2)) - 1).pow(2).mean().item()}))
    monkeypatch.setitem(runtime._state, "mode", runtime._state["mode"])     # pretrain sets the mode
    return fits


def test_pretrain_writes_the_model_once_and_lists_it(toy, tmp_path, capsys):
    out = tmp_path / "weights"
    assert pretrain.main(["--mode", "lecture", "--out", str(out), "toy-mlp"]) == 0
    assert toy == [1]
    (file, entry), = weights.read_manifest(out).items()
    assert (entry["name"], entry["mode"], entry["steps"]) == ("toy-mlp", "lecture", 40)
    assert entry["sha256"] == weights.sha256(out / file) and entry["budget_type"].endswith("ToyBudget")
    assert entry["command"] == "python -m course_lib.pretrain --mode lecture toy-mlp"
    assert set(entry["figures"]) == {"loss"} and entry["figures"]["loss"] >= 0   # from the loaded weights
    first = (out / file).read_bytes()
    assert pretrain.main(["--mode", "lecture", "--out", str(out), "toy-mlp"]) == 0
    assert toy == [1] and (out / file).read_bytes() == first               # checked and kept, not retrained
    capsys.readouterr()
    assert pretrain.main(["--list", "--mode", "lecture", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "toy-mlp: shipped for lecture mode" in text and file in text
    assert "token-gpt: not shipped for lecture mode" in text
    assert "04: shapes-evaluator, shape-tokenizer, token-gpt, toy-mlp" in text
    assert "00: none: its models train in its own cells" in text


def test_an_unknown_model_is_named(tmp_path):
    with pytest.raises(SystemExit, match="unknown model.*no-such-model.*expected some of shapes-evaluator"):
        pretrain.main(["--out", str(tmp_path), "no-such-model"])


def _forget_models_in_memory():
    """Clear every lru_cache of course_lib (the evaluator, the recipes' trained models)."""
    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("course_lib."):
            for value in list(vars(module).values()):
                if callable(getattr(value, "cache_clear", None)):
                    value.cache_clear()


def test_every_registered_model_is_the_one_its_recipe_caches(monkeypatch):
    """Each registry entry's function asks the cache first for a model of that very name (the fake
    cache stops there, so nothing trains)."""
    asked = []

    class Asked(Exception):
        pass

    def fake(name, config, build, fit, verbose=True, *, share=True):
        asked.append((name, weights.describe_config(config)["mode"]))
        raise Asked

    monkeypatch.setattr(train, "cached", fake)
    for model in pretrain.MODELS.values():
        asked.clear()
        _forget_models_in_memory()          # an earlier test may have left the model in an lru_cache
        with pytest.raises(Asked):
            model.make("quick")
        assert asked[0][0] == model.name and asked[0][1] in ("quick", None), (model.name, asked)
    assert set(pretrain.NOTEBOOKS) >= {nb for m in pretrain.MODELS.values() for nb in m.notebooks}


DETERMINISM = r"""
import sys
sys.path.insert(0, sys.argv[2])
from course_lib import pretrain
from test_pretrain import make_toy
pretrain.MODELS["toy-mlp"] = pretrain.Model("toy-mlp", ("04",), make_toy)
pretrain.main(["--mode", "lecture", "--out", sys.argv[1], "toy-mlp"])
"""


def _make_in_a_fresh_process(out: Path, threads: int) -> str:
    env = {**os.environ, "COURSE_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    env.pop("COURSE_WEIGHTS_DIR", None)
    subprocess.run([sys.executable, "-c", DETERMINISM, str(out), str(ROOT / "tests")], check=True, env=env,
                   capture_output=True, timeout=120, cwd=ROOT)
    (entry,) = weights.read_manifest(out).values()
    return entry["sha256"]


def test_same_seed_mode_and_threads_give_bit_identical_weights(tmp_path):
    assert _make_in_a_fresh_process(tmp_path / "a", 1) == _make_in_a_fresh_process(tmp_path / "b", 1)
