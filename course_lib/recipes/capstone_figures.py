"""Notebook 11's pictures and words of the frontier (:mod:`course_lib.recipes.capstone` measures it).

* :func:`frontier_figure`: Fréchet distance (log) and prompt accuracy against sequential network
  evaluations, seconds per image and parameters (all log), one colour and marker per family, error
  bars over the seeds, the Fréchet floor and each tokenizer's ceiling as horizontal lines;
* :func:`frontier_table`: the same numbers as a markdown table;
* :func:`sample_grid_figure`: every generator's samples of one prompt, side by side;
* :func:`reading`: sentences that read the chart, each computed from the numbers, with its words
  ("better", "worse", "closely") chosen from them, so that it stays true whichever way a run goes.

Everything here reads the plain dicts :func:`~course_lib.recipes.capstone.frontier` returns (rows
with name, family, prompt_accuracy, frechet, their ``_std``, clean, sequential_evaluations,
seconds_per_image_batch / _alone, params), so a benchmark's JSON can be drawn again.
"""
from __future__ import annotations

import math
import statistics

import matplotlib.pyplot as plt

from course_lib import viz

FAMILIES = {                          # colour and marker of each family on the chart
    "token GPT (04)": ("tab:blue", "o"),
    "MaskGIT (05)": ("tab:orange", "s"),
    "next scale (06)": ("tab:green", "^"),
    "continuous chain (07)": ("tab:gray", "v"),
    "heads, raster (09)": ("tab:red", "D"),
    "heads, masked (09)": ("tab:purple", "P"),
    "latent flow (10)": ("tab:brown", "X"),
    "one-step head (11)": ("tab:pink", "*"),
}
CEILING_STYLE = {"real images": ("black", "--"), "VQ": ("tab:blue", ":"), "VAR": ("tab:green", ":"),
                 "BSQ": ("tab:olive", ":"), "continuous": ("tab:red", ":")}
X_AXES = (("sequential_evaluations", "sequential network evaluations per image"),
          ("seconds_per_image_alone", "seconds per image (filled: alone; hollow: in a batch)"),
          ("params", "parameters (generator + decoder)"))
Y_AXES = (("frechet", "Fréchet distance (lower is better)", True),
          ("prompt_accuracy", "prompt accuracy", False))


def _check_result(result, name: str) -> dict:
    if not isinstance(result, dict) or "rows" not in result:
        raise TypeError(f"{name}: expected the dict capstone.frontier returns (with 'rows'), got "
                        f"{type(result).__name__}")
    return result


def _panel(ax, result: dict, x_key: str, y_key: str, log_y: bool) -> None:
    for r in result["rows"]:
        colour, marker = FAMILIES.get(r["family"], ("black", "o"))
        x, y, err = r[x_key], r[y_key], r.get(f"{y_key}_std", 0.0)
        ax.errorbar([x], [y], yerr=[err] if err else None, fmt=marker, color=colour, ms=7 if marker == "*" else 5,
                    capsize=2, lw=0.8)
        if x_key == "seconds_per_image_alone":                         # the batch's time, hollow, joined
            xb = r["seconds_per_image_batch"]
            ax.plot([xb, x], [y, y], color=colour, lw=0.5, alpha=0.5)
            ax.plot([xb], [y], marker, mfc="none", color=colour, ms=5)
        ax.annotate(r.get("short", r["name"]), (x, y), xytext=(3, 2), textcoords="offset points", fontsize=6.5,
                    color=colour)
    for label, scores in result.get("ceilings", {}).items():
        colour, style = CEILING_STYLE.get(label, ("gray", ":"))
        value = result["floor"] if (label == "real images" and y_key == "frechet") else scores[y_key]
        ax.axhline(value, color=colour, ls=style, lw=0.9)
        ax.annotate(("floor" if label == "real images" and y_key == "frechet" else label), (1.0, value),
                    xycoords=("axes fraction", "data"), xytext=(2, 0), textcoords="offset points", fontsize=6.5,
                    color=colour, va="center")
    ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both", lw=0.4)


