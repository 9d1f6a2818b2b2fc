"""`make run` (course_lib.course.runner), `python -m course_lib.bench notebooks --json`, and the one
envelope every benchmark prints."""
import dataclasses
import json
import pathlib
import subprocess
import sys

import pytest
import torch

from course_lib import bench, runtime
from course_lib.course import runner

REPO = pathlib.Path(__file__).resolve().parent.parent


def test_runner_executes_a_notebook_and_writes_notebook_and_html(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                         # the course folder is given, not guessed
    seconds = runner.run_all(["00"], mode="quick", out=tmp_path, html=True, course=REPO)
    assert list(seconds) == ["00_welcome"] and seconds["00_welcome"] > 0
    executed = (tmp_path / "solutions" / "00_welcome.ipynb").read_text()
    assert "welcome.euler_step] passed" in executed          # the check ran and printed
    assert (tmp_path / "solutions" / "00_welcome.html").stat().st_size > 10_000


def test_runner_rejects_unknown_names():
    with pytest.raises(ValueError, match="no notebook named 99_nope"):
        runner.notebook_paths("solutions", ["99_nope"], course=REPO)


def test_runner_finds_the_course_folder_from_the_current_directory(tmp_path, monkeypatch):
    (tmp_path / "solutions").mkdir()
    (tmp_path / "solutions" / "07_x.ipynb").write_text("{}")
    monkeypatch.chdir(tmp_path / "solutions")
    assert runner.notebook_paths("solutions", ["07"]) == [tmp_path.resolve() / "solutions" / "07_x.ipynb"]
    assert runner.notebook_paths("notebooks") == []
    assert [p.name for p in runner.notebook_paths("solutions", ["00"], course=REPO)] == ["00_welcome.ipynb"]
    assert runner.main(["--course", str(tmp_path / "nope")]) == 2


def _course_with(tmp_path, notebooks: dict) -> pathlib.Path:
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook
    (tmp_path / "solutions").mkdir()
    for name, cells in notebooks.items():
        nbformat.write(new_notebook(cells=[new_code_cell(c) for c in cells]), tmp_path / "solutions" / f"{name}.ipynb")
    return tmp_path


def test_a_failed_notebook_is_reported_and_the_run_goes_on(tmp_path, capsys):
    course = _course_with(tmp_path, {"01_breaks": ["x = 1", "1 / 0", "never = True"],
                                     "02_slow": ["import time; time.sleep(5)"],
                                     "03_fine": ["print('ran to the end')"]})
    code = runner.main(["--course", str(course), "--mode", "quick", "--timeout", "2", "--out", str(tmp_path / "build")])
    out = capsys.readouterr().out
    assert code == 1                                          # some notebook failed: non-zero exit
    rows = {line.split()[0]: line for line in out.splitlines()[1:] if line.strip() and not line.startswith("total")}
    assert set(rows) == {"01_breaks", "02_slow", "03_fine"}    # every notebook ran, after the failures
    assert "failed" in rows["01_breaks"] and "ZeroDivisionError" in rows["01_breaks"]
    assert "failed" in rows["02_slow"] and "Timeout" in rows["02_slow"]      # the 2 s cell timeout fired
    assert rows["03_fine"].split()[1] == "ok"
    assert "2 failed" in out
    executed = (tmp_path / "build" / "solutions" / "01_breaks.ipynb").read_text()
    assert "ZeroDivisionError" in executed                    # the executed copy shows where it stopped
    with pytest.raises(RuntimeError, match="01_breaks failed: ZeroDivisionError"):
        runner.run_all(["01"], mode="quick", course=course)


def test_the_cell_timeout_follows_the_mode():
    assert runner.CELL_TIMEOUT["quick"] < runner.CELL_TIMEOUT["lecture"] < runner.CELL_TIMEOUT["full"]
    assert runner.CELL_TIMEOUT["lecture"] >= 1800           # a busy laptop's slowest lecture cell fits


def test_bench_notebooks_prints_json(tmp_path):
    out = subprocess.run([sys.executable, "-m", "course_lib.bench", "notebooks", "--json", "--mode", "quick",
                          "--course", str(REPO), "00_welcome"], capture_output=True, text=True, timeout=300,
                         check=True, cwd=tmp_path).stdout
    result = json.loads(out)                       # the runner's progress went to stderr
    assert_envelope(result, "notebooks")
    assert set(result["notebooks"]) == {"00_welcome"} and result["notebooks"]["00_welcome"] > 0


def test_bench_lists_benchmarks_and_rejects_unknown():
    assert "notebooks" in bench.available()
    with pytest.raises(SystemExit, match="unknown benchmark 'nope'"):
        bench.load("nope")


def assert_envelope(out: dict, name: str, bars=()) -> None:
    """``out`` is one benchmark's envelope: who, where, how long, then its figures and its bars."""
    assert {"bench", "mode", "device", "threads", "torch", "seconds", "bars"} <= set(out), sorted(out)
    assert out["bench"] == name and out["mode"] == "quick" and out["device"] in ("cpu", "cuda", "mps")
    assert out["threads"] == torch.get_num_threads() and out["torch"] == torch.__version__
    assert out["seconds"] >= 0 and isinstance(out["bars"], dict)
    assert set(bars) <= set(out["bars"]), sorted(out["bars"])
    for key, bar in out["bars"].items():
        assert set(bar) == {"value", "limit", "passed"} and isinstance(bar["passed"], bool), key
    assert not [k for k in out if k.startswith("bar_") or k in ("meets_bar", "total_seconds")]
    json.dumps(out, default=float)


def test_bench_flow2d_quick_reports_every_bar(monkeypatch):
    # a small run of the real benchmark: every field the issue asks for, finite and plausible
    monkeypatch.setattr(runtime, "_state", {"mode": "quick", "device": None})
    out = bench.measure("flow2d", ["--n", "1024", "--seeds", "1", "--tv-n", "4096", "--skip", "conditional",
                      "--pairing-steps", "60", "--pairing-batch", "128", "--pairing-second", "checkerboard"])
    for key in ("swd_euler", "swd_heun", "swd_euler_ot"):
        assert set(out[key]) == {"1", "2", "4", "8", "16", "32", "100"}
    assert 0 < out["noise_floor"] < out["swd_euler"]["1"]
    assert out["swd_euler"]["100"] < out["swd_euler"]["1"]
    # OT pairs straighten: one step is much better than with independent pairs
    assert out["swd_euler_ot"]["1"] < 0.5 * out["swd_euler"]["1"]
    assert out["swd_1step_after_reflow"] < out["swd_1step_before_reflow"]
    assert out["train_steps_per_second"] > 0 and out["ot_train_steps_per_second"] > 0
    # the grid TV beside the SWD (issue 15): its floor, Euler at 1..100 steps, the reflow student
    assert set(out["tv_euler"]) == {"1", "2", "4", "8", "100"}
    assert 0 < out["tv_floor"] < out["tv_euler"]["100"] < out["tv_euler"]["1"] <= 1
    assert 0 < out["tv_1step_after_reflow"] <= 1 and 0 < out["tv_2step_after_reflow"] <= 1
    assert_envelope(out, "flow2d", ("euler100_le_1.5x_floor", "tv_euler100_le_1.5x_floor", "reflow_1step_le_0.7x",
                                    "tv_reflow_1step_le_2x_floor", "ot_euler100_le_1.5x_floor"))
    assert out["bars"]["euler100_le_1.5x_floor"]["value"] == out["euler100_over_floor"]
    # the pairings part (issue 15): every pairing with its speed and quality, on both sets, and the goal
    for key in ("pairings", "pairings_checkerboard"):
        rows = out[key]
        assert {"independent", "block256", "exact", "default", "noise_floor", "tv_floor", "goal"} <= set(rows)
        for name in ("independent", "block256", "exact", "default"):
            assert set(rows[name]["swd"]) == set(rows[name]["tv"]) == {"1", "2", "4", "100"}
            assert rows[name]["steps_per_second"] > 0
        assert rows["independent"]["solver_ms"] == 0 < rows["default"]["solver_ms"]
        assert isinstance(rows["goal"]["met"], bool)


def test_bench_orders_quick_reports_every_key(monkeypatch):
    # the GPT part of the orders benchmark in quick mode; the other notebooks' results merged in
    from types import SimpleNamespace

    from course_lib import runtime
    from course_lib.bench import orders
    monkeypatch.setattr(runtime, "_state", {"mode": "quick", "device": None})
    fake = SimpleNamespace(bench_results=lambda mode: {"maskgit_8": {"prompt_accuracy": 0.5, "mode": mode}})
    monkeypatch.setattr(orders, "_other_recipe", lambda name: fake if name == "maskgit" else None)
    out = bench.measure("orders", [])
    assert_envelope(out, "orders")
    assert out["evaluator_min_accuracy"] >= 0.98
    assert set(out["evaluator_accuracy"]) == {"shape", "color", "position", "size"}
    assert set(out["gpt"]) >= {"prompt_accuracy", "frechet", "nfe", "seconds_per_image", "params"}
    assert out["gpt"]["nfe"] == 16 and out["gpt"]["params"] > 0 and out["gpt"]["seconds_per_image"] > 0
    assert 0 <= out["gpt"]["prompt_accuracy"] <= 1 and out["gpt"]["frechet"] > 0 < out["frechet_floor"]
    assert out["kv_cache_identical"] is True and out["kv_cache_speedup"] > 0
    assert set(out["cfg_prompt_accuracy"]) == {"0.0", "1.0", "2.0", "3.0"}
    assert out["maskgit_8"] == {"prompt_accuracy": 0.5, "mode": "quick"}
    assert out["missing"] == ["recipes.next_scale"]


def test_a_bench_prints_one_envelope_and_its_progress_goes_to_stderr(monkeypatch, capsys):
    def run(args):
        print("training... 10/10 steps")                       # what a recipe prints while it runs
        return {"figure": 1.5, "bars": {"figure_le_2": bench.at_most(1.5, 2.0)}}
    monkeypatch.setattr(bench, "load", lambda name: type("Fake", (), {"run": staticmethod(run)}))
    monkeypatch.setattr(runtime, "_state", {"mode": "quick", "device": None})
    from course_lib.bench.__main__ import main
    assert main(["fake", "--json"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)                             # stdout: the JSON alone
    assert "training... 10/10" in captured.err and "training" not in captured.out
    assert_envelope(out, "fake", ("figure_le_2",))
    assert out["figure"] == 1.5 and out["bars"]["figure_le_2"] == {"value": 1.5, "limit": 2.0, "passed": True}
    assert bench.at_least(0.9, 0.95)["passed"] is False and bench.at_most(3, 2)["passed"] is False


def test_a_bench_may_not_return_the_envelope_keys(monkeypatch):
    monkeypatch.setattr(bench, "load", lambda name: type("Fake", (), {"run": staticmethod(lambda a: {"seconds": 1})}))
    with pytest.raises(RuntimeError, match=r"run\(\) returned \['seconds'\], which the envelope sets"):
        bench.measure("fake")


def _tiny(monkeypatch, module, **fields):
    """Shrink a recipe's quick budget for a test of its bench's envelope (the figures are not judged)."""
    quick = dataclasses.replace(module.BUDGETS["quick"], **fields)
    monkeypatch.setitem(module.BUDGETS, "quick", quick)


# Benchmarks with no other test of their run(): each once, in quick mode with its smallest arguments;
# tokens and heads with their quick budgets shrunk (10 steps per tokenizer; 3 training steps and 32
# held-out prompts for the heads), since even quick mode trains for over a minute there (tokens: 80 s
# on a busy 2-core machine; heads: twelve transformer + head pairs) (limits and heads' MSE trap use the cached quick models
# of notebooks 04 and 07: a shrunk budget would be another cache key, trained again). flow2d, orders, meanflow and notebooks: tests above and
# in test_meanflow.py.
ENVELOPE_RUNS = {
    "checks": (["--repeat", "1"], ("max_check_seconds", "reference_passes")),
    "pixel_ar": (["--skip-wavenet"], ("pixelcnn_le_0.75x_histogram",)),
    "tokens": ([], ()),
    "limits": ([], ("trap_mse_clean_le_0.5x_ce",)),
    "heads": ([], ("open_raster_flow_le_0.5x_mse", "open_masked_energy_le_1.5x_flow")),
}


def test_every_bench_is_tested_for_its_envelope():
    tested_elsewhere = {"flow2d", "orders", "meanflow", "notebooks", "capstone"}
    assert set(bench.available()) == set(ENVELOPE_RUNS) | tested_elsewhere


@pytest.mark.parametrize("name", sorted(ENVELOPE_RUNS))
def test_each_bench_prints_the_envelope(name, monkeypatch):
    monkeypatch.setattr(runtime, "_state", {"mode": "quick", "device": None})
    if name == "tokens":
        pytest.importorskip("vector_quantize_pytorch")
        from course_lib.recipes import residual_and_bitwise_tokens, tokens
        _tiny(monkeypatch, tokens, n_train=256, bench_vq_steps=10)
        codec = residual_and_bitwise_tokens.BUDGETS["quick"].codec
        _tiny(monkeypatch, residual_and_bitwise_tokens,
              codec=dataclasses.replace(codec, clips=16, bench_steps=10, bench_compare_steps=5))
    if name == "heads":
        from course_lib.recipes import generation_heads
        _tiny(monkeypatch, generation_heads, steps=3, n_eval=32, sweep=(1, 2))
    args, bars = ENVELOPE_RUNS[name]
    assert_envelope(bench.measure(name, args), name, bars)


def test_bench_capstone_writes_the_frontier_chart(monkeypatch, tmp_path):
    # the whole-prompt frontier only (the open one, the one-step study and the audio rows have their own
    # tests), 16 prompts and one seed; the quick models come from the cache the notebooks filled
    from course_lib.recipes import capstone
    monkeypatch.setattr(runtime, "_state", {"mode": "quick", "device": None})
    _tiny(monkeypatch, capstone, n_eval=16, seeds=(0,), n_alone=1)
    chart = tmp_path / "frontier.png"
    out = bench.measure("capstone", ["--skip", "open", "--skip", "one_step", "--skip", "audio", "--chart", str(chart)])
    assert_envelope(out, "capstone")
    assert chart.stat().st_size > 10_000 and chart.read_bytes()[:4] == b"\x89PNG"
    names = {r["name"] for r in out["whole"]["rows"]}
    assert len(names) == len(out["whole"]["rows"]) >= 10
    for r in out["whole"]["rows"]:
        assert 0.0 <= r["prompt_accuracy"] <= 1.0 and r["frechet"] >= 0 and r["sequential_evaluations"] >= 1, r
        assert r["params"] > 0 and r["seconds_per_image_batch"] > 0 and r["seconds_per_image_alone"] > 0, r
    assert out["whole"]["n_eval"] == 16 and "open" not in out and "audio" not in out
