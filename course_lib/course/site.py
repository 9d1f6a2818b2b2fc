"""The course as a static web site (``make site``): one page per executed solution notebook, and the
README's syllabus as the front page with the times measured for this build.

    python -m course_lib.course.site [--course DIR] [--out build/site] [--executed build/solutions]
                                     [--mode M] [--timeout SECONDS] [NAME...]

Each notebook of ``solutions/`` is executed headless by :mod:`course_lib.course.runner` in the mode
given (``make site`` uses ``COURSE_MODE``, lecture by default), unless ``--executed`` already holds an
executed copy that can be reused: one that ``make run`` or an earlier build wrote in the same mode,
whose run finished without an error, and whose cells are still those of ``solutions/``. Widgets draw
their static view (the runner sets ``COURSE_STATIC=1``), so the page shows what a slider would show.

Pages are made with nbconvert's HTML exporter, which ships with the course's own dependencies and
keeps each output exactly as the notebook showed it, figures and audio players included (embedded
as ``data:`` URIs, so the site is a folder of self-contained pages that opens from disk; formulas are
typeset by the site's own copy of MathJax, :mod:`course_lib.course.offline`, with no network). Jupyter
Book would add a build system and its own dependencies for a table of contents the index page gives.

Answers: the site is built from the solutions but shows each exercise as a learner gets it (the
``### BEGIN SOLUTION`` region replaced by the stub); the full answer sits below it, folded in a
``<details>`` "Show the answer" toggle, so a reader who wants to try first is not shown it. The
outputs are those of the solution.

Names (stems or numbers) limit the run to some notebooks; the index lists every notebook of
``solutions/`` and links each one that has a page in ``--out``, so a site can be built in pieces.
"""
from __future__ import annotations

import argparse
import base64
import binascii
import copy
import html
import re
import sys
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import nbformat

from course_lib.course import offline, runner
from course_lib.course.assignments import BEGIN, END, strip_solution
from course_lib.course.folder import CourseNotFound, course_folder

SHOW_ANSWER = "Show the answer"
REMOVE_INPUT = "course-site-remove-input"     # a cell tag: the page shows its outputs only
INDEX = "index.html"
NO_PAGE = ": no such page"


class SiteError(RuntimeError):
    """A notebook could not be executed or rendered; the message names each one and why, and
    ``pages`` holds the pages written for the others."""

    def __init__(self, message: str, pages: dict | None = None):
        super().__init__(message)
        self.pages = pages or {}


@dataclass
class Page:
    """One notebook's page: where it came from and how long its execution took."""
    notebook: str
    mode: str
    seconds: float
    finished: str
    cpu_cores: int | None
    reused: bool


# ----------------------------------------------------------------------------- executed notebooks

def errors(nb) -> list[str]:
    """Every error output of an executed notebook, as 'cell k: Name: message'."""
    return [f"cell {k}: {o.get('ename', '')}: {o.get('evalue', '')}".rstrip(": ")
            for k, c in enumerate(nb.cells) if c.cell_type == "code"
            for o in c.get("outputs", []) if o.get("output_type") == "error"]


def reuse_problem(executed, solution, mode: str) -> str:
    """Why an executed copy cannot stand for ``solution`` in ``mode`` ("" when it can)."""
    run = executed.metadata.get("course_run", {})
    if run.get("mode") != mode:
        return f"it was executed in {run.get('mode') or 'an unrecorded'} mode, not {mode}"
    if run.get("status") != "ok":
        return "its run did not finish"
    if [(c.cell_type, c.source) for c in executed.cells] != [(c.cell_type, c.source) for c in solution.cells]:
        return "solutions/ changed since it ran"
    if errors(executed):
        return f"it has an error output ({errors(executed)[0]})"
    if any(c.cell_type == "code" and c.source.strip() and c.execution_count is None for c in executed.cells):
        return "not every cell ran"
    return ""


# ----------------------------------------------------------------------------- answers folded away

def _without_markers(source: str) -> str:
    return "\n".join(ln for ln in source.split("\n") if not ln.strip().startswith((BEGIN, END)))


def _fold_markdown(source: str) -> str:
    """Each solution region of a markdown cell becomes a folded <details> holding the answer."""
    out, answer, inside = [], [], False
    for line in source.split("\n"):
        s = line.strip()
        if s.startswith(BEGIN):
            inside, answer = True, []
        elif s.startswith(END):
            inside = False
            out += ["", f'<details class="course-answer"><summary>{SHOW_ANSWER}</summary>', "",
                    *answer, "", "</details>", ""]
        elif inside:
            answer.append(line)
        else:
            out.append(line)
    return "\n".join(out)


