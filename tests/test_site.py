"""`make site` (course_lib.course.site): built from a small course folder executed in quick mode; and
a page of the course itself opened in headless Chromium with the network cut off."""
import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from course_lib.course import offline, site

REPO = Path(__file__).resolve().parent.parent

EXERCISE = '''def double(x):
    """Twice x."""
    ### BEGIN SOLUTION
    return 2 * x   # the-answer-line
    ### END SOLUTION'''

FIGURE = '''import matplotlib.pyplot as plt
plt.plot([0, 1, 2], [0, 1, 4]); plt.title("a figure"); plt.show()'''

AUDIO = '''import numpy as np
from IPython.display import Audio, display
display(Audio(np.sin(np.linspace(0, 800, 8000)), rate=8000))'''

WIDGET = '''from course_lib import viz
import matplotlib.pyplot as plt
def draw(a=1):
    plt.plot([0, a]); plt.title(f"a = {a}"); plt.show()
viz.interact(draw, static=[{"a": 1}, {"a": 2}], a=(0, 3))'''

README = """# A course

## Syllabus

| # | notebook | what |
|---|---|---|
| 01 | [first](notebooks/01_first.ipynb) | a figure, a sound, an exercise |
| 02 | [second](notebooks/02_second.ipynb) | text |

## Next section
not the syllabus
"""


def _course(tmp_path, extra=None):
    (tmp_path / "solutions").mkdir()
    (tmp_path / "README.md").write_text(README)
    notebooks = {
        "01_first": [new_markdown_cell("# 01 · First\nThen [the second](02_second.ipynb)."),
                     new_code_cell(EXERCISE), new_code_cell("print(double(21))"),
                     new_code_cell(FIGURE), new_code_cell(AUDIO), new_code_cell(WIDGET)],
        "02_second": [new_markdown_cell("# 02 · Second"), new_code_cell("print('plain text')")]}
    notebooks.update(extra or {})
    for name, cells in notebooks.items():
        nbformat.write(new_notebook(cells=cells), tmp_path / "solutions" / f"{name}.ipynb")
    return tmp_path


def _tags(page, tag):
    return [m for m in site.media(page) if m[0] == tag]


def test_the_site_has_one_page_per_notebook_with_every_figure_and_sound(tmp_path):
    course = _course(tmp_path)
    out, executed = tmp_path / "site", tmp_path / "executed"
    pages = site.build(course=course, out=out, executed=executed, mode="quick", log=lambda m: None)
    assert sorted(pages) == ["01_first", "02_second"]
    assert sorted(p.name for p in out.glob("*.html")) == ["01_first.html", "02_second.html", "index.html"]
    assert site.problems(out) == []                     # every <img>, <audio>, <script>, link resolves
    first = out / "01_first.html"
    text = first.read_text()
    assert f'<script src="{offline.URL}"' in text and (out / offline.FOLDER / "MathJax.js").is_file()
    assert not re.search(r'<script[^>]+src="(https?:)?//', text)         # no script from the network
    assert len(_tags(first, "img")) >= 3                      # the figure and the widget's two static views
    sources = [m for m in _tags(first, "source") + _tags(first, "audio") if m[2].startswith("data:audio/wav")]
    assert sources, "the audio player is missing"
    assert "the second" in text and 'href="02_second.html"' in text     # notebook links open pages
    assert "most recent call last" not in text and not re.search(r"\b(?!NotImplemented)\w+Error\b(:|</span>)", text)
    assert "42" in text                                       # the solution's output is shown
    # the answer is folded under the toggle; the learner's stub comes first
    stub, answer = text.index("NotImplementedError"), text.index("the-answer-line")
    details = text.rindex("<details", 0, answer)
    assert stub < details < answer < text.index("</details>", answer)
    assert site.SHOW_ANSWER in text[details:answer]
    index = (out / "index.html").read_text()
    assert 'href="01_first.html"' in index and 'href="02_second.html"' in index
    assert "not the syllabus" not in index                    # only the README's syllabus section
    assert re.search(r"02 second</a></td>\s*<td>quick</td>", index)       # measured times per page
    assert pages["01_first"].seconds > 0 and not pages["01_first"].reused

    # a second build reuses the executed copies; a changed notebook runs again
    again = site.build(course=course, out=out, executed=executed, mode="quick", log=lambda m: None)
    assert all(p.reused for p in again.values())
    nb = nbformat.read(course / "solutions" / "02_second.ipynb", as_version=4)
    nb.cells[1].source = "print('changed')"
    nbformat.write(nb, course / "solutions" / "02_second.ipynb")
    third = site.build(["02"], course=course, out=out, executed=executed, mode="quick", log=lambda m: None)
    assert list(third) == ["02_second"] and not third["02_second"].reused
    assert "changed" in (out / "02_second.html").read_text()
    assert 'href="01_first.html"' in (out / "index.html").read_text()     # built in pieces, still linked
    # an executed copy of another mode is not reused
    assert site.reuse_problem(nbformat.read(executed / "01_first.ipynb", as_version=4),
                              nbformat.read(course / "solutions" / "01_first.ipynb", as_version=4),
                              "lecture").startswith("it was executed in quick mode")


