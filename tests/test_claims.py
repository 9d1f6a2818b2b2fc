"""A notebook says only what its run shows (issue 15).

A sentence that states a result prints the number from the run (a code cell that displays
``IPython.display.Markdown`` built from the measured values) or is true in every mode and seed. So the
markdown cells of the solution notebooks must not hard-code a measured figure: a number followed by
dB, %, bits/dim, bits per sample, steps/s, kbps, "x the floor", "times real time", or a PSNR / SNR /
SWD / TV / perplexity / accuracy followed by a number. What the scanner flags that is a definition,
not a result ("80% train", "10% of the time", EnCodec's "6 kbps"), is listed per notebook below.
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((REPO / "solutions").glob("*.ipynb"))

_NUM = r"(?<![\w.])[~≈]?\d(?:[\d,]*\d)?(?:\.\d+)?"
MEASURED = re.compile(
    _NUM + r"\s*(?:dB\b|%|bits?/dim\b|bits? per (?:dim\w*|pixel|sample)\b|steps?/s\b|steps? per second\b|"
    r"kbps\b|[x×]\s*(?:the )?(?:noise )?floor\b|(?:[x×]|times) (?:faster than |slower than )?real[ -]time\b)"
    r"|(?:a few|several|many) times (?:faster than )?real[ -]time\b"
    r"|\b(?:PSNR|SNR|SWD|TV|perplexity|accuracy|bits/dim)\b"
    r"(?:\s+(?:of|is|was|at|about|around|near|reaches|reached|stays?|stopped|=|~|≈))*\s*[=:]?\s*" + _NUM,
    re.IGNORECASE)
MATH = re.compile(r"\$\$.*?\$\$|\$[^$]*\$", re.S)      # formulas state definitions, not results

# Definitions, not results: notebook -> the exact phrases the scanner may find in its markdown.
ALLOWED: dict[str, list[str]] = {
    "00_welcome": ["80%", "20%"],                                   # the fixed train / test split
    "01_pixels_and_samples": ["4.09 bits per pixel",                # log2 17, the uniform baseline
                              "10%"],                               # chance among 10 digits
    "02_tokens": ["10%"],                                           # the restart threshold of the EMA VQ
    "03_residual_and_bitwise_tokens": ["6 kbps", "1.1 kbps", "256 kbps"],   # bitrates from the specs
    "04_chaining_tokens": ["10%"],                                  # the null-prompt rate of CFG training
    "05_maskgit": ["10%"],                                          # the null-prompt rate of CFG training
    "07_limit_of_tokens": ["10%"],                                  # the null-prompt rate of training
    "08_flow_matching_2d": ["10%"],                                 # the label-drop rate of CFG training
    "10_meanflow": ["75%", "10%"],                                  # the paper's share of b = a; the null-prompt rate
    "09_generation_heads": ["10%"],                                 # the null-prompt rate of CFG training
}


def measured_figures(markdown: str) -> list[str]:
    """The phrases of a markdown cell that look like a hard-coded measured figure."""
    return [m.group(0) for m in MEASURED.finditer(MATH.sub(" ", markdown))]


def test_the_scanner_finds_hard_coded_results_and_passes_definitions():
    made_up = ("One token already beats the average image (about 18.5 dB against 15.6), the model reaches\n"
               "1.78 bits/dim, trains at 14 steps/s and generates at a few times real time; samples land at\n"
               "1.6x the floor, the perplexity of about 9, a PSNR of 19.9, accuracy 94%, 0.06x real time.")
    found = measured_figures(made_up)
    for phrase in ["18.5 dB", "1.78 bits/dim", "14 steps/s", "a few times real time", "1.6x the floor",
                   "perplexity of about 9", "PSNR of 19.9", "accuracy 94", "0.06x real time"]:
        assert any(phrase in f for f in found), (phrase, found)
    assert "perplexity of about 9" in found                       # no trailing punctuation in a phrase
    definitions = ("At 16 kHz with 16-bit samples, 4x4 patches, a codebook of 256 codes, 8 levels, "
                   "$x_t = (1 - t) x_0 + t x_1$, $$\\log_2 17 \\approx 4.09$$, notebook 08, 2^d codes.")
    assert measured_figures(definitions) == []


def test_every_solution_notebook_is_scanned():
    names = {p.stem for p in SOLUTIONS}
    assert {"00_welcome", "01_pixels_and_samples", "02_tokens", "03_residual_and_bitwise_tokens"} <= names
    assert set(ALLOWED) <= names, f"ALLOWED names notebooks that do not exist: {set(ALLOWED) - names}"


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_markdown_hard_codes_no_measured_figure(path):
    nb = nbformat.read(path, as_version=4)
    allowed = ALLOWED.get(path.stem, [])
    found, used = [], set()
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        for phrase in measured_figures(cell.source):
            if phrase in allowed:
                used.add(phrase)
            else:
                found.append(f"cell {i}: {phrase!r}")
    assert not found, (f"{path.name}: markdown states measured figures; print them from the run "
                       f"(display(Markdown(...)) built from the values) or, for a definition, add the "
                       f"phrase to ALLOWED[{path.stem!r}] in tests/test_claims.py: " + "; ".join(found))
    stale = sorted(set(allowed) - used)
    assert not stale, f"{path.name}: ALLOWED lists phrases the notebook no longer has; remove {stale}"


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_the_mode_switch_advice_works_where_it_is_given(path):
    """The first code cell imports runtime before anything else, so its commented
    ``runtime.set_mode("quick")`` line works when uncommented, before the budgets are read."""
    nb = nbformat.read(path, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code").source
    lines = [line.strip() for line in first.splitlines() if line.strip()]
    assert lines[0] == "from course_lib import runtime", f"{path.name}: first code line is {lines[0]!r}"
    assert lines[1].startswith('# runtime.set_mode("quick")'), f"{path.name}: second line is {lines[1]!r}"
    assert "set_mode" not in "\n".join(lines[2:]) and "budget(" in first.split("set_mode")[1]


# ------------------------------------------------------------------ homework.summary counts every exercise

def test_summary_of_a_notebook_counts_exercises_not_yet_checked(monkeypatch, capsys):
    from course_lib.course import assignments, homework
    path = REPO / "solutions" / "02_tokens.ipynb"
    names = assignments.exercises_in(path)
    assert len(names) >= 2
    monkeypatch.setattr(homework, "_RESULTS", {})
    monkeypatch.chdir(REPO / "notebooks")                  # where a learner's kernel runs
    homework.check(names[0], homework.reference(names[0]))   # one exercise checked (as "not attempted")
    results = homework.summary("02_tokens")
    out = capsys.readouterr().out
    assert [r.name for r in results] == names
    total = sum(homework.get(n).points for n in names)
    assert f"score: 0/{total}" in out and "its check cell has not run yet" in out


def test_summary_says_when_it_cannot_find_the_notebook(monkeypatch, capsys, tmp_path):
    from course_lib.course import homework
    monkeypatch.setattr(homework, "_RESULTS", {})
    monkeypatch.chdir(tmp_path)                            # no course folder here
    homework.summary("02_tokens")
    out = capsys.readouterr().out
    assert "score: 0/0" in out and "could not list 02_tokens's exercises" in out
