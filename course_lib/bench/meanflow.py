"""Notebook 10's bars: MeanFlow against flow matching on 2-D spirals, at equal training time.

    python -m course_lib.bench meanflow --json [--mode lecture] [--n 16384] [--seeds 3]

Both methods train the same network (:func:`course_lib.recipes.meanflow.build`; MeanFlow's has a
second time input) on the same batches: flow matching for ``B.fm_steps`` steps, MeanFlow for as many
steps as take the same time on this machine (:func:`~course_lib.recipes.meanflow.equal_time_steps`:
both timed over a few steps first; a MeanFlow step also pays for the JVP). Both training times and
steps/s are reported. The models are the notebook's (:func:`course_lib.train.cached`: shipped or
cached weights are loaded, ``weights`` says which; the training figures are those of the run that made
them, kept with the weights).

Every SWD uses ``--n`` samples (default 16384) and 256 projections, averaged over ``--seeds``
evaluation seeds; the grid TV (32 x 32 cells over [-4, 4]^2) uses ``--tv-n`` samples and one seed.

Keys: ``swd_meanflow_1``, ``swd_meanflow_2``, ``tv_meanflow_1``, ``tv_meanflow_2``, ``swd_fm`` and
``tv_fm`` (Euler steps -> value), ``noise_floor``, ``tv_floor``, ``train_steps_per_second_meanflow``,
``train_steps_per_second_fm``, ``train_seconds_*``, ``train_steps_*``.

Bars (issue 13), under ``bars``: MeanFlow's 1-step SWD <= 1.5 x flow matching's 100-step SWD
(``meanflow1_le_1.5x_fm100``), and <= 0.5 x flow matching's 1-step SWD (``meanflow1_le_0.5x_fm1``), at
the same network and training time. The SWD is nearly blind to a filled disk
with the spiral's radial profile (notebook 08): measured in lecture mode (1 CPU thread beside other
jobs) MeanFlow's one step met both SWD bars (1.33x, 0.035x) while its grid TV was 3.7x flow matching's
100 steps: its samples were such a disk. So (issue 22) the one-step route of notebook 10's section 6,
the α-Flow curriculum (:func:`course_lib.recipes.meanflow_routes.train_alpha`, the same network and
MeanFlow's training time), has a grid-TV bar as well: its 1-step TV <= 1.5 x flow matching's 100-step
TV, with both SWD bars. Keys ``*_alphaflow_*`` and bars ``alphaflow1_*``; ``tv_exact_1`` is the
exact-target control (the same network regressed on flow matching's 100-step map,
:func:`~course_lib.recipes.meanflow_routes.train_exact`), what the network can draw. Measured in
lecture mode (1 thread on a machine shared with about eight other jobs): one-step TV over flow
matching's 100-step TV 3.66 for MeanFlow, 3.56 for α-Flow, 1.34 for the control: the TV bar is not met
by either route trained from scratch (figures in :mod:`course_lib.recipes.meanflow_routes`).
"""
from __future__ import annotations

import argparse

from course_lib.bench import at_most
from course_lib.recipes import meanflow as recipe
from course_lib.recipes import meanflow_routes as routes


