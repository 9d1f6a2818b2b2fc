"""Benchmark of notebook 09: generation heads on continuous tokens, on the prompted-shapes task.

``python -m course_lib.bench heads --json [--mode lecture]`` prints, from the notebook's own recipe
(:func:`course_lib.recipes.generation_heads.bench_results`; its pairs come from ``trained_pair``, so
the shipped weights are loaded where there are, else the disk cache, else they train):

* per order and head, ``<order>_<head>`` for the whole prompt and ``open_<order>_<head>`` for the
  prompt that leaves the place open (orders ``raster``, ``masked``; heads ``mse``, ``flow``,
  ``energy``): ``frechet``, ``prompt_accuracy``, ``accuracy_no_place`` (shape, colour and size only),
  ``clean`` (share of one clean shape), ``head_nfe`` (head passes per token),
  ``passes`` (transformer passes per image), ``seconds_per_image``, ``head_share_of_time`` (the
  share of generation time spent in the head), parameters and training seconds;
* ``open_raster_flow_steps``: the flow head's Euler steps against quality and time, place open;
* ``frechet_floor``, ``open_frechet_floor`` (real against real at the same ``n_eval``);
* ``bars``: the issue's bars where a prompt has several right answers (place open), per order:
  ``open_<order>_flow_le_0.5x_mse`` (the flow head's Fréchet over the MSE head's) and
  ``open_<order>_energy_le_1.5x_flow`` (the energy head at one step over the flow head);
  ``<order>_bars`` the same ratios and checks for the whole prompt, as figures;
* ``mse_trap``: notebook 07's measurement of the MSE trap
  (``course_lib.recipes.limit_of_tokens.mse_trap``).
"""
from __future__ import annotations

from course_lib import runtime
from course_lib.bench import at_most
from course_lib.recipes import generation_heads, limit_of_tokens


def run(args: list[str]) -> dict:
    if args:
        raise SystemExit(f"python -m course_lib.bench heads takes no arguments, got {args}")
    mode = runtime.mode()
    res = generation_heads.bench_results(mode)
    res["bars"] = {}
    for order in generation_heads.ORDERS:
        ratios = res.pop(f"open_{order}_bars")
        res["bars"][f"open_{order}_flow_le_0.5x_mse"] = at_most(ratios["flow_over_mse"], 0.5)
        res["bars"][f"open_{order}_energy_le_1.5x_flow"] = at_most(ratios["energy_over_flow"], 1.5)
    res["mse_trap"] = limit_of_tokens.mse_trap(mode)
    return res
