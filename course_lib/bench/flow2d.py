"""Notebook 08's quality and speed bars: flow matching on 2-D spirals, reflow, minibatch OT, a
conditional flow. Every experiment is the notebook's own, from :mod:`course_lib.recipes.flow_matching_2d`;
this module only times it, evaluates it on more samples and prints the figures.

    python -m course_lib.bench flow2d --json [--mode lecture] [--n 16384] [--seeds 3]

Every sliced Wasserstein distance (SWD) here uses ``--n`` samples (default 16384) and 256
projections and is averaged over ``--seeds`` evaluation seeds (each: fresh noise, a fresh held-out
data draw, fresh projections); the noise floor (SWD between two independent data draws of the same
size) is averaged the same way. Training sizes come from ``recipe.budget()`` of the mode.

A second model, same network and steps, is trained on minibatch-OT pairs (``swd_euler_ot``).

The SWD is nearly blind to a wrong *shape* with the right 1-D projections (the spiral with its inner
coils filled in, same radial profile, scores close to the spiral: ``recipe.same_radii_disk``), so the bench also reports the grid total variation
(:func:`course_lib.metrics.grid_tv`: 32 x 32 cells over [-4, 4]^2) on ``--tv-n`` samples (default
50,000, one evaluation seed) against a fresh draw of the data, with its floor (data against data):
``tv_floor``, ``tv_euler`` (steps "1", "2", "4", "8", "100"), ``tv_1step_after_reflow``,
``tv_2step_after_reflow``.

Bars (issue 5): 100-step Euler SWD <= 1.5 x noise floor (reported for both models); 1-step SWD
after one reflow round <= 0.7 x before; conditional samples in their class region (nearest class
mean) >= 95%. Bars (issue 15): Euler-100 grid TV <= 1.5 x ``tv_floor``; after one reflow round,
1-step grid TV <= 2 x ``tv_floor``.
"""
from __future__ import annotations

import argparse
import time

import torch

from course_lib import flow, runtime
from course_lib.recipes import flow_matching_2d as recipe


def _straightness(v) -> float:
    return round(flow.straightness(flow.euler_paths(v, recipe.start_noise(), 100)), 4)