def frontier_figure(whole: dict, open: dict | None = None):  # noqa: A002  (the brief's name: the open frontier)
    """The frontier chart: for the whole prompt (and, given, the place left open), a row of Fréchet
    distance and a row of prompt accuracy against sequential evaluations, seconds per image and
    parameters. Returns the Figure."""
    sets = [("whole prompt", _check_result(whole, "whole"))]
    if open is not None:
        sets.append(("place left open", _check_result(open, "open")))
    fig, axes = plt.subplots(2 * len(sets), len(X_AXES), figsize=(16, 4.0 * 2 * len(sets)), squeeze=False)
    for s, (title, result) in enumerate(sets):
        for j, (y_key, y_label, log_y) in enumerate(Y_AXES):
            for k, (x_key, x_label) in enumerate(X_AXES):
                ax = axes[2 * s + j, k]
                _panel(ax, result, x_key, y_key, log_y)
                ax.set_xlabel(x_label, fontsize=8)
                if k == 0:
                    ax.set_ylabel(f"{title}\n{y_label}", fontsize=9)
    handles = [plt.Line2D([], [], ls="", marker=m, color=c, label=f) for f, (c, m) in FAMILIES.items()]
    fig.legend(handles=handles, loc="lower center", ncol=len(FAMILIES) // 2, fontsize=9, frameon=False)
    n, seeds = whole.get("n_eval"), whole.get("seeds")
    fig.suptitle(f"every generator of the course on the prompted shapes ({n} prompts, seeds {seeds}; "
                 "horizontal lines: floor and each tokenizer's ceiling)", fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 0.97, 1.0))
    return fig


def _fmt(value, digits: int = 3) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def frontier_table(result: dict) -> str:
    """``result`` (:func:`~course_lib.recipes.capstone.frontier`) as a markdown table, one row per
    generator, then the floor and the ceilings."""
    _check_result(result, "result")
    head = ("generator", "tokenizer", "prompt acc.", "Fréchet", "clean", "seq. evals", "s/image batch",
            "s/image alone", "params")
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in result["rows"]:
        acc = f"{r['prompt_accuracy']:.3f} ± {r['prompt_accuracy_std']:.3f}"
        fid = f"{r['frechet']:.1f} ± {r['frechet_std']:.1f}"
        lines.append(f"| {r['name']} | {r['tokenizer']} | {acc} | {fid} | {r['clean']:.2f} | "
                     f"{r['sequential_evaluations']} | {r['seconds_per_image_batch']:.2e} | "
                     f"{r['seconds_per_image_alone']:.2e} | {r['params']:,} |")
    for label, s in result.get("ceilings", {}).items():
        what = "real images (floor)" if label == "real images" else f"ceiling: {label} tokenizer"
        fid = result["floor"] if label == "real images" else s["frechet"]
        lines.append(f"| {what} | | {s['prompt_accuracy']:.3f} | {fid:.1f} | {s['clean']:.2f} | | | | |")
    return "\n".join(lines)


def sample_grid_figure(samples: dict, prompt_text: str = "", columns: int = 4):
    """``samples`` ({name: images (n, 3, 16, 16)}, :func:`~course_lib.recipes.capstone.samples_for`)
    as one panel per generator, ``columns`` panels a row. Returns the Figure."""
    if not isinstance(samples, dict) or not samples:
        raise TypeError(f"samples: expected a non-empty dict name -> images, got {type(samples).__name__}")
    rows = math.ceil(len(samples) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.4 * columns, 1.25 * rows), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, (name, images) in zip(axes.flat, samples.items()):
        viz.image_grid(images, nrow=len(images), ax=ax)
        ax.set_title(name, fontsize=7)
    if prompt_text:
        fig.suptitle(prompt_text, fontsize=10)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- reading the chart

def _row(result: dict | None, name: str) -> dict | None:
    return next((r for r in (result or {}).get("rows", ()) if r["name"] == name), None)


def _than(a: float, b: float) -> str:
    """How a Fréchet distance ``a`` compares with ``b`` (lower is better): '2.1x lower (better)'."""
    if math.isclose(a, b, rel_tol=0.05):
        return "about the same"
    return f"{b / a:.1f}x lower (better)" if a < b else f"{a / b:.1f}x higher (worse)"


def _ranks(xs: list) -> list:
    """Ranks 0..n-1 of ``xs``, tied values sharing the mean of their ranks."""
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    ranks, start = [0.0] * len(xs), 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and xs[order[end + 1]] == xs[order[start]]:
            end += 1
        for k in range(start, end + 1):
            ranks[order[k]] = (start + end) / 2
        start = end + 1
    return ranks


