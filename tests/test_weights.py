"""Shipped weights (course_lib.weights) and the model cache's first place: safetensors files with a
checksummed manifest, loaded only when name, budget and sha256 agree; every other case is a clear error
that leaves the file as it was. Each test makes its own files in a tmp folder (none needs shipped weights)."""
import json
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from course_lib import cache, runtime, train, weights


@dataclass(frozen=True)
class Budget:
    mode: str
    steps: int
    width: int = 3


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(5, 4)
        self.out = nn.Linear(4, 5, bias=False)
        self.out.weight = self.emb.weight                      # tied, as a GPT's embedding and head
        self.register_buffer("scale", torch.full((4,), 0.5))

    def forward(self, x):                                       # x (N, 3) floats -> (N, 5)
        return self.out(x.sum(1, keepdim=True) * self.scale)


def _fit(calls, steps=3):
    def fit(m):
        calls.append(1)
        x = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
        train.train(m, lambda s: m(x).pow(2).mean(), steps, progress=False)
    return fit


def _export(where, B, name="toy", build=lambda: nn.Linear(3, 2), fp16=()):
    calls = []
    with weights.exporting(where, fp16=fp16):
        m = cache.cached(name, B, build, _fit(calls), verbose=False)
    return m, calls


def test_export_writes_safetensors_and_a_manifest_then_cached_loads_it_first(lecture):
    B = Budget("lecture", 3)
    torch.manual_seed(0)
    trained, calls = _export(lecture, B)
    assert calls == [1]
    stem = cache.cache_path("toy", B).stem
    entry = weights.read_manifest(lecture)[stem + ".safetensors"]
    assert entry["sha256"] == weights.sha256(lecture / (stem + ".safetensors"))
    assert (entry["name"], entry["mode"], entry["steps"], entry["dtype"]) == ("toy", "lecture", 3, "float32")
    assert entry["budget"] == {"mode": "lecture", "steps": 3, "width": 3}
    assert entry["budget_type"] == f"{__name__}.Budget" and entry["seconds"] >= 0
    assert {"platform", "cpu_count", "threads", "device"} <= set(entry["machine"]) and entry["torch"] == torch.__version__
    assert not list((lecture.parent / "cache").glob("*.pt"))                  # exporting skips the disk cache
    calls = []
    m = cache.cached("toy", B, lambda: nn.Linear(3, 2), _fit(calls), verbose=False)
    assert calls == [] and m.from_cache and m.shipped == lecture / (stem + ".safetensors")
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), trained.state_dict().values()))
    weights.set_figures(lecture, stem + ".safetensors", {"loss": 0.5})
    assert weights.read_manifest(lecture)[stem + ".safetensors"]["figures"] == {"loss": 0.5}


def test_a_corrupted_file_stops_with_both_hashes_and_is_left_as_it_was(lecture):
    B = Budget("lecture", 3)
    _export(lecture, B)
    path = lecture / (cache.cache_path("toy", B).stem + ".safetensors")
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    expected = weights.read_manifest(lecture)[path.name]["sha256"]
    calls = []
    with pytest.raises(weights.WeightsError) as e:
        cache.cached("toy", B, lambda: nn.Linear(3, 2), _fit(calls), verbose=False)
    msg = str(e.value)
    assert str(path) in msg and expected in msg and weights.sha256(path) in msg and "make pretrain" in msg
    assert "python -m course_lib.pretrain --mode lecture toy" in msg
    assert calls == [] and path.read_bytes() == bytes(data)                 # not trained, not overwritten


def test_a_missing_file_and_a_stale_budget_stop_with_the_rebuild_command(lecture):
    B = Budget("lecture", 3)
    _export(lecture, B)
    with pytest.raises(weights.WeightsError, match=r"stale.*steps: shipped 3, the recipe's 4.*make pretrain"):
        cache.cached("toy", Budget("lecture", 4), lambda: nn.Linear(3, 2), _fit([]), verbose=False)
    path = lecture / (cache.cache_path("toy", B).stem + ".safetensors")
    path.unlink()
    with pytest.raises(weights.WeightsError, match="file is missing"):
        cache.cached("toy", B, lambda: nn.Linear(3, 2), _fit([]), verbose=False)
    assert not path.exists()
    # another mode, or another model, is not stale: it is simply not shipped
    m = cache.cached("toy", Budget("full", 3), lambda: nn.Linear(3, 2), _fit([]), verbose=False)
    assert not m.from_cache


