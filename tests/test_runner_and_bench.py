"""`make run` (course_lib.runner) and `python -m course_lib.bench notebooks --json`."""
import json
import subprocess
import sys

import pytest

from course_lib import bench, runner


def test_runner_executes_a_notebook_and_writes_notebook_and_html(tmp_path):
    seconds = runner.run_all(["00"], mode="quick", out=tmp_path, html=True)
    assert list(seconds) == ["00_welcome"] and seconds["00_welcome"] > 0
    executed = (tmp_path / "solutions" / "00_welcome.ipynb").read_text()
    assert "welcome.euler_step] passed" in executed          # the check ran and printed
    assert (tmp_path / "solutions" / "00_welcome.html").stat().st_size > 10_000


def test_runner_rejects_unknown_names():
    with pytest.raises(ValueError, match="no notebook named 99_nope"):
        runner.notebook_paths("solutions", ["99_nope"])


def test_bench_notebooks_prints_json():
    out = subprocess.run([sys.executable, "-m", "course_lib.bench", "notebooks", "--json", "--mode", "quick",
                          "00_welcome"], capture_output=True, text=True, timeout=300, check=True).stdout
    result = json.loads(out)
    assert result["mode"] == "quick" and result["device"] in ("cpu", "cuda", "mps")
    assert set(result["seconds"]) == {"00_welcome"} and result["seconds"]["00_welcome"] > 0


def test_bench_lists_benchmarks_and_rejects_unknown():
    assert "notebooks" in bench.available()
    with pytest.raises(SystemExit, match="unknown benchmark 'nope'"):
        bench.load("nope")
