"""The course as a learner meets it: a real JupyterLab in a real browser (headless Chromium driven by
Playwright), on the student notebooks in quick mode.

It starts JupyterLab on 127.0.0.1 with a token on a free port, in a temporary copy of the course,
runs every cell of a notebook the way the "Run > Run All Cells" menu does, moves the widgets' sliders
with the keyboard and checks that the plot under them changed, and checks that every audio player
has a sound with a duration. The server is stopped by its PID at the end, and a process it started
that is still alive then is killed and reported as an error.

Needs Debian's ``chromium`` (``apt-get install chromium``) and Playwright for Python
(``pip install -e ".[browser]"``; no browser download: Playwright is pointed at the system Chromium,
or at ``$COURSE_CHROMIUM``). Without them the tests are skipped with a message saying so, except
where ``COURSE_REQUIRE_BROWSER=1`` (``.ci/run`` sets it): there a missing browser is a failure.
``pytest -m "not browser"`` leaves them out.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.browser

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
# a cell that builds a widget: the course's own helpers, or ipywidgets used directly
WIDGET_CALL = re.compile(r"\bviz\.(interact|field_explorer)\(|\bipywidgets\b|\bwidgets\.interact|@interact")
RUN_ALL_TIMEOUT_S = 300          # quick mode: each notebook is well under 90 s on 2 CPU cores
CHANGE_TIMEOUT_S = 60            # one redraw after a key press


def widget_notebooks() -> list[str]:
    """The student notebooks with at least one code cell that builds a widget."""
    found = []
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        if any(c.cell_type == "code" and WIDGET_CALL.search(c.source) for c in nb.cells):
            found.append(path.name)
    return found


def widget_cells(name: str) -> int:
    nb = nbformat.read(REPO / "notebooks" / name, as_version=4)
    return sum(c.cell_type == "code" and bool(WIDGET_CALL.search(c.source)) for c in nb.cells)


def _chromium() -> str | None:
    for cand in (os.environ.get("COURSE_CHROMIUM"), "chromium", "chromium-browser"):
        if cand and shutil.which(cand):
            return shutil.which(cand)
    return None


def _browser_or_skip() -> str:
    """The Chromium executable; skip (or, with COURSE_REQUIRE_BROWSER=1, fail) when something is missing."""
    missing = []
    exe = _chromium()
    if exe is None:
        missing.append("a Chromium executable (apt-get install chromium, or set COURSE_CHROMIUM)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append('Playwright for Python (pip install -e ".[browser]")')
    if missing:
        msg = "browser tests need " + " and ".join(missing)
        if os.environ.get("COURSE_REQUIRE_BROWSER", "") not in ("", "0"):
            pytest.fail(msg + " (COURSE_REQUIRE_BROWSER is set, so this is a failure)")
        pytest.skip(msg)
    return exe


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _process_tree(root: int) -> dict[int, str]:
    """{pid: start time} of root and every process below it (from /proc; empty where there is none)."""
    parents, starts = {}, {}
    for d in Path("/proc").glob("[0-9]*"):
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(d.name)], starts[int(d.name)] = int(fields[1]), fields[19]
    tree, frontier = {}, [root]
    while frontier:
        pid = frontier.pop()
        if pid in starts:
            tree[pid] = starts[pid]
            frontier += [p for p, pp in parents.items() if pp == pid]
    return tree


def _alive(pids: dict[int, str]) -> list[int]:
    """The pids of ``pids`` still running as the same process (not a zombie, start time unchanged)."""
    alive = []
    for pid, start in pids.items():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[19] == start and fields[0] != "Z":
            alive.append(pid)
    return alive


class Lab:
    """A JupyterLab server on a temporary copy of the student notebooks, and one browser on it."""

    def __init__(self, tmp: Path, chromium: str):
        self.root = tmp / "course"
        (self.root / "notebooks").mkdir(parents=True)
        for path in (REPO / "notebooks").glob("*.ipynb"):
            shutil.copy(path, self.root / "notebooks" / path.name)
        # the copy is a course folder (homework.summary finds solutions/ beside notebooks/)
        (self.root / "solutions").symlink_to(REPO / "solutions")
        settings = tmp / "lab-settings"
        for ext, plugin, value in [
            # every cell stays in the page (no virtual scrolling), so each one can be found
            ("@jupyterlab/notebook-extension", "tracker", {"windowingMode": "none"}),
            # no news or update pop-ups over the notebook; nothing fetched from the internet
            ("@jupyterlab/apputils-extension", "notification", {"fetchNews": "false", "checkForUpdates": False})]:
            (settings / ext).mkdir(parents=True, exist_ok=True)
            (settings / ext / f"{plugin}.jupyterlab-settings").write_text(json.dumps(value))
        self.port, self.token = _free_port(), secrets.token_hex(16)
        env = {k: v for k, v in os.environ.items() if k not in ("COURSE_STATIC", "MPLBACKEND")}
        env.update(COURSE_MODE="quick", JUPYTERLAB_SETTINGS_DIR=str(settings),
                   JUPYTER_RUNTIME_DIR=str(tmp / "runtime"), PYTHONUNBUFFERED="1")
        cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
               f"--port={self.port}", "--port-retries=0", f"--IdentityProvider.token={self.token}",
               f"--ServerApp.root_dir={self.root}", f"--LabApp.workspaces_dir={tmp / 'workspaces'}",
               "--expose-app-in-browser"]
        if os.geteuid() == 0:
            cmd.append("--allow-root")
        self.log = tmp / "jupyter.log"
        self.server = subprocess.Popen(cmd, env=env, stdout=self.log.open("w"), stderr=subprocess.STDOUT,
                                       start_new_session=True)
        self.started: dict[int, str] = {}
        self.pw = self.browser = None
        self.pages = {}
        try:
            self._wait_up()
            from playwright.sync_api import sync_playwright
            self.pw = sync_playwright().start()
            self.browser = self.pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        except BaseException:
            self.stop()
            raise

    def _wait_up(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.server.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/status?token={self.token}", timeout=2)
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"JupyterLab did not answer within {timeout} s:\n{self.log.read_text()[-3000:]}")

    def _remember_processes(self) -> None:
        self.started.update(_process_tree(self.server.pid))
        for pid in _process_tree(os.getpid()):               # the Playwright driver and Chromium
            if pid != os.getpid():
                self.started.setdefault(pid, _process_tree(pid)[pid])

    def run_all(self, name: str):
        """Open notebooks/<name>, run all its cells, return the page (once per notebook)."""
        if name in self.pages:
            return self.pages[name]
        page = self.browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(f"http://127.0.0.1:{self.port}/lab/tree/notebooks/{name}?reset&token={self.token}")
        page.wait_for_selector(".jp-Notebook .jp-Cell")
        page.wait_for_function(_JS_KERNEL_IDLE)
        t0 = time.perf_counter()
        # what the "Run > Run All Cells" menu item runs; the promise settles when the last cell is done
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        page.wait_for_function(_JS_KERNEL_IDLE, timeout=RUN_ALL_TIMEOUT_S * 1000)
        self._remember_processes()
        cells = page.evaluate(_JS_CELLS)
        errors = [f"cell {i}: {c['errors']}" for i, c in enumerate(cells) if c["errors"]]
        assert not errors, f"{name} raised in the browser: {errors}"
        not_run = [i for i, c in enumerate(cells) if c["count"] is None]
        assert not not_run, f"{name}: code cells {not_run} did not run (run all took {time.perf_counter() - t0:.0f} s)"
        self.pages[name] = page
        return page

    def stop(self) -> list[int]:
        """Close the browser and stop the server by its PID; returns the pids that outlived it
        (after killing them)."""
        if self.server.poll() is None:
            self._remember_processes()
        try:
            if self.browser is not None:
                self.browser.close()
            if self.pw is not None:
                self.pw.stop()
        finally:
            if self.server.poll() is None:
                self.server.send_signal(signal.SIGTERM)       # JupyterLab shuts its kernels down, then exits
                try:
                    self.server.wait(30)
                except subprocess.TimeoutExpired:
                    self.server.kill()
                    self.server.wait(10)
        deadline = time.monotonic() + 15
        left = _alive(self.started)
        while left and time.monotonic() < deadline:
            time.sleep(0.2)
            left = _alive(self.started)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return left


_JS_KERNEL_IDLE = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.status === 'idle' && !w.sessionContext.pendingInput;
}"""

