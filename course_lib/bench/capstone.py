"""Benchmark of notebook 11 (the capstone): every generator of the course on one frontier.

    python -m course_lib.bench capstone --json [--mode lecture] [--chart PATH] [--skip audio]

It calls the notebook's own functions, so its figures are the ones a learner sees:

* ``whole`` and ``open``: :func:`course_lib.recipes.capstone.frontier` with the whole prompt and with
  the place left open. Per generator (``rows``): ``name``, ``family``, ``tokenizer``,
  ``prompt_accuracy`` and ``frechet`` (mean and spread over the seeds), ``clean``,
  ``sequential_evaluations``, ``seconds_per_image`` in a batch and alone, ``params``; with the
  Fréchet ``floor`` (real against real at the same n) and each tokenizer's ``ceilings``;
* ``one_step``: the one-step head's study (:func:`course_lib.recipes.generation_heads.one_step_study`):
  the MeanFlow head at 1 and 2 passes, its ablation trained with b = a only, the flow head at 1, 2 and 8
  steps and the energy head, under the same raster transformer, whole prompt and place open;
* ``audio``: :func:`course_lib.recipes.audio_tokens.audio_comparison`, a GPT over RVQ codec tokens
  against a flow head on the codec's continuous latents, judged by the pitch class and octave spread;
* ``chart``: the path of the frontier chart it wrote (:func:`course_lib.recipes.capstone.frontier_figure`,
  titled with the date, the machine and the mode), the image the README shows.

There are no bars: the capstone measures where each generator lands, it does not ask one to beat another.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
from pathlib import Path

from course_lib import runtime


def machine() -> str:
    """'Linux x86_64, 2 CPU cores, cpu' (what the chart's title says it was measured on)."""
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores, {runtime.device()}"


def _plain(rows: list[dict]) -> list[dict]:
    """The rows without what JSON cannot hold (images, models)."""
    return [{k: v for k, v in r.items() if isinstance(v, (int, float, str, bool, list, dict, type(None)))}
            for r in rows]


def run(args: list[str]) -> dict:
    from course_lib.recipes import audio_tokens, capstone, generation_heads
    p = argparse.ArgumentParser(prog="python -m course_lib.bench capstone")
    p.add_argument("--chart", type=Path, default=Path("docs") / "capstone_frontier.png",
                   help="where to write the frontier chart (PNG)")
    p.add_argument("--skip", action="append", default=[], choices=("open", "one_step", "audio"),
                   help="leave a part out (e.g. to time the others)")
    opts = p.parse_args(args)
    mode = runtime.mode()
    res: dict = {"date": datetime.date.today().isoformat(), "machine": machine()}

    whole = capstone.frontier(mode, open_place=False, progress=False)
    opened = None if "open" in opts.skip else capstone.frontier(mode, open_place=True, progress=False)
    for key, part in (("whole", whole), ("open", opened)):
        if part is not None:
            res[key] = {**{k: v for k, v in part.items() if k != "rows"}, "rows": _plain(part["rows"])}

    if "one_step" not in opts.skip:
        B = generation_heads.budget(mode)
        res["one_step"] = {("open" if op else "whole"): _plain(generation_heads.one_step_study(B, open_place=op))
                           for op in (False, True)}
    if "audio" not in opts.skip:
        res["audio"] = audio_tokens.audio_comparison(mode)

    fig = capstone.frontier_figure(whole, opened)
    title = fig.get_suptitle()
    fig.suptitle(f"{title + ' · ' if title else ''}measured {res['date']} on {res['machine']}, {mode} mode",
                 fontsize=9)
    opts.chart.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(opts.chart, dpi=110, bbox_inches="tight")
    res["chart"] = str(opts.chart)
    res["bars"] = {}
    return res
