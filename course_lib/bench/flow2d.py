"""Notebook 08's quality and speed bars: flow matching on 2-D spirals, reflow, a conditional flow.

    python -m course_lib.bench flow2d --json [--mode lecture] [--n 16384] [--seeds 3]

Every sliced Wasserstein distance (SWD) here uses ``--n`` samples (default 16384) and 256
projections and is averaged over ``--seeds`` seeds (each seed: fresh noise, a fresh held-out data
draw, fresh projections); the noise floor (SWD between two independent data draws of the same size)
is averaged the same way. Training sizes come from ``recipe.budget()`` of the mode.

A second model, same network and steps, is trained on minibatch-OT pairs (``swd_euler_ot``).

Bars (issue 5): 100-step Euler SWD <= 1.5 x noise floor (reported for both models); 1-step SWD
after one reflow round <= 0.7 x before; conditional samples in their class region (nearest class
mean) >= 95%.
"""
from __future__ import annotations

import argparse
import copy
import time

import torch

from course_lib import data, flow, metrics, nets, runtime, train
from course_lib.recipes import flow_matching_2d as recipe

STEPS = (1, 2, 4, 8, 16, 32, 100)


def train_spirals(B, seed: int = 0, progress: bool = False, ot_block: int | None = None):
    """The notebook's main model: a VelocityMLP trained with flow.loss on fresh spiral batches.
    With ``ot_block`` the noise is paired with the data by minibatch OT (flow.minibatch_ot) first."""
    runtime.seed_everything(seed)
    model = nets.VelocityMLP(nets.MLPConfig(dim=2, hidden=B.hidden, depth=B.depth)).to(runtime.device())

    def loss_fn(step):
        x1 = data.toy_2d("spirals", B.batch, seed=step)
        x0 = torch.randn_like(x1)
        if ot_block:
            x0, x1 = flow.minibatch_ot(x0, x1, ot_block)
        return flow.loss(model, x1, x0=x0)
    hist = train.train(model, loss_fn, B.steps, lr=B.lr, schedule="cosine", progress=progress,
                       desc="flow matching" + (" (minibatch OT)" if ot_block else ""))
    return model, hist


def swd_to_data(v, name: str, n: int, steps: int, method: str = "euler", seeds: int = 3,
                dim: int = 2) -> float:
    """Mean over seeds of SWD(samples of ``v`` with ``steps`` steps, held-out data), 256 projections."""
    vals = []
    for s in range(seeds):
        x = flow.sample(v, n, dim, steps, method, seed=100 + s)
        vals.append(metrics.sliced_wasserstein(x, data.toy_2d(name, n, seed=20_000 + s), 256, s))
    return sum(vals) / len(vals)