_JS_CELLS = """() => {
  const cells = window.jupyterapp.shell.currentWidget.content.model.cells, out = [];
  for (let i = 0; i < cells.length; i++) {
    const c = cells.get(i);
    if (c.type !== 'code') continue;
    const errors = c.outputs.toJSON().filter(o => o.output_type === 'error').map(o => o.ename + ': ' + o.evalue);
    out.push({count: c.executionCount, errors: errors});
  }
  return out;
}"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    chromium = _browser_or_skip()
    t0 = time.perf_counter()
    server = Lab(tmp_path_factory.mktemp("lab"), chromium)
    try:
        yield server
    finally:
        left = server.stop()
        print(f"\nbrowser tests: {time.perf_counter() - t0:.1f} s with the server up", file=sys.stderr)
        if left:
            pytest.fail(f"processes left behind by JupyterLab or the browser (now killed): {left}")


# ----------------------------------------------------------------------------- page helpers

def _output_signature(interact) -> tuple:
    """What the widget's output area shows: every image's bytes, every audio source, the text."""
    out = interact.locator(".widget-output").first
    return tuple(out.evaluate("""o => [Array.from(o.querySelectorAll('img')).map(i => i.src).join('|'),
                                       Array.from(o.querySelectorAll('audio source, audio')).map(a => a.src || '').join('|'),
                                       o.innerText]"""))


def _wait_redrawn(page, interact, before: tuple, what: str) -> tuple:
    """Wait until the output differs from ``before`` and has an image or audio again; returns it."""
    deadline = time.monotonic() + CHANGE_TIMEOUT_S
    while time.monotonic() < deadline:
        page.wait_for_function(_JS_KERNEL_IDLE, timeout=CHANGE_TIMEOUT_S * 1000)
        now = _output_signature(interact)
        if now != before and (now[0] or now[1] or not (before[0] or before[1])):
            return now
        page.wait_for_timeout(200)
    raise AssertionError(f"{what}: the widget's output did not change within {CHANGE_TIMEOUT_S} s")


def _interacts(page, name: str):
    boxes = page.locator(".widget-interact")
    expected = widget_cells(name)
    assert boxes.count() >= expected, (f"{name}: {expected} cell(s) build a widget, but the page shows "
                                      f"{boxes.count()} interactive widget(s)")
    return [boxes.nth(i) for i in range(boxes.count())]


def _slider(interact, label: str):
    s = interact.locator(".widget-slider").filter(has=interact.page.locator(".widget-label", has_text=re.compile(f"^{re.escape(label)}$")))
    assert s.count() == 1, f"no slider labelled {label!r} in the widget"
    return s.locator(".noUi-handle").first


def _press(page, interact, handle, key: str, what: str) -> tuple:
    """Focus a control, press ``key``, wait for the redraw; returns (value before, value after)."""
    handle.scroll_into_view_if_needed()
    before_value = handle.get_attribute("aria-valuenow")
    before = _output_signature(interact)
    assert before[0] or before[1] or before[2].strip(), f"{what}: the widget shows nothing before the key press"
    handle.focus()
    page.keyboard.press(key)
    _wait_redrawn(page, interact, before, what)
    return before_value, handle.get_attribute("aria-valuenow")


def _audio_durations(page) -> list[float]:
    """The duration in seconds of every <audio> in the page, once its metadata has loaded."""
    return page.evaluate("""async () => Promise.all(Array.from(document.querySelectorAll('audio')).map(a =>
        new Promise(done => {
          if (a.readyState >= 1) return done(a.duration);
          a.addEventListener('loadedmetadata', () => done(a.duration), {once: true});
          a.addEventListener('error', () => done(-1), {once: true});
          if (a.preload === 'none') a.preload = 'metadata';
          a.load();
          setTimeout(() => done(a.readyState >= 1 ? a.duration : 0), 15000);
        })))""")


# ----------------------------------------------------------------------------- tests

def test_flow_explorer_sliders_redraw_the_plot(lab):
    """Notebook 08: the vector-field explorer redraws when its time and steps sliders move."""
    page = lab.run_all("08_flow_matching_2d.ipynb")
    explorer = next((b for b in _interacts(page, "08_flow_matching_2d.ipynb")
                     if b.locator(".widget-label", has_text=re.compile("^steps$")).count()), None)
    assert explorer is not None, "08: no widget with a 'steps' slider (the vector-field explorer)"
    before_img = _output_signature(explorer)[0]
    assert before_img.startswith("data:image/png"), "08: the explorer shows no image"
    t0, t1 = _press(page, explorer, _slider(explorer, "t"), "ArrowRight", "08 explorer, time slider")
    assert float(t1) > float(t0), f"08: ArrowRight on the time slider moved it from {t0} to {t1}"
    after_t = _output_signature(explorer)[0]
    assert after_t.startswith("data:image/png") and after_t != before_img
    s0, s1 = _press(page, explorer, _slider(explorer, "steps"), "ArrowRight", "08 explorer, steps slider")
    assert int(float(s1)) == int(float(s0)) + 1, f"08: ArrowRight on the steps slider moved it from {s0} to {s1}"
    after_steps = _output_signature(explorer)[0]
    assert after_steps.startswith("data:image/png") and after_steps not in (before_img, after_t)


def test_welcome_audio_players_have_a_sound(lab):
    """Notebook 00: the tour of the data shows audio players whose sound has a non-zero duration."""
    page = lab.run_all("00_welcome.ipynb")
    durations = _audio_durations(page)
    assert durations, "00: no audio player in the page"
    assert all(d > 0 for d in durations), f"00: audio durations in seconds: {durations}"


@pytest.mark.parametrize("name", widget_notebooks())
def test_every_widget_redraws_when_moved(lab, name):
    """Every notebook with a widget: each slider, drop-down and check box, moved with the keyboard,
    changes what the widget shows; every audio player in the page has a sound."""
    page = lab.run_all(name)
    for k, box in enumerate(_interacts(page, name)):
        controls = box.locator(".noUi-handle, select, input[type=checkbox]")
        assert controls.count(), f"{name}: widget {k} has no slider, drop-down or check box"
        for j in range(controls.count()):
            c = controls.nth(j)
            tag = c.evaluate("e => e.tagName.toLowerCase() + (e.type ? ':' + e.type : '')")
            key = "ArrowDown" if tag.startswith("select") else "Space" if "checkbox" in tag else "ArrowRight"
            if key == "ArrowRight" and c.get_attribute("aria-valuenow") == c.get_attribute("aria-valuemax"):
                key = "ArrowLeft"
            _press(page, box, c, key, f"{name}, widget {k}, control {j} ({tag}, {key})")
    durations = _audio_durations(page)
    assert all(d > 0 for d in durations), f"{name}: audio durations in seconds: {durations}"


def test_a_missing_browser_skips_on_a_laptop_and_fails_in_ci(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)          # no chromium anywhere
    monkeypatch.setenv("COURSE_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="apt-get install chromium"):
        _browser_or_skip()
    monkeypatch.setenv("COURSE_REQUIRE_BROWSER", "0")
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium"):
        _browser_or_skip()