def test_a_notebook_that_fails_has_no_page_and_is_named(tmp_path):
    course = _course(tmp_path, {"03_broken": [new_code_cell("x = 1"), new_code_cell("1 / 0")]})
    out = tmp_path / "site"
    with pytest.raises(site.SiteError, match="03_broken: ZeroDivisionError"):
        site.build(["02", "03"], course=course, out=out, executed=tmp_path / "ex", mode="quick", log=lambda m: None)
    assert (out / "02_second.html").is_file() and not (out / "03_broken.html").exists()


def test_problems_finds_what_does_not_resolve(tmp_path):
    (tmp_path / "fine.png").write_bytes(b"\x89PNG....")
    (tmp_path / "fine.js").write_text("")
    (tmp_path / "page.html").write_text(
        '<script src="fine.js?config=x"></script><script src="https://cdn.example.org/mathjax.js"></script>'
        '<img src="fine.png"><img src="data:image/png;base64,iVBORw0KGgo=">'            # fine
        '<img src="data:image/png;base64,AAAA"><audio src="missing.wav"></audio>'      # not a PNG; missing
        '<audio><source src="data:audio/wav;base64,!!" type="audio/wav"></audio>'     # does not decode
        '<img src="https://example.com/x.png"><a href="nope.html">x</a><a href="#top">y</a>')
    found = site.problems(tmp_path)
    assert len(found) == 6, found
    assert any("not a image/png" in f for f in found) and any("missing.wav" in f for f in found)
    assert any("does not decode" in f for f in found) and any("example.com" in f for f in found)
    assert any("cdn.example.org" in f for f in found)
    assert any("nope.html" in f for f in found)


def test_fold_answers_keeps_the_stub_and_folds_markdown_answers():
    nb = new_notebook(cells=[new_code_cell(EXERCISE, outputs=[nbformat.v4.new_output("stream", text="hi\n")]),
                             new_markdown_cell("Why?\n### BEGIN SOLUTION\nBecause.\n### END SOLUTION")])
    page = site.fold_answers(nb)
    assert [c.cell_type for c in page.cells] == ["code", "markdown", "code", "markdown"]
    assert "raise NotImplementedError()" in page.cells[0].source and page.cells[0].outputs == []
    assert "return 2 * x" in page.cells[1].source and "BEGIN SOLUTION" not in page.cells[1].source
    assert site.REMOVE_INPUT in page.cells[2].metadata["tags"] and page.cells[2].outputs
    assert "<details" in page.cells[3].source and "Because." in page.cells[3].source


# ----------------------------------------------------------------------------- offline, in a browser

_JS_MATH = """() => {
  const markdown = Array.from(document.querySelectorAll('.jp-RenderedMarkdown')).map(e => {
    const c = e.cloneNode(true);
    c.querySelectorAll('code, pre, script').forEach(x => x.remove());
    return c.innerText;
  });
  return {typeset: document.querySelectorAll('.MathJax').length,
          sources: document.querySelectorAll('script[type^="math/tex"]').length,
          errors: document.querySelectorAll('.MathJax_Error').length
                  + (document.body.innerText.includes('Math Processing Error') ? 1 : 0),
          fonts: Array.from(document.fonts).filter(f => f.status === 'loaded').map(f => f.family),
          markdown: markdown.join('\\n')};
}"""
TEX_LEFT = re.compile(r"\$[^$\n]+\$|\\\(|\\\[")      # $...$, $$...$$, \( or \[ in the visible text