def rank_correlation(xs: list, ys: list) -> float:
    """Spearman's rank correlation of two lists (Pearson's on the ranks, ties at their mean rank);
    0 where one list is constant."""
    if len(xs) != len(ys) or len(xs) < 3:
        raise ValueError(f"rank_correlation: expected two lists of the same length >= 3, got {len(xs)} and {len(ys)}")
    rx, ry = _ranks(xs), _ranks(ys)
    if len(set(rx)) == 1 or len(set(ry)) == 1:
        return 0.0
    return statistics.correlation(rx, ry)


def _how_closely(rho: float) -> str:
    return "closely" if rho >= 0.7 else "loosely" if rho >= 0.4 else "hardly"


def _costs(whole: dict) -> list[str]:
    rows = whole["rows"]
    out = []
    by_family: dict = {}
    for r in rows:
        by_family.setdefault(r["family"], []).append(r["sequential_evaluations"])
    spans = [f"{f.split(' (')[0]} {min(v)}" + (f"-{max(v)}" if max(v) != min(v) else "") for f, v in by_family.items()]
    out.append("Chaining costs: sequential network evaluations per image: " + "; ".join(spans) + ".")
    if len(rows) >= 3:
        seq, alone = [r["sequential_evaluations"] for r in rows], [r["seconds_per_image_alone"] for r in rows]
        rho_seq, rho_par = rank_correlation(seq, alone), rank_correlation([r["params"] for r in rows], alone)
        fast, slow = min(rows, key=lambda r: r["seconds_per_image_alone"]), max(rows, key=lambda r: r["seconds_per_image_alone"])
        out.append(f"One image alone takes from {fast['seconds_per_image_alone'] * 1e3:.1f} ms ({fast['name']}) to "
                   f"{slow['seconds_per_image_alone'] * 1e3:.1f} ms ({slow['name']}); that time follows the sequential "
                   f"evaluations {_how_closely(rho_seq)} (rank correlation {rho_seq:.2f}) and the parameters "
                   f"{_how_closely(rho_par)} ({rho_par:.2f}).")
    return out


def _head(result: dict, where: str) -> list[str]:
    mse, flow, energy = (_row(result, f"raster + {h}") for h in ("MSE head", "flow head, 8 steps", "energy head"))
    if not (mse and flow):
        return []
    text = (f"What a head buys ({where}, raster order): the MSE head's Fréchet is {mse['frechet']:.0f}, the flow "
            f"head's {flow['frechet']:.0f}" + (f" and the energy head's {energy['frechet']:.0f}" if energy else "")
            + f" (floor {result['floor']:.0f}): the flow head is {_than(flow['frechet'], mse['frechet'])} than the "
            f"MSE head; one clean shape in {flow['clean']:.0%} of the flow head's images against "
            f"{mse['clean']:.0%} of the MSE head's.")
    return [text]


def _one_step(result: dict, where: str) -> list[str]:
    out = []
    mf, flow, abl = (_row(result, n) for n in ("raster + MeanFlow head, 1 pass", "raster + flow head, 8 steps",
                                               "raster + b = a ablation, 1 pass"))
    if mf and flow:
        text = (f"What one step gives up ({where}): the MeanFlow head at one pass per token "
                f"({mf['sequential_evaluations']} sequential evaluations per image) reaches a Fréchet of "
                f"{mf['frechet']:.0f}, {_than(mf['frechet'], flow['frechet'])} than the flow head's {flow['frechet']:.0f} "
                f"at 8 steps ({flow['sequential_evaluations']} evaluations)")
        if abl:
            text += (f"; the same head trained with b = a only (plain flow matching) reaches {abl['frechet']:.0f}, so "
                     f"with MeanFlow's target the one-pass Fréchet is {_than(mf['frechet'], abl['frechet'])} than "
                     "without it")
        out.append(text + ".")
    fm1, fm32, mf1 = (_row(result, n) for n in ("flow matching in latents, 1 step", "flow matching in latents, 32 steps",
                                                "MeanFlow in latents, 1 step"))
    if fm1 and fm32 and mf1:
        out.append(f"In the latent space, MeanFlow in one step reaches a Fréchet of {mf1['frechet']:.0f}: "
                   f"{_than(mf1['frechet'], fm1['frechet'])} than flow matching in one step ({fm1['frechet']:.0f}) "
                   f"and {_than(mf1['frechet'], fm32['frechet'])} than flow matching in 32 ({fm32['frechet']:.0f}).")
    return out