def test_weights_of_another_code_version_are_stale(lecture, monkeypatch):
    B = Budget("lecture", 3)
    _export(lecture, B)
    monkeypatch.setattr(cache, "CODE_VERSION", cache.CODE_VERSION + 1)
    with pytest.raises(weights.WeightsError, match="stale: the budget is the same, but the cache key is not"):
        cache.cached("toy", B, lambda: nn.Linear(3, 2), _fit([]), verbose=False)


def test_train_switch_and_quick_mode_ignore_shipped_weights(lecture, monkeypatch):
    B = Budget("lecture", 3)
    _export(lecture, B)
    path = lecture / (cache.cache_path("toy", B).stem + ".safetensors")
    path.write_bytes(b"damaged")                                           # would be an error if read
    assert runtime.set_weights("train") == "train"
    calls = []
    m = cache.cached("toy", B, lambda: nn.Linear(3, 2), _fit(calls), verbose=False)
    assert calls == [1] and not m.from_cache and path.read_bytes() == b"damaged"
    runtime.set_weights(None)
    monkeypatch.setenv("COURSE_WEIGHTS", "train")
    assert runtime.weights() == "train"
    monkeypatch.setenv("COURSE_WEIGHTS", "load")
    assert runtime.weights() == "load"
    monkeypatch.setitem(runtime._state, "mode", "quick")
    assert runtime.weights() == "train" and runtime.set_weights("load") == "train"


def test_the_switch_refuses_unknown_values(monkeypatch):
    with pytest.raises(ValueError, match="weights: expected one of 'load', 'train', got 'yes'"):
        runtime.set_weights("yes")
    monkeypatch.setitem(runtime._state, "mode", "lecture")
    monkeypatch.setitem(runtime._state, "weights", None)
    monkeypatch.setenv("COURSE_WEIGHTS", "always")
    with pytest.raises(ValueError, match="COURSE_WEIGHTS"):
        runtime.weights()


def test_fp16_storage_ties_and_buffers_round_trip(lecture, tmp_path):
    B = Budget("lecture", 2)
    torch.manual_seed(0)
    model, _ = _export(lecture, B, name="tied", build=Tied, fp16=("tied",))
    path = lecture / (cache.cache_path("tied", B).stem + ".safetensors")
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        assert sorted(f.keys()) == ["emb.weight", "scale"]                 # the tied head stored once
        assert f.get_tensor("emb.weight").dtype == torch.float16
    assert weights.read_manifest(lecture)[path.name]["dtype"] == "float16"
    fresh = Tied()
    assert weights.load_into(fresh, path) is None                       # this fit returned nothing
    assert fresh.out.weight is fresh.emb.weight and fresh.emb.weight.dtype == torch.float32
    assert torch.equal(fresh.emb.weight, model.emb.weight.half().float()) and torch.equal(fresh.scale, model.scale)


def test_never_unpickles_and_a_file_of_another_model_is_refused(tmp_path):
    path = tmp_path / "x.safetensors"
    torch.save({"weight": torch.zeros(2, 3)}, path)                       # a pickle (zip) in disguise
    with pytest.raises(weights.WeightsError, match="not a safetensors file"):
        weights.load_into(nn.Linear(3, 2), path)
    from safetensors.torch import save_file
    save_file({"weight": torch.zeros(5, 5)}, str(path))
    with pytest.raises(weights.WeightsError, match=r"does not fit the model.*missing bias.*weight of shape \(5, 5\)"):
        weights.load_into(nn.Linear(3, 2), path)


def test_save_never_overwrites_a_file_and_replaces_a_stale_entry_loudly(lecture, capsys):
    B = Budget("lecture", 3)
    _export(lecture, B)
    stem = cache.cache_path("toy", B).stem
    old = lecture / (stem + ".safetensors")
    with pytest.raises(weights.WeightsError, match="never overwritten"):
        weights.save(nn.Linear(3, 2), lecture, stem, "toy", B, steps=0, seconds=0)
    stray = lecture / (cache.cache_path("toy", Budget("lecture", 5)).stem + ".safetensors")
    stray.write_bytes(b"something a person put here")
    with pytest.raises(weights.WeightsError, match="not listed"):
        _export(lecture, Budget("lecture", 5))
    assert stray.read_bytes() == b"something a person put here"
    _export(lecture, Budget("lecture", 4))                                 # the budget changed: replaced
    assert "replacing the stale" in capsys.readouterr().out and not old.exists()
    assert [e["budget"]["steps"] for e in weights.read_manifest(lecture).values()] == [4]