def open_offline(browser, path: Path):
    """Open a page from disk with every request outside ``file://`` aborted, and wait until MathJax
    (if it loaded) has typeset the page. Returns (what the page shows, the URLs it asked for outside
    ``file://``, the files it could not load)."""
    page = browser.new_page()
    outside, missing = [], []
    page.on("request", lambda r: None if r.url.startswith(("file:", "data:", "about:")) else outside.append(r.url))
    page.on("websocket", lambda ws: outside.append(ws.url))
    page.on("requestfailed", lambda r: missing.append(r.url) if r.url.startswith("file:") else None)
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:") else route.abort())
    page.goto(path.as_uri(), wait_until="load")
    if page.evaluate("() => !!(window.MathJax && window.MathJax.Hub)"):      # MathJax.js loaded
        page.wait_for_function("() => window.MathJax.isReady", timeout=60_000)
        page.evaluate("() => new Promise(done => MathJax.Hub.Queue(() => done(true)))")   # after typesetting
    shown = page.evaluate(_JS_MATH)
    page.close()
    return shown, outside, missing


def assert_typeset_offline(name: str, shown: dict, outside: list, missing: list) -> None:
    assert outside == [], f"{name} asked for: {outside}"
    assert missing == [], f"{name}: files of the site that did not load: {missing}"
    assert shown["typeset"] > 0 and shown["typeset"] == shown["sources"], shown      # every formula typeset
    assert shown["errors"] == 0, shown
    assert TEX_LEFT.findall(shown["markdown"]) == [], f"{name}: TeX source left in the markdown cells"
    assert any(f.startswith("STIXMathJax") for f in shown["fonts"]), f"{name}: MathJax's fonts: {shown['fonts']}"


@pytest.mark.browser
def test_a_course_page_typesets_its_formulas_with_no_network(tmp_path):
    """Notebook 00 built in quick mode, opened from disk in headless Chromium with every request
    outside file:// blocked: its formulas are typeset by the site's MathJax and nothing is fetched.
    So is every formula of the course (a page of all the solutions' markdown cells, not executed).
    The same notebook on nbconvert's stock template (MathJax from a CDN) fails these checks."""
    from nbconvert import HTMLExporter
    from playwright.sync_api import sync_playwright

    from tests.test_browser import CHROMIUM_FLAGS, _browser_or_skip
    chromium = _browser_or_skip()
    out, executed = tmp_path / "site", tmp_path / "executed"
    (stem,) = site.build(["00"], course=REPO, out=out, executed=executed, mode="quick", log=lambda m: None)
    assert [b for b in site.problems(out) if not b.endswith(site.NO_PAGE)] == []   # links to pages not built
    run = nbformat.read(executed / f"{stem}.ipynb", as_version=4)
    stock_page = HTMLExporter(template_name="lab").from_notebook_node(run)[0]       # MathJax from a CDN
    (out / "stock_template.html").write_text(stock_page, encoding="utf-8")
    every = new_notebook(cells=[c for p in sorted((REPO / "solutions").glob("*.ipynb"))
                                for c in nbformat.read(p, as_version=4).cells if c.cell_type == "markdown"])
    page = site.Page("every_formula", "quick", 0.0, "", None, reused=False)
    every_page = site.render(site.fold_answers(every), page, None, None)
    (out / "every_formula.html").write_text(every_page, encoding="utf-8")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            seen = {name: open_offline(browser, out / name)
                    for name in (f"{stem}.html", "every_formula.html", "stock_template.html")}
        finally:
            browser.close()
    assert_typeset_offline(f"{stem}.html", *seen[f"{stem}.html"])
    assert_typeset_offline("a page of every markdown cell of solutions/", *seen["every_formula.html"])
    # the checks fail where formulas need the network
    stock, outside, _ = seen["stock_template.html"]
    assert outside and stock["typeset"] == 0 and TEX_LEFT.findall(stock["markdown"])