def run(args: list[str]) -> dict:
    p = argparse.ArgumentParser(prog="python -m course_lib.bench flow2d")
    p.add_argument("--n", type=int, default=16384, help="samples per SWD estimate (>= 16384 for the bars)")
    p.add_argument("--seeds", type=int, default=3, help="seeds every SWD is averaged over")
    p.add_argument("--tv-n", type=int, default=50000, help="samples per grid-TV estimate (50000 for the bars)")
    p.add_argument("--skip", default="", help="comma list of parts to skip: reflow, ot, conditional")
    a = p.parse_args(args)
    skip = set(filter(None, a.skip.split(",")))
    B = recipe.budget()
    seeds = tuple(range(a.seeds))
    out = {"mode": B.mode, "device": str(runtime.device()), "threads": torch.get_num_threads(),
           "n_samples": a.n, "n_projections": 256, "seeds": a.seeds, "train_steps": B.steps, "batch": B.batch,
           "network": recipe.describe_network(B), "tv_n_samples": a.tv_n, "tv_grid": "32x32 over [-4, 4]^2"}
    t_all = time.perf_counter()

    def swd_row(v, steps=recipe.STEP_LIST, method="euler"):
        return {str(k): round(recipe.swd(v, k, method, n=a.n, seeds=seeds), 5) for k in steps}

    model, hist = recipe.train_spirals(B, progress=False)
    out["train_steps_per_second"] = round(hist.steps_per_second, 2)
    out["train_seconds"] = round(hist.seconds, 1)
    out["final_loss"] = round(sum(hist.losses[-200:]) / len(hist.losses[-200:]), 4)
    floor = recipe.noise_floor(a.n, seeds)
    out["noise_floor"] = round(floor, 5)
    t0 = time.perf_counter()
    out["swd_euler"] = swd_row(model)
    out["swd_heun"] = swd_row(model, method="heun")
    out["eval_seconds"] = round(time.perf_counter() - t0, 1)
    out["euler100_over_floor"] = round(out["swd_euler"]["100"] / floor, 3)
    out["bar_euler100_le_1.5x_floor"] = out["euler100_over_floor"] <= 1.5
    t0 = time.perf_counter()
    tv_floor = recipe.tv_floor(a.tv_n)
    out["tv_floor"] = round(tv_floor, 4)
    out["tv_euler"] = {str(k): round(recipe.tv(model, k, n=a.tv_n), 4) for k in (1, 2, 4, 8, 100)}
    out["tv_euler100_over_floor"] = round(out["tv_euler"]["100"] / tv_floor, 3)
    out["bar_tv_euler100_le_1.5x_floor"] = out["tv_euler100_over_floor"] <= 1.5
    out["tv_eval_seconds"] = round(time.perf_counter() - t0, 1)

    if "reflow" not in skip:
        student, rh = recipe.straighten(model, B, progress=False)
        after = swd_row(student, (1, 2, 100))
        out["swd_1step_before_reflow"] = out["swd_euler"]["1"]
        out["swd_2step_before_reflow"] = out["swd_euler"]["2"]
        out["swd_1step_after_reflow"] = after["1"]
        out["swd_2step_after_reflow"] = after["2"]
        out["swd_100step_after_reflow"] = after["100"]
        out["straightness_before"] = _straightness(model)
        out["straightness_after"] = _straightness(student)
        out["reflow_seconds"] = round(rh.seconds, 1)
        out["tv_1step_after_reflow"] = round(recipe.tv(student, 1, n=a.tv_n), 4)
        out["tv_2step_after_reflow"] = round(recipe.tv(student, 2, n=a.tv_n), 4)
        out["tv_reflow_1step_over_floor"] = round(out["tv_1step_after_reflow"] / tv_floor, 3)
        out["bar_tv_reflow_1step_le_2x_floor"] = out["tv_reflow_1step_over_floor"] <= 2.0
        out["reflow_ratio_1step"] = round(out["swd_1step_after_reflow"] / out["swd_1step_before_reflow"], 3)
        out["bar_reflow_1step_le_0.7x"] = out["reflow_ratio_1step"] <= 0.7

    if "ot" not in skip:
        # the main model's network and budget (B.steps; the notebook's OT section trains a shorter
        # B.ot_steps to keep lecture mode within 5 minutes), pairs by minibatch OT in B.ot_block blocks
        ot_model, oh = recipe.train_spirals(B, ot_block=B.ot_block, progress=False)
        out["ot_block"], out["ot_train_steps"] = B.ot_block, B.steps
        out["ot_train_steps_per_second"] = round(oh.steps_per_second, 2)
        out["swd_euler_ot"] = swd_row(ot_model)
        out["swd_heun_ot"] = swd_row(ot_model, (100,), "heun")
        out["straightness_ot"] = _straightness(ot_model)
        out["ot_euler100_over_floor"] = round(out["swd_euler_ot"]["100"] / floor, 3)
        out["bar_ot_euler100_le_1.5x_floor"] = out["ot_euler100_over_floor"] <= 1.5

    if "conditional" not in skip:
        cond, ch = recipe.train_conditional(B, progress=False)
        centres = recipe.class_centres()
        accs = {}
        for w in (0.0, 1.0, B.guidance):
            x, want = recipe.guided_samples(cond, w, a.n)
            accs[str(w)] = round(recipe.class_accuracy(x, want, centres), 4)
        out["conditional_dataset"] = recipe.COND_DATA
        out["conditional_rule"] = "nearest class mean of held-out data"
        out["conditional_guidance"] = B.guidance
        out["conditional_accuracy"] = accs[str(B.guidance)]
        out["conditional_accuracy_by_guidance"] = accs
        out["conditional_train_seconds"] = round(ch.seconds, 1)
        out["bar_conditional_ge_0.95"] = out["conditional_accuracy"] >= 0.95

    out["total_seconds"] = round(time.perf_counter() - t_all, 1)
    return out