def test_variants_of_one_model_are_told_apart_by_their_settings(lecture):
    B = Budget("lecture", 2)
    for seed in (0, 1):
        _export(lecture, dict(budget=B, seed=seed))
    entries = weights.read_manifest(lecture).values()
    assert sorted(e["settings"]["seed"] for e in entries) == [0, 1]
    assert {e["mode"] for e in entries} == {"lecture"}
    assert all(e["budget_type"] == {"budget": f"{__name__}.Budget"} for e in entries)
    m = cache.cached("toy", dict(budget=B, seed=2), lambda: nn.Linear(3, 2), _fit([]), verbose=False)
    assert not m.from_cache                                                # another seed: not shipped, not stale


def test_a_damaged_manifest_is_named(lecture):
    lecture.mkdir(parents=True)
    (lecture / "manifest.json").write_text("{not json")
    with pytest.raises(weights.WeightsError, match="manifest.json is not a weights manifest"):
        cache.cached("toy", Budget("lecture", 3), lambda: nn.Linear(3, 2), _fit([]), verbose=False)


def test_the_folder_is_found_from_the_course_folder_or_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("COURSE_WEIGHTS_DIR", raising=False)
    (tmp_path / "course" / "solutions").mkdir(parents=True)
    (tmp_path / "course" / "data" / "weights").mkdir(parents=True)
    (tmp_path / "course" / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "course" / "notebooks")
    assert weights.folder() == (tmp_path / "course" / "data" / "weights").resolve()
    monkeypatch.chdir(tmp_path)
    assert weights.folder() is None                                        # no course here: models train
    monkeypatch.setenv("COURSE_WEIGHTS_DIR", str(tmp_path / "elsewhere"))
    assert weights.folder() == tmp_path / "elsewhere"


def test_recording_counts_each_models_own_steps(lecture):
    inner_calls, outer_calls = [], []

    def outer_fit(m):
        cache.cached("inner", Budget("lecture", 2), lambda: nn.Linear(3, 2), _fit(inner_calls, 2), verbose=False)
        _fit(outer_calls, 5)(m)
    with weights.exporting(lecture):
        cache.cached("outer", Budget("lecture", 5), lambda: nn.Linear(3, 2), outer_fit, verbose=False)
    steps = {e["name"]: e["steps"] for e in weights.read_manifest(lecture).values()}
    assert steps == {"inner": 2, "outer": 5}


def test_manifest_is_plain_json_with_sorted_entries(lecture):
    _export(lecture, Budget("lecture", 2))
    data = json.loads((lecture / "manifest.json").read_text())
    assert data["format"] == weights.FORMAT and list(data["files"]) == sorted(data["files"])


def _fit_with_record(calls, steps=3):
    def fit(m):
        calls.append(1)
        x = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
        hist = train.train(m, lambda s: {"loss": m(x).pow(2).mean(), "norm": m.weight.detach().norm()}, steps, progress=False)
        return {"history": hist, "curve": [[1, 0.5], [2, float("nan")]], "note": "ok", "final": torch.tensor(2.5)}
    return fit


def _same_record(got, want_hist):
    assert got["curve"][0] == [1, 0.5] and got["curve"][1][1] != got["curve"][1][1]      # NaN survives
    assert got["note"] == "ok" and got["final"] == 2.5
    h = got["history"]
    assert isinstance(h, train.History) and h.losses == want_hist.losses and h.logs == want_hist.logs
    assert h.seconds == pytest.approx(want_hist.seconds)