def _parallel(whole: dict, opened: dict | None) -> list[str]:
    """MaskGIT's accuracy from 1 to 16 steps, with the whole prompt and with the place open."""
    w1, w16 = _row(whole, "MaskGIT, 1 step"), _row(whole, "MaskGIT, 16 steps")
    o1, o16 = _row(opened, "MaskGIT, 1 step"), _row(opened, "MaskGIT, 16 steps")
    if not (w1 and w16 and o1 and o16):
        return []
    lost_w = w16["prompt_accuracy"] - w1["prompt_accuracy"]            # what deciding every token at once loses
    lost_o = o16["prompt_accuracy"] - o1["prompt_accuracy"]
    word = "about as much" if abs(lost_o - lost_w) < 0.02 else "more" if lost_o > lost_w else "less"
    return [f"Parallel decoding: MaskGIT's prompt accuracy goes from {w1['prompt_accuracy']:.0%} at one step to "
            f"{w16['prompt_accuracy']:.0%} at 16 with the whole prompt, and from {o1['prompt_accuracy']:.0%} to "
            f"{o16['prompt_accuracy']:.0%} with the place left open: deciding every token at once costs {word} "
            "where several answers are right."]


def _orders(opened: dict | None) -> list[str]:
    raster, masked = _row(opened, "raster + flow head, 8 steps"), _row(opened, "masked + flow head, 8 steps")
    if not (raster and masked):
        return []
    return [f"Order with the place left open: the flow head reaches a Fréchet of {raster['frechet']:.0f} in raster "
            f"order and {masked['frechet']:.0f} in masked order, raster {_than(raster['frechet'], masked['frechet'])} "
            f"(prompt accuracy {raster['prompt_accuracy']:.0%} against {masked['prompt_accuracy']:.0%})."]


def _limit(whole: dict) -> list[str]:
    ceil = whole.get("ceilings", {})
    if "VQ" not in ceil or "continuous" not in ceil:
        return []
    vq, cont = ceil["VQ"], ceil["continuous"]
    text = (f"Where the discrete-token limit shows: real shapes through the VQ tokenizer score a Fréchet of "
            f"{vq['frechet']:.0f} (prompt accuracy {vq['prompt_accuracy']:.0%}), through the continuous one "
            f"{cont['frechet']:.0f} ({cont['prompt_accuracy']:.0%}): the VQ ceiling is "
            f"{_than(vq['frechet'], cont['frechet'])} than the continuous one.")
    out = [text]
    best = {t: min((r for r in whole["rows"] if r["tokenizer"] == t), key=lambda r: r["frechet"], default=None)
            for t in ("VQ", "continuous")}
    if all(best.values()):
        v, c = best["VQ"], best["continuous"]
        out.append(f"The best generator over VQ tokens ({v['name']}, {v['frechet']:.0f}) ends at "
                   f"{v['frechet'] / vq['frechet']:.1f}x its tokenizer's ceiling, the best over continuous tokens "
                   f"({c['name']}, {c['frechet']:.0f}) at {c['frechet'] / cont['frechet']:.1f}x.")
    return out


def _best(result: dict, where: str) -> list[str]:
    rows = result["rows"]
    if not rows:
        return []
    fid, acc = min(rows, key=lambda r: r["frechet"]), max(rows, key=lambda r: r["prompt_accuracy"])
    return [f"With {where}, the lowest Fréchet: {fid['name']} ({fid['frechet']:.0f}, floor {result['floor']:.0f}; "
            f"{fid['sequential_evaluations']} sequential evaluations per image); the highest prompt accuracy: "
            f"{acc['name']} ({acc['prompt_accuracy']:.0%})."]


def reading(whole: dict, open: dict | None = None) -> list[str]:  # noqa: A002
    """Sentences that read the frontier in the lecture's terms (chaining costs, what a head buys,
    what one step gives up, parallel decoding, order, where the discrete-token limit shows, the best points), each computed
    from ``whole`` and ``open`` (:func:`~course_lib.recipes.capstone.frontier` results); a sentence
    whose generators are missing is left out."""
    _check_result(whole, "whole")
    out = _costs(whole)
    out += _head(open, "the place left open") if open is not None else []
    out += _head(whole, "the whole prompt")
    out += _one_step(open, "the place left open") if open is not None else []
    out += _one_step(whole, "the whole prompt")
    out += _parallel(whole, open) + _orders(open)
    out += _limit(whole)
    out += _best(whole, "the whole prompt") + (_best(open, "the place left open") if open is not None else [])
    return out