def run(args: list[str]) -> dict:
    p = argparse.ArgumentParser(prog="python -m course_lib.bench flow2d")
    p.add_argument("--n", type=int, default=16384, help="samples per SWD estimate (>= 16384 for the bars)")
    p.add_argument("--seeds", type=int, default=3, help="seeds every SWD is averaged over")
    p.add_argument("--skip", default="", help="comma list of parts to skip: reflow, ot, conditional")
    a = p.parse_args(args)
    skip = set(filter(None, a.skip.split(",")))
    B = recipe.budget()
    dev = runtime.device()
    out = {"mode": B.mode, "device": str(dev), "threads": torch.get_num_threads(), "n_samples": a.n,
           "n_projections": 256, "seeds": a.seeds, "train_steps": B.steps, "batch": B.batch,
           "network": f"VelocityMLP {B.depth}x{B.hidden} SiLU"}
    t_all = time.perf_counter()

    model, hist = train_spirals(B)
    out["train_steps_per_second"] = round(hist.steps_per_second, 2)
    out["train_seconds"] = round(hist.seconds, 1)
    out["final_loss"] = round(sum(hist.losses[-200:]) / len(hist.losses[-200:]), 4)
    floor = metrics.noise_floor(lambda n, s: data.toy_2d("spirals", n, seed=s), a.n, 256,
                                seeds=tuple(range(a.seeds)))
    out["noise_floor"] = round(floor, 5)
    t0 = time.perf_counter()
    out["swd_euler"] = {str(k): round(swd_to_data(model, "spirals", a.n, k, "euler", a.seeds), 5) for k in STEPS}
    out["swd_heun"] = {str(k): round(swd_to_data(model, "spirals", a.n, k, "heun", a.seeds), 5) for k in STEPS}
    out["eval_seconds"] = round(time.perf_counter() - t0, 1)
    out["euler100_over_floor"] = round(out["swd_euler"]["100"] / floor, 3)
    out["bar_euler100_le_1.5x_floor"] = out["euler100_over_floor"] <= 1.5

    if "reflow" not in skip:
        x0, x1 = flow.reflow_pairs(model, B.reflow_pairs, 2, B.reflow_teacher_steps, "heun", seed=7)
        student = copy.deepcopy(model)
        rh = flow.reflow(student, x0, x1, B.reflow_steps, batch=B.batch, lr=B.lr / 2, schedule="cosine",
                         progress=False)
        out["swd_1step_before_reflow"] = out["swd_euler"]["1"]
        out["swd_2step_before_reflow"] = out["swd_euler"]["2"]
        out["swd_1step_after_reflow"] = round(swd_to_data(student, "spirals", a.n, 1, "euler", a.seeds), 5)
        out["swd_2step_after_reflow"] = round(swd_to_data(student, "spirals", a.n, 2, "euler", a.seeds), 5)
        out["swd_100step_after_reflow"] = round(swd_to_data(student, "spirals", a.n, 100, "euler", a.seeds), 5)
        x0s = torch.randn(2000, 2, generator=torch.Generator().manual_seed(5)).to(dev)
        out["straightness_before"] = round(flow.straightness(flow.integrate(model, x0s, 100, trajectory=True)[1]), 4)
        out["straightness_after"] = round(flow.straightness(flow.integrate(student, x0s, 100, trajectory=True)[1]), 4)
        out["reflow_seconds"] = round(rh.seconds, 1)
        out["reflow_ratio_1step"] = round(out["swd_1step_after_reflow"] / out["swd_1step_before_reflow"], 3)
        out["bar_reflow_1step_le_0.7x"] = out["reflow_ratio_1step"] <= 0.7

    if "ot" not in skip:
        # the main model's network and budget (B.steps; the notebook's OT section trains a shorter
        # B.ot_steps to keep lecture mode within 5 minutes), pairs by minibatch OT in B.ot_block blocks
        ot_model, oh = train_spirals(B, ot_block=B.ot_block)
        out["ot_block"], out["ot_train_steps"] = B.ot_block, B.steps
        out["ot_train_steps_per_second"] = round(oh.steps_per_second, 2)
        out["swd_euler_ot"] = {str(k): round(swd_to_data(ot_model, "spirals", a.n, k, "euler", a.seeds), 5)
                               for k in STEPS}
        out["swd_heun_ot"] = {"100": round(swd_to_data(ot_model, "spirals", a.n, 100, "heun", a.seeds), 5)}
        x0s = torch.randn(2000, 2, generator=torch.Generator().manual_seed(5)).to(dev)
        out["straightness_ot"] = round(flow.straightness(flow.integrate(ot_model, x0s, 100, trajectory=True)[1]), 4)
        out["ot_euler100_over_floor"] = round(out["swd_euler_ot"]["100"] / floor, 3)
        out["bar_ot_euler100_le_1.5x_floor"] = out["ot_euler100_over_floor"] <= 1.5

    if "conditional" not in skip:
        name, k = "8gaussians", data.toy_2d_classes("8gaussians")
        runtime.seed_everything(1)
        cond = nets.VelocityMLP(nets.MLPConfig(dim=2, hidden=B.hidden, depth=B.depth, n_classes=k)).to(dev)

        def cond_loss(step):
            x, y = data.toy_2d(name, B.batch, seed=step, labels=True)
            return flow.loss(cond, x, y=y, p_uncond=0.1)
        ch = train.train(cond, cond_loss, B.cond_steps, lr=B.lr, schedule="cosine", progress=False)
        ref, ref_y = data.toy_2d(name, a.n, seed=30_000, labels=True)
        centres = torch.stack([ref[ref_y == c].mean(0) for c in range(k)])         # (k, 2) class means
        g = torch.Generator().manual_seed(11)
        want = torch.randint(0, k, (a.n,), generator=g).to(dev)
        accs = {}
        for w in (0.0, 1.0, B.guidance):
            x = flow.integrate(flow.field(cond, want, w), torch.randn(a.n, 2, generator=g).to(dev), 100)
            accs[str(w)] = round(flow.nearest_centre_accuracy(x, want, centres), 4)
        out["conditional_dataset"] = name
        out["conditional_rule"] = "nearest class mean of held-out data"
        out["conditional_guidance"] = B.guidance
        out["conditional_accuracy"] = accs[str(B.guidance)]
        out["conditional_accuracy_by_guidance"] = accs
        out["conditional_train_seconds"] = round(ch.seconds, 1)
        out["bar_conditional_ge_0.95"] = out["conditional_accuracy"] >= 0.95

    out["total_seconds"] = round(time.perf_counter() - t_all, 1)
    return out