def run(args: list[str]) -> dict:
    p = argparse.ArgumentParser(prog="python -m course_lib.bench meanflow")
    p.add_argument("--n", type=int, default=16384, help="samples per SWD estimate")
    p.add_argument("--seeds", type=int, default=3, help="seeds every SWD is averaged over")
    p.add_argument("--tv-n", type=int, default=50000, help="samples per grid-TV estimate")
    a = p.parse_args(args)
    B = recipe.budget()
    seeds = tuple(range(a.seeds))
    out = {"n_samples": a.n, "n_projections": 256, "seeds": a.seeds, "tv_n_samples": a.tv_n,
           "batch": B.batch, "network": recipe.describe_network(B),
           "meanflow_times": f"logit-normal({B.time_mean:g}, {B.time_std:g}), share with a = b {B.share_equal:g}",
           "meanflow_loss": f"adaptive, p = {B.p:g}, c = {B.c:g}"}
    pair = recipe.train_pair(B, progress=False)
    for key, h in (("fm", pair.fm_hist), ("meanflow", pair.mf_hist)):
        out[f"train_steps_{key}"] = len(h.losses)
        out[f"train_seconds_{key}"] = round(h.seconds, 1)
        out[f"train_steps_per_second_{key}"] = round(h.steps_per_second, 2)
    al_model = routes.train_alpha(B, progress=False)
    ex_model = routes.train_exact(B, progress=False)
    for key, m in (("alphaflow", al_model), ("exact", ex_model)):
        out[f"train_steps_{key}"] = len(m.history.losses)
        out[f"train_seconds_{key}"] = round(m.history.seconds, 1)
    out["exact_pairs_seconds"] = round(ex_model.record["pair_seconds"], 1)
    out["weights"] = {k: "loaded" if m.from_cache else "trained here"
                      for k, m in (("fm", pair.fm), ("meanflow", pair.mf), ("alphaflow", al_model), ("exact", ex_model))}
    out["alphaflow_window"] = list(B.routes.alpha_window)
    bars = {}
    res = recipe.compare(pair.fm, pair.mf, n=a.n, n_tv=a.tv_n, seeds=seeds, progress=False)
    out["noise_floor"] = round(res["noise_floor"], 5)
    out["tv_floor"] = round(res["tv_floor"], 4)
    out["swd_fm"] = {str(k): round(v, 5) for k, v in res["swd_fm"].items()}
    out["tv_fm"] = {str(k): round(v, 4) for k, v in res["tv_fm"].items()}
    for k in recipe.MF_STEPS:
        out[f"swd_meanflow_{k}"] = round(res["swd_mf"][k], 5)
        out[f"tv_meanflow_{k}"] = round(res["tv_mf"][k], 4)
    out["meanflow1_over_fm100"] = round(res["swd_mf"][1] / res["swd_fm"][100], 3)
    out["meanflow1_over_fm1"] = round(res["swd_mf"][1] / res["swd_fm"][1], 3)
    out["tv_meanflow1_over_fm100"] = round(res["tv_mf"][1] / res["tv_fm"][100], 3)
    bars["meanflow1_le_1.5x_fm100"] = at_most(out["meanflow1_over_fm100"], 1.5)
    bars["meanflow1_le_0.5x_fm1"] = at_most(out["meanflow1_over_fm1"], 0.5)
    for k in recipe.MF_STEPS:
        out[f"swd_alphaflow_{k}"] = round(recipe.swd(al_model, k, True, n=a.n, seeds=seeds), 5)
        out[f"tv_alphaflow_{k}"] = round(recipe.tv(al_model, k, True, n=a.tv_n), 4)
    out["tv_exact_1"] = round(recipe.tv(ex_model, 1, True, n=a.tv_n), 4)
    out["swd_exact_1"] = round(recipe.swd(ex_model, 1, True, n=a.n, seeds=seeds), 5)
    out["alphaflow1_over_fm100"] = round(out["swd_alphaflow_1"] / res["swd_fm"][100], 3)
    out["alphaflow1_over_fm1"] = round(out["swd_alphaflow_1"] / res["swd_fm"][1], 3)
    out["tv_alphaflow1_over_fm100"] = round(out["tv_alphaflow_1"] / res["tv_fm"][100], 3)
    bars["alphaflow1_tv_le_1.5x_fm100"] = at_most(out["tv_alphaflow1_over_fm100"], 1.5)
    bars["alphaflow1_le_1.5x_fm100"] = at_most(out["alphaflow1_over_fm100"], 1.5)
    bars["alphaflow1_le_0.5x_fm1"] = at_most(out["alphaflow1_over_fm1"], 0.5)
    out["bars"] = bars
    return out
