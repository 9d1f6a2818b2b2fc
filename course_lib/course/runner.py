"""Execute notebooks headless, time them, and keep the executed copies (``make run``).

    python -m course_lib.course.runner [--course DIR] [--source solutions|notebooks] [--out build]
                                       [--html] [--mode M] [NAME...]

The notebooks are those of the course folder: ``--course DIR``, or else the nearest folder at or above
the current directory that holds ``solutions/`` (:func:`course_lib.course.folder.course_folder`).
Each notebook runs in a fresh kernel of this environment, in the notebook's own folder, with
``COURSE_MODE`` set and ``COURSE_STATIC=1`` (widgets draw their static view, which an exported page
can show). A per-cell timeout stops a hung cell instead of waiting for ever.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
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


def execute(path: Path, mode: str, out_dir: Path | None = None, html: bool = False,
            cell_timeout: int = 900) -> float:
    """Run one notebook top to bottom; returns wall seconds. Raises if a cell fails."""
    from nbclient import NotebookClient
    nb = nbformat.read(path, as_version=4)
    env_before = {k: os.environ.get(k) for k in ("COURSE_MODE", "COURSE_STATIC")}
    os.environ.update(COURSE_MODE=mode, COURSE_STATIC="1")
    t0 = time.perf_counter()
    try:
        NotebookClient(nb, timeout=cell_timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        seconds = time.perf_counter() - t0
        for k, v in env_before.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, out_dir / path.name)
            if html:
                from nbconvert import HTMLExporter
                body, _ = HTMLExporter().from_notebook_node(nb)
                (out_dir / f"{path.stem}.html").write_text(body, encoding="utf-8")
    return seconds


def run_all(names=(), mode: str | None = None, source: str = "solutions", out: Path | None = None,
            html: bool = False, course: str | os.PathLike | None = None) -> dict:
    """Execute the chosen notebooks of the course folder; returns {notebook stem: wall seconds}."""
    from course_lib import runtime
    mode = mode or runtime.mode()
    seconds = {}
    for path in notebook_paths(source, names, course):
        print(f"running {source}/{path.name} in {mode} mode ...", file=sys.stderr, flush=True)
        seconds[path.stem] = round(execute(path, mode, out / source if out else None, html), 1)
        print(f"  {seconds[path.stem]:.1f} s", file=sys.stderr, flush=True)
    return seconds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m course_lib.course.runner", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", help="notebook names or numbers (default: all)")
    p.add_argument("--course", type=Path, default=None,
                   help="the course folder, holding solutions/ (default: found from the current directory)")
    p.add_argument("--source", default="solutions", choices=SOURCES)
    p.add_argument("--out", type=Path, default=None, help="write executed notebooks here")
    p.add_argument("--html", action="store_true", help="also export each executed notebook to HTML")
    p.add_argument("--mode", choices=("quick", "lecture", "full"))
    args = p.parse_args(argv)
    try:
        seconds = run_all(args.names, args.mode, args.source, args.out, args.html, args.course)
    except (CourseNotFound, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"seconds": seconds, "total": round(sum(seconds.values()), 1)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
