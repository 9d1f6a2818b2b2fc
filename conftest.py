"""pytest set-up shared by the unit tests and nbval: every notebook runs in quick mode (unless
COURSE_TEST_MODE says otherwise), widgets draw their static view, plots go to a non-GUI backend."""
import os

os.environ["COURSE_MODE"] = os.environ.get("COURSE_TEST_MODE", "quick")
os.environ["COURSE_STATIC"] = "1"

import matplotlib  # noqa: E402

matplotlib.use("Agg")


import pytest  # noqa: E402


@pytest.fixture
def lecture(monkeypatch, tmp_path):
    """Lecture mode with the weights switch on "load", shipped weights in tmp/weights and the disk
    cache in tmp/cache (what a learner's notebook sees); restored afterwards."""
    from course_lib import runtime
    monkeypatch.setitem(runtime._state, "mode", "lecture")
    monkeypatch.setitem(runtime._state, "weights", None)
    monkeypatch.delenv("COURSE_WEIGHTS", raising=False)
    monkeypatch.setenv("COURSE_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "weights"