def test_what_training_returned_comes_back_with_cached_and_shipped_weights(lecture, tmp_path):
    B = Budget("lecture", 4)
    calls = []
    with weights.exporting(lecture):
        made = cache.cached("rec", B, lambda: nn.Linear(3, 2), _fit_with_record(calls), verbose=False)
    assert calls == [1] and made.history is made.record["history"] and len(made.history.losses) == 3
    shipped = cache.cached("rec", B, lambda: nn.Linear(3, 2), _fit_with_record(calls), verbose=False)
    assert calls == [1] and shipped.from_cache
    _same_record(shipped.record, made.history)
    assert shipped.history.logs["norm"] == made.history.logs["norm"]
    runtime.set_weights("train")                            # the disk cache: the same record comes back
    try:
        trained = cache.cached("rec", B, lambda: nn.Linear(3, 2), _fit_with_record(calls), verbose=False)
        again = cache.cached("rec", B, lambda: nn.Linear(3, 2), _fit_with_record(calls), verbose=False)
    finally:
        runtime.set_weights(None)
    assert calls == [1, 1] and not trained.from_cache and again.from_cache
    _same_record(again.record, trained.history)


def test_a_record_that_is_not_json_is_refused_before_anything_is_written(lecture):
    with pytest.raises(TypeError, match=r"fit's return value\['x'\].*shape \(2,\)"):
        cache.cached("bad", Budget("lecture", 1), lambda: nn.Linear(3, 2), lambda m: {"x": torch.zeros(2)},
                     verbose=False)
    with pytest.raises(TypeError, match="got object"):
        cache.cached("bad", Budget("lecture", 2), lambda: nn.Linear(3, 2), lambda m: object(), verbose=False)
    assert not list((lecture.parent / "cache").glob("bad-*"))


def test_a_learners_model_loads_the_course_weights_or_trains_without_writing(lecture):
    B = Budget("lecture", 3)
    calls = []
    runtime.set_weights("train")
    try:
        m = cache.cached("mine", B, lambda: nn.Linear(3, 2), _fit(calls), verbose=False, share=False)
    finally:
        runtime.set_weights(None)
    assert calls == [1] and not m.from_cache and not list((lecture.parent / "cache").glob("mine-*"))
    _export(lecture, B, name="mine")                        # the course's weights of it
    calls.clear()
    m = cache.cached("mine", B, lambda: nn.Linear(3, 2), _fit(calls), verbose=False, share=False)
    assert calls == [] and m.from_cache and m.shipped.parent == lecture


def test_every_notebook_has_the_weights_switch_in_its_first_code_cell():
    """WEIGHTS = "load" / "train" (issue: one switch per notebook), set before any model is asked for."""
    import nbformat
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    for path in sorted((root / "solutions").glob("[0-9][0-9]_*.ipynb")):
        first = next(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code").source
        lines = [ln.split("#")[0].strip() for ln in first.splitlines()]
        assert 'WEIGHTS = "load"' in lines and "runtime.set_weights(WEIGHTS)" in lines, path.name
        assert lines.index("runtime.set_weights(WEIGHTS)") < next(
            (i for i, ln in enumerate(lines) if "recipe" in ln and "import" not in ln), len(lines)), path.name


def test_halving_a_shipped_file_keeps_its_record_and_large_buffers(lecture):
    class Counted(nn.Linear):
        def __init__(self):
            super().__init__(3, 2)
            self.register_buffer("count", torch.tensor([1e6, 2.0]))        # beyond float16's 65504
    B = Budget("lecture", 3)
    calls = []
    with weights.exporting(lecture):
        made = cache.cached("half", B, Counted, _fit_with_record(calls), verbose=False)
    (file, entry), = weights.read_manifest(lecture).items()
    saved = weights.halve(lecture, file)
    after = weights.read_manifest(lecture)[file]
    assert saved > 0 and after["dtype"] == "float16" and after["sha256"] == weights.sha256(lecture / file)
    assert after["sha256"] != entry["sha256"] and after["bytes"] == entry["bytes"] - saved
    loaded = cache.cached("half", B, Counted, _fit_with_record(calls), verbose=False)
    assert calls == [1] and torch.equal(loaded.weight, made.weight.half().float())
    assert torch.equal(loaded.count, made.count)                           # kept in float32
    _same_record(loaded.record, made.history)
    (lecture / file).write_bytes(b"x")
    with pytest.raises(weights.WeightsError, match="sha256 differs"):
        weights.halve(lecture, file)
