"""Benchmark of notebooks 04-06: orders of generation over tokens on the prompted-shapes task.

``python -m course_lib.bench orders --json [--mode lecture]`` prints:

* ``evaluator_accuracy``: per attribute (shape, color, position, size), the accuracy of the shared
  evaluator (:mod:`course_lib.evaluator`) on 2000 held-out real shapes; ``evaluator_min_accuracy``;
* ``frechet_floor``: the Fréchet distance of real against real shapes at the sample size of the
  methods (``n_eval``): the best a perfect generator can score there;
* ``kv_cache_speedup``, ``kv_cache_identical``: notebook 04's GPT sampled with and without the KV
  cache at the same seed (same tokens? how much faster?);
* ``cfg_prompt_accuracy``: the GPT's prompt accuracy per guidance scale;
* per method an object with ``prompt_accuracy``, ``frechet``, ``nfe`` (forward passes per image),
  ``seconds_per_image``, ``params``: ``gpt`` (notebook 04) here, then whatever
  ``recipes.maskgit.bench_results(mode)`` (notebook 05: ``maskgit_<steps>``) and
  ``recipes.next_scale.bench_results(mode)`` (notebook 06: ``var``, ``infinity``,
  ``infinity_selfcorrect``) return, merged in when those recipes exist;
* ``bars``: ``var_prompt_accuracy_ge_gpt_minus_0.1``, VAR's prompt accuracy at least the GPT's
  minus 0.1, both from ``four_orders`` (the same held-out prompts), when notebook 06's part ran;
* ``four_orders`` (from ``recipes.next_scale``): the table that closes notebook 06, computed by the
  same function (:func:`course_lib.recipes.next_scale.four_orders`): the GPT, MaskGIT at 4 and 8
  steps, VAR and Infinity on the same prompts, models from the disk cache.

``--skip maskgit`` / ``--skip next_scale`` leaves a notebook's part out (e.g. to time one part).
The experiments are the notebooks' own (their recipes); this module only gathers them.
"""
from __future__ import annotations

import argparse
import importlib

from course_lib import evaluator, runtime
from course_lib.bench import at_least
from course_lib.recipes import chaining_tokens


def _other_recipe(name: str):
    """recipes.<name> if it exists and has bench_results, else None (the bench runs without it)."""
    try:
        mod = importlib.import_module(f"course_lib.recipes.{name}")
    except ModuleNotFoundError as e:
        if e.name == f"course_lib.recipes.{name}":
            return None
        raise
    return mod if hasattr(mod, "bench_results") else None


def run(args: list[str]) -> dict:
    p = argparse.ArgumentParser(prog="python -m course_lib.bench orders")
    p.add_argument("--skip", action="append", default=[], choices=("maskgit", "next_scale"),
                   help="leave out the figures of this notebook's recipe")
    opts = p.parse_args(args)
    mode = runtime.mode()
    B = chaining_tokens.budget(mode)
    res: dict = {"bars": {}}

    ref = evaluator.reference(2000, seed=5)
    acc = evaluator.attribute_accuracy(ref.images, ref.prompts)
    res.update(evaluator_accuracy=acc, evaluator_min_accuracy=min(acc.values()))

    res["gpt"] = chaining_tokens.gpt_results(mode)
    res.update(n_eval=B.n_eval, frechet_floor=res["gpt"]["frechet_floor"])
    model = chaining_tokens.trained_gpt(mode)
    kv = chaining_tokens.kv_cache_comparison(model, B.n_kv)
    res.update(kv_cache_speedup=kv["speedup"], kv_cache_identical=kv["identical"],
               kv_cache_seconds=dict(cached=kv["seconds_cached"], uncached=kv["seconds_uncached"], n=kv["n"]))
    sweep = chaining_tokens.cfg_sweep(model, mode=mode)
    res["cfg_prompt_accuracy"] = {str(r["scale"]): r["prompt_accuracy"] for r in sweep}
    res["cfg_diversity"] = {str(r["scale"]): r["diversity"] for r in sweep}
    res["gpt_held_out_loss"] = chaining_tokens.held_out_loss(model, mode=mode)
    res["log_codebook"] = chaining_tokens.log_k()

    for name in ("maskgit", "next_scale"):
        if name in opts.skip:
            res.setdefault("skipped", []).append(f"recipes.{name}")
            continue
        mod = _other_recipe(name)
        if mod is None:
            res.setdefault("missing", []).append(f"recipes.{name}")
            continue
        res.update(mod.bench_results(mode))
    if "four_orders" in res:            # issue 22: VAR's prompt accuracy within 0.1 of the GPT's
        acc = {r["method"]: r["prompt_accuracy"] for r in res["four_orders"]["rows"]}
        res["bars"]["var_prompt_accuracy_ge_gpt_minus_0.1"] = at_least(acc["VAR"], acc["GPT, raster order"] - 0.1)
    return res