def fold_answers(nb, name: str = "notebook"):
    """A copy of an executed solution notebook as the site shows it: each code cell with a solution
    region shows the learner's stub, then the whole solved cell in a "Show the answer" toggle, then
    the cell's outputs; markdown answers are folded the same way."""
    page = copy.deepcopy(nb)
    cells = []
    for k, cell in enumerate(page.cells):
        if BEGIN not in cell.source:
            cells.append(cell)
            continue
        if cell.cell_type != "code":
            strip_solution(cell.source, cell.cell_type, f"{name} cell {k}")      # raises on broken markers
            cell.source = _fold_markdown(cell.source)
            cells.append(cell)
            continue
        stub = copy.deepcopy(cell)
        stub.source = strip_solution(cell.source, "code", f"{name} cell {k}")
        stub.outputs = []
        code = _without_markers(cell.source)
        fence = "`" * max(3, 1 + max((len(r) for r in re.findall(r"`+", code)), default=0))
        answer = nbformat.v4.new_markdown_cell(
            f'<details class="course-answer"><summary>{SHOW_ANSWER}</summary>\n\n'
            f"{fence}python\n{code}\n{fence}\n\n</details>")
        cells += [stub, answer]
        if cell.outputs:
            outputs = copy.deepcopy(cell)
            outputs.metadata.setdefault("tags", []).append(REMOVE_INPUT)
            cells.append(outputs)
    page.cells = cells
    return page


# ----------------------------------------------------------------------------- pages

_CSS = """
.course-nav { font-family: system-ui, sans-serif; font-size: 14px; padding: 8px 16px;
  border-bottom: 1px solid #ddd; background: #fafafa; display: flex; gap: 18px; align-items: baseline; }
.course-nav .course-run { color: #666; margin-left: auto; }
details.course-answer { margin: 4px 0 10px 0; padding: 4px 10px; border-left: 3px solid #e0a030; }
details.course-answer > summary { cursor: pointer; font-family: system-ui, sans-serif; color: #a06000; }
"""


def _run_line(p: Page) -> str:
    cores = f" on {p.cpu_cores} CPU core{'s' if p.cpu_cores != 1 else ''}" if p.cpu_cores else ""
    return f"executed in {p.mode} mode in {p.seconds:.0f} s{cores}, {p.finished}"


def _title(stem: str) -> str:
    number, _, rest = stem.partition("_")
    return f"{number} {rest.replace('_', ' ')}" if rest else stem


def render(nb, page: Page, prev: str | None, nxt: str | None) -> str:
    """The HTML page of one executed, answer-folded notebook, with a navigation bar."""
    from nbconvert import HTMLExporter
    from traitlets.config import Config
    cfg = Config()
    cfg.TagRemovePreprocessor.enabled = True
    cfg.TagRemovePreprocessor.remove_input_tags = {REMOVE_INPUT}
    body, _ = HTMLExporter(config=cfg, **offline.exporter_options()).from_notebook_node(
        nb, resources={"metadata": {"name": f"Two World Lines · {_title(page.notebook)}"}})
    link = lambda stem, text: f'<a href="{stem}.html">{text}</a>' if stem else f"<span>{text}</span>"  # noqa: E731
    nav = (f'<nav class="course-nav"><a href="{INDEX}">Two World Lines: syllabus</a>'
           f'{link(prev, "&larr; " + html.escape(_title(prev)) if prev else "")}'
           f'{link(nxt, html.escape(_title(nxt)) + " &rarr;" if nxt else "")}'
           f'<span class="course-run">{html.escape(_run_line(page))}</span></nav>')
    body = body.replace("</head>", f"<style>{_CSS}</style>\n</head>", 1)
    # a link to another notebook of the course ("[notebook 01](01_pixels_and_samples.ipynb)") opens its page
    body = re.sub(r'href="(?:\.\./(?:notebooks|solutions)/)?([\w.-]+)\.ipynb(#[^"]*)?"',
                  lambda m: f'href="{m.group(1)}.html{m.group(2) or ""}"', body)
    return re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + "\n" + nav, body, count=1)


