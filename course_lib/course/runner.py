"""Execute notebooks headless, time them, and keep the executed copies (``make run``).

    python -m course_lib.course.runner [--course DIR] [--source solutions|notebooks] [--out build]
                                       [--html] [--mode M] [--timeout SECONDS] [NAME...]

The notebooks are those of the course folder: ``--course DIR``, or else the nearest folder at or above
the current directory that holds ``solutions/`` (:func:`course_lib.course.folder.course_folder`).
Each notebook runs in a fresh kernel of this environment, in the notebook's own folder, with
``COURSE_MODE`` set and ``COURSE_STATIC=1`` (widgets draw their static view, which an exported page
can show); the executed copy records how it ran in its metadata (``course_run``: mode, seconds,
status, date, CPU cores). A per-cell timeout (:data:`CELL_TIMEOUT` of the mode, or ``--timeout``)
stops a hung cell instead of waiting for ever. A notebook that fails is reported and the run goes on with the next; the
run ends with a table (notebook, status, seconds, the error's first line) and exits 1 if any failed.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

from course_lib.course.folder import CourseNotFound, course_folder

SOURCES = ("solutions", "notebooks")


def notebook_paths(source: str = "solutions", names=(),
                   course: str | os.PathLike | None = None) -> list[Path]:
    """The notebooks of ``<course>/<source>/``, sorted; ``names`` picks some by stem or number."""
    if source not in SOURCES:
        raise ValueError(f"source must be 'solutions' or 'notebooks', got {source!r}")
    folder = course_folder(course) / source
    paths = sorted(folder.glob("*.ipynb"))
    if names:
        chosen = [p for p in paths if p.stem in names or p.stem.split("_")[0] in names]
        unknown = [n for n in names if not any(p.stem == n or p.stem.split("_")[0] == n for p in paths)]
        if unknown:
            raise ValueError(f"no notebook named {', '.join(unknown)} in {source}/: expected one of "
                             f"{', '.join(p.stem for p in paths)}")
        paths = chosen
    return paths


# Seconds one cell may run before the notebook is stopped, per mode: generous, so that a laptop with
# other work running still finishes (lecture cells take up to ~2 minutes on an idle 2-core CPU).
CELL_TIMEOUT = {"quick": 600, "lecture": 3600, "full": 4 * 3600}


@dataclass
class Run:
    """How one notebook ran: ``status`` is "ok" or "failed"; ``error`` is the first line of what
    stopped it (empty when it ran to the end)."""
    notebook: str
    status: str
    seconds: float
    error: str = ""


def error_line(err: BaseException) -> str:
    """The line that names what went wrong: for a failed cell, the learner-visible exception."""
    if getattr(err, "ename", None):                       # nbclient's CellExecutionError
        return f"{err.ename}: {err.evalue}".strip()
    text = str(err).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    named = [ln for ln in lines if ln.split(":")[0].endswith(("Error", "Exception", "Interrupt", "Timeout"))]
    line = (named[-1] if named else (lines[0] if lines else type(err).__name__))
    return f"{type(err).__name__}: {line}" if not line.startswith(type(err).__name__) else line


def _cores() -> int:
    """CPU cores this process may use (a container's share, not the host's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def execute(path: Path, mode: str, out_dir: Path | None = None, html: bool = False,
            cell_timeout: int | None = None) -> float:
    """Run one notebook top to bottom; returns wall seconds. Raises if a cell fails or runs longer
    than ``cell_timeout`` seconds (default: :data:`CELL_TIMEOUT` of the mode). The executed copy
    (as far as it got) is written to ``out_dir`` either way."""
    from nbclient import NotebookClient
    nb = nbformat.read(path, as_version=4)
    env_before = {k: os.environ.get(k) for k in ("COURSE_MODE", "COURSE_STATIC")}
    os.environ.update(COURSE_MODE=mode, COURSE_STATIC="1")
    t0 = time.perf_counter()
    status = "failed"
    try:
        NotebookClient(nb, timeout=cell_timeout or CELL_TIMEOUT[mode], kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
        status = "ok"
    finally:
        seconds = time.perf_counter() - t0
        # how this copy was made, for the course site's "measured times" (course_lib.course.site)
        nb.metadata["course_run"] = {"mode": mode, "seconds": round(seconds, 1), "status": status,
                                     "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                     "cpu_cores": _cores()}
        for k, v in env_before.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, out_dir / path.name)
            if html:
                from nbconvert import HTMLExporter
                from course_lib.course import offline        # MathJax from a local copy: no network
                body, _ = HTMLExporter(**offline.exporter_options()).from_notebook_node(nb)
                (out_dir / f"{path.stem}.html").write_text(body, encoding="utf-8")
                offline.bundle_mathjax(out_dir)
    return seconds


def run_each(names=(), mode: str | None = None, source: str = "solutions", out: Path | None = None,
             html: bool = False, course: str | os.PathLike | None = None,
             cell_timeout: int | None = None) -> list[Run]:
    """Execute the chosen notebooks one after another; a notebook that fails is recorded and the
    run goes on with the next. Returns one :class:`Run` per notebook."""
    from course_lib import runtime
    mode = mode or runtime.mode()
    runs = []
    for path in notebook_paths(source, names, course):
        print(f"running {source}/{path.name} in {mode} mode ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            seconds = execute(path, mode, out / source if out else None, html, cell_timeout)
            runs.append(Run(path.stem, "ok", round(seconds, 1)))
        except Exception as e:  # a failed or timed-out cell: report it, go on with the next notebook
            runs.append(Run(path.stem, "failed", round(time.perf_counter() - t0, 1), error_line(e)))
        r = runs[-1]
        print(f"  {r.status} {r.seconds:.1f} s" + (f": {r.error}" if r.error else ""), file=sys.stderr, flush=True)
    return runs


def run_all(names=(), mode: str | None = None, source: str = "solutions", out: Path | None = None,
            html: bool = False, course: str | os.PathLike | None = None,
            cell_timeout: int | None = None) -> dict:
    """Execute the chosen notebooks; returns {notebook stem: wall seconds}. Raises RuntimeError
    naming every notebook that failed (after running all of them)."""
    runs = run_each(names, mode, source, out, html, course, cell_timeout)
    failed = [r for r in runs if r.status != "ok"]
    if failed:
        raise RuntimeError("; ".join(f"{r.notebook} failed: {r.error}" for r in failed))
    return {r.notebook: r.seconds for r in runs}


def table(runs: list[Run]) -> str:
    """The run as a plain-text table: notebook, status, seconds, the error's first line."""
    rows = [("notebook", "status", "seconds", "error")]
    rows += [(r.notebook, r.status, f"{r.seconds:.1f}", r.error[:100]) for r in runs]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(("  ".join(c.ljust(w) for c, w in zip(row[:3], widths)) + "  " + row[3]).rstrip()
                     for row in rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m course_lib.course.runner", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", help="notebook names or numbers (default: all)")
    p.add_argument("--course", type=Path, default=None,
                   help="the course folder, holding solutions/ (default: found from the current directory)")
    p.add_argument("--source", default="solutions", choices=SOURCES)
    p.add_argument("--out", type=Path, default=None, help="write executed notebooks here")
    p.add_argument("--html", action="store_true", help="also export each executed notebook to HTML")
    p.add_argument("--mode", choices=tuple(CELL_TIMEOUT))
    p.add_argument("--timeout", type=int, default=None,
                   help="seconds one cell may run (default per mode: " +
                        ", ".join(f"{m} {t}" for m, t in CELL_TIMEOUT.items()) + ")")
    args = p.parse_args(argv)
    if args.timeout is not None and args.timeout < 1:
        p.error(f"--timeout: expected a number of seconds >= 1, got {args.timeout}")
    try:
        runs = run_each(args.names, args.mode, args.source, args.out, args.html, args.course, args.timeout)
    except (CourseNotFound, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(table(runs))
    print(f"total {sum(r.seconds for r in runs):.1f} s; {sum(r.status != 'ok' for r in runs)} failed")
    return 0 if all(r.status == "ok" for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
