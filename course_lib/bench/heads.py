"""Benchmark of notebook 09: generation heads on continuous tokens, on the prompted-shapes task.

``python -m course_lib.bench heads --json [--mode lecture]`` prints, from the notebook's own recipe
(:func:`course_lib.recipes.generation_heads.bench_results`):

* per order and head, ``<order>_<head>`` for the whole prompt and ``open_<order>_<head>`` for the
  prompt that leaves the place open (orders ``raster``, ``masked``; heads ``mse``, ``flow``,
  ``energy``): ``frechet``, ``prompt_accuracy``, ``clean`` (share of one clean shape), ``head_nfe`` (head passes per token),
  ``passes`` (transformer passes per image), ``seconds_per_image``, ``head_share_of_time`` (the
  share of generation time spent in the head), parameters and training seconds;
* ``open_raster_flow_steps``: the flow head's Euler steps against quality and time, place open;
* ``frechet_floor``, ``open_frechet_floor`` (real against real at the same ``n_eval``);
* ``open_<order>_bars``: the issue's bars where a prompt has several right answers, flow head
  Fréchet <= 0.5x the MSE head's, energy head at one step within 1.5x the flow head's;
  ``<order>_bars`` the same ratios for the whole prompt;
* ``mse_trap``: notebook 07's measurement of the MSE trap
  (``course_lib.recipes.limit_of_tokens.mse_trap``).
"""
from __future__ import annotations

import contextlib
import sys
import time

import torch

from course_lib import runtime
from course_lib.recipes import generation_heads, limit_of_tokens


def run(args: list[str]) -> dict:
    if args:
        raise SystemExit(f"python -m course_lib.bench heads takes no arguments, got {args}")
    mode = runtime.mode()
    t0 = time.perf_counter()
    res: dict = {"mode": mode, "threads": torch.get_num_threads()}
    with contextlib.redirect_stdout(sys.stderr):          # cache messages must not break --json
        res.update(generation_heads.bench_results(mode))
        res["mse_trap"] = limit_of_tokens.mse_trap(mode)
    res["seconds"] = time.perf_counter() - t0
    return res