def _syllabus(readme: Path) -> str:
    """The README's "Syllabus" section (markdown), or a line saying there is none."""
    text = readme.read_text(encoding="utf-8") if readme.is_file() else ""
    m = re.search(r"^## Syllabus\s*$(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    return m.group(1).strip() if m else "(README.md has no Syllabus section)"


def index_page(course: Path, out: Path, pages: dict[str, Page], stems: list[str]) -> str:
    """The front page: the README's syllabus (its notebook links pointing at the pages built) and
    the times measured for the pages of this site."""
    from nbconvert.filters.markdown_mistune import markdown2html_mistune
    syllabus = _syllabus(course / "README.md")

    def relink(m):
        stem = Path(m.group(2)).stem
        return f"[{m.group(1)}]({stem}.html)" if (out / f"{stem}.html").is_file() else m.group(1)
    syllabus = re.sub(r"\[([^\]]+)\]\(notebooks/([^)\s]+\.ipynb)\)", relink, syllabus)
    rows = ["| page | mode | seconds | CPU cores | executed |", "|---|---|---|---|---|"]
    for stem in stems:
        p = pages.get(stem)
        if p is not None:
            rows.append(f"| [{_title(stem)}]({stem}.html) | {p.mode} | {p.seconds:.0f} | "
                        f"{p.cpu_cores or '?'} | {p.finished} |")
        else:
            rows.append(f"| {_title(stem)} | (no page yet) | | | |")
    text = "\n\n".join([
        "# Two World Lines",
        "An open notebook course on how images and audio are generated. These pages are the solution "
        "notebooks, executed; each exercise shows the code a learner starts from, with the answer "
        f"folded under **{SHOW_ANSWER}**. Sliders and other widgets appear in their static view: to "
        "move them, run the notebook in JupyterLab (see the README).",
        "## Syllabus", syllabus,
        "## Measured times of these pages",
        "Wall-clock time of each notebook's execution for this site, top to bottom in a fresh kernel.",
        "\n".join(rows)])
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Two World Lines</title>"
            "<style>body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; "
            "padding: 0 1em; line-height: 1.45 } table { border-collapse: collapse } "
            "td, th { border: 1px solid #ccc; padding: 4px 8px; vertical-align: top }</style>"
            f"</head><body>\n{markdown2html_mistune(text)}\n</body></html>\n")


# ----------------------------------------------------------------------------- the build

def build(names=(), course=None, out: Path | str = "build/site", executed: Path | str | None = None,
          mode: str | None = None, cell_timeout: int | None = None, log=None) -> dict[str, Page]:
    """Build the site into ``out``; returns {notebook stem: Page} for the pages written. Executes
    each chosen solution notebook unless ``executed`` holds a copy to reuse (see the module
    docstring); executed copies are written to ``executed`` (default ``<out>/executed``). Raises
    :class:`SiteError` naming every notebook that failed, after building the others."""
    from course_lib import runtime
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    mode = mode or runtime.mode()
    folder = course_folder(course)
    out = Path(out)
    executed = Path(executed) if executed is not None else out / "executed"
    out.mkdir(parents=True, exist_ok=True)
    offline.bundle_mathjax(out)                 # formulas typeset from the site's own copy of MathJax
    every = runner.notebook_paths("solutions", (), folder)
    stems = [p.stem for p in every]
    chosen = runner.notebook_paths("solutions", names, folder)
    pages, pages_before, failed = {}, {}, []
    for path in chosen:
        solution = nbformat.read(path, as_version=4)
        copy_path = executed / path.name
        why = "no executed copy"
        if copy_path.is_file():
            done = nbformat.read(copy_path, as_version=4)
            why = reuse_problem(done, solution, mode)
        if why:
            log(f"{path.stem}: executing in {mode} mode ({why} in {executed}) ...")
            try:
                runner.execute(path, mode, out_dir=executed, cell_timeout=cell_timeout)
            except Exception as e:              # a failed or timed-out cell: report, go on
                failed.append(f"{path.stem}: {runner.error_line(e)}")
                log(f"  failed: {failed[-1]}")
                continue
            done = nbformat.read(copy_path, as_version=4)
        if errors(done):
            failed.append(f"{path.stem}: {errors(done)[0]}")
            continue
        run = done.metadata["course_run"]
        pages[path.stem] = Page(path.stem, run["mode"], run["seconds"], run.get("finished", ""),
                                run.get("cpu_cores"), reused=not why)
        log(f"{path.stem}: {'reused' if not why else 'executed'}, {run['seconds']:.1f} s in {run['mode']} mode")
    # a page of an earlier build (built in pieces) keeps its line in the index
    for stem in stems:
        earlier = executed / f"{stem}.ipynb"
        if stem not in pages and (out / f"{stem}.html").is_file() and earlier.is_file():
            run = nbformat.read(earlier, as_version=4).metadata.get("course_run", {})
            if run.get("status") == "ok":
                pages_before[stem] = Page(stem, run["mode"], run["seconds"], run.get("finished", ""),
                                          run.get("cpu_cores"), reused=True)
    linked = [s for s in stems if s in pages or s in pages_before]
    for path in chosen:
        if path.stem not in pages:
            continue
        k = linked.index(path.stem)
        done = nbformat.read(executed / path.name, as_version=4)
        body = render(fold_answers(done, path.name), pages[path.stem],
                      linked[k - 1] if k > 0 else None, linked[k + 1] if k + 1 < len(linked) else None)
        (out / f"{path.stem}.html").write_text(body, encoding="utf-8")
    (out / INDEX).write_text(index_page(folder, out, {**pages_before, **pages}, stems), encoding="utf-8")
    if failed:
        raise SiteError("; ".join(failed), pages)
    return pages


# ----------------------------------------------------------------------------- checking a built site

_MAGIC = {"image/png": b"\x89PNG", "image/jpeg": b"\xff\xd8", "image/gif": b"GIF8", "audio/wav": b"RIFF",
          "audio/x-wav": b"RIFF", "audio/mpeg": b"", "audio/ogg": b"OggS", "image/svg+xml": b""}


class _Media(HTMLParser):
    def __init__(self):
        super().__init__()
        self.found = []                         # (tag, attribute, value)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("img", "audio", "source", "video", "script") and "src" in a:
            self.found.append((tag, "src", a["src"] or ""))
        if tag == "a" and a.get("href") and not a["href"].startswith(("#", "http://", "https://", "mailto:")):
            self.found.append((tag, "href", a["href"]))


def media(page: Path) -> list[tuple[str, str, str]]:
    """Every (tag, attribute, value) of a page's images, audio sources, scripts and local links."""
    p = _Media()
    p.feed(page.read_text(encoding="utf-8"))
    return p.found


def problems(site: Path | str) -> list[str]:
    """What does not resolve in a built site: an image, audio source or script that is neither a
    well-formed ``data:`` URI of its type nor a file of the site, or a local link to a missing file."""
    site = Path(site)
    found = []
    for page in sorted(site.glob("*.html")):
        for tag, attr, value in media(page):
            where = f"{page.name}: <{tag} {attr}={value[:60]!r}>"
            if attr == "href":
                target = value.split("#")[0]
                if target and not (site / target).is_file():
                    found.append(f"{where}{NO_PAGE}")
                continue
            if value.startswith("data:"):
                head, _, data = value.partition(",")
                kind = head[5:].split(";")[0]
                try:
                    raw = base64.b64decode(data, validate=True) if ";base64" in head else data.encode()
                except (binascii.Error, ValueError):
                    found.append(f"{where}: its base64 data does not decode")
                    continue
                if not raw or not raw.startswith(_MAGIC.get(kind, b"")):
                    found.append(f"{where}: empty or not a {kind or 'known'} file")
            elif value.startswith(("http://", "https://")) or not value:
                found.append(f"{where}: not part of the site (a page loads nothing from the network)")
            elif not (site / value.split("?")[0]).is_file():
                found.append(f"{where}: no such file")
    return found


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m course_lib.course.site", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", help="notebook names or numbers (default: all)")
    p.add_argument("--course", type=Path, default=None,
                   help="the course folder, holding solutions/ (default: found from the current directory)")
    p.add_argument("--out", type=Path, default=Path("build/site"), help="where the pages go (default build/site)")
    p.add_argument("--executed", type=Path, default=None,
                   help="executed notebooks to reuse and to write (default <out>/executed; make site: build/solutions)")
    p.add_argument("--mode", choices=tuple(runner.CELL_TIMEOUT))
    p.add_argument("--timeout", type=int, default=None, help="seconds one cell may run (default per mode)")
    args = p.parse_args(argv)
    if args.timeout is not None and args.timeout < 1:
        p.error(f"--timeout: expected a number of seconds >= 1, got {args.timeout}")
    t0 = time.perf_counter()
    try:
        pages = build(args.names, args.course, args.out, args.executed, args.mode, args.timeout)
        status = 0
    except (CourseNotFound, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except SiteError as e:
        print(f"error: these notebooks have no page: {e}", file=sys.stderr)
        pages, status = e.pages, 1
    bad = problems(args.out)
    # built in pieces (names given), a link to a page not built yet is expected
    pending = [b for b in bad if args.names and b.endswith(NO_PAGE)]
    for line in bad:
        print(f"{'not built yet' if line in pending else 'does not resolve'}: {line}", file=sys.stderr)
    print(f"site: {args.out / INDEX} ({len(pages)} page(s) written in {time.perf_counter() - t0:.1f} s)")
    return 1 if len(bad) > len(pending) else status


if __name__ == "__main__":
    sys.exit(main())
