"""Notebook 10's routes to a one-step spiral: why one MeanFlow step draws a disk, and what helps.

One MeanFlow step trained from scratch on the spirals draws a filled disk with the spiral's rim
(section 5 of the notebook). Two experiments tell the network from the objective:

| experiment | functions |
| --- | --- |
| the exact-target control: the same network regressed on flow matching's own 100-step map | :func:`exact_pairs`, :func:`train_exact` |
| the α-Flow curriculum (:mod:`course_lib.flow.alphaflow`) at MeanFlow's training time | :func:`alpha_rule`, :func:`alpha_equal_time_steps`, :func:`train_alpha` |
| the one-step grid TV against training time, for every route | :class:`~course_lib.recipes.meanflow.Curve` |

**The control** learns only u(x_0, 0, 1), from pairs (x_0, x_1) where x_1 is where the notebook's
flow-matching model takes x_0 in 100 Euler steps: a plain regression, with no bootstrapped target. If
it draws the arms, the network can represent the one-step map, and what is slow is MeanFlow's
objective. It is a distillation (it needs the trained flow-matching model and 100 passes per pair), so
it is a control, not a competitor: its training time is reported beside the others, not equalised.

**α-Flow** trains the same network as MeanFlow, for as long as MeanFlow trains (both timed here), with
α annealed from 1 (trajectory flow matching) to 0 (MeanFlow) over the window ``B.routes.alpha_window``
of its steps (see :func:`course_lib.flow.alphaflow.alpha_schedule`).

**Measured** (issue 22; lecture budget, 1 CPU thread on a machine shared with about eight other jobs,
one-step grid TV on 20000 points, one seed; flow matching 5000 steps: 100-step TV 0.114, so the bar
is 0.171; its 1-step TV 0.984):

* the exact-target control (2500 steps on 32768 pairs): one-step TV 0.164 after 250 steps, 0.139 after
  1000, 0.132 after 2500 (SWD 0.049, flow matching's 100 steps 0.047): the network draws the arms, and
  quickly, once its target is clean. The budget trains it 1000 steps on 16384 pairs;
* α-Flow with the paper's B/2 window (α from 1 to 0 over the whole run), 3305 steps in flow matching's
  training time: one-step TV 0.95 while α = 1 (trajectory flow matching regresses u(x_0, 0, 1) on v,
  whose mean at t = 0 collapses the samples), then 0.58 at 60% of the run, 0.33 at 90%, 0.319 at the end
  (SWD 0.087): about where MeanFlow from scratch ends (TV 0.326 in the bench run of issue 13), still
  falling, and far from the bar;
* a warm start from that flow-matching model (every weight copied, the b - a input zeroed, so u = v at
  the start), then MeanFlow's loss for 1300 steps: one-step TV 0.42 after 130 steps, 0.36 after 1300.
  A good velocity field is not what MeanFlow lacks here: the target of the long intervals is.
* MeanFlow from scratch with an EMA of the weights (decay 0.999; the papers train with one), 2600
  steps: one-step TV 0.351, SWD 0.195: no better (the budget keeps ``ema=None``).

``python -m course_lib.bench meanflow`` in lecture mode (same busy machine, 1 thread; TV on 50000
points, SWD on 3 x 16384): flow matching 5000 steps in 323 s, 100-step TV 0.088 (bar 0.132), SWD 0.040;
MeanFlow 2679 steps in 281 s: one-step TV 0.322, SWD 0.052 (both SWD bars met); α-Flow 5367 steps in
384 s (the step timing under load gave it more time than flow matching's): TV 0.313, SWD 0.082 (2.0 x
flow matching's 100 steps: the SWD bar missed), two steps TV 0.323, SWD 0.048; the control 1000 steps in
65 s (pairs 47 s): TV 0.118, SWD 0.047, inside the bar.

So no route trained from scratch reached the bar within the lecture's time on this toy, while the
same network reaches it within a few hundred steps of a clean target; the notebook shows each curve.
"""
from __future__ import annotations

import time

import torch

from course_lib import flow
from course_lib.flow import alphaflow as af
from course_lib.recipes import meanflow as recipe
from course_lib.recipes.registry import Pretrained


# ----------------------------------------------------------------------------- the exact-target control

@torch.no_grad()
def exact_pairs(fm_model, n: int, steps: int = 100, seed: int = 7):
    """(x0, x1), each (n, 2): noise (seed ``seed``) and where ``fm_model`` takes it in ``steps`` Euler
    steps, the one-step map the control regresses on. Returns (x0, x1, seconds)."""
    t0 = time.perf_counter()
    x0 = flow.prior(n, 2, seed=seed)
    x1 = flow.integrate(fm_model, x0, steps)
    return x0, x1, time.perf_counter() - t0


def train_exact(B, steps: int | None = None, progress: bool = True):
    """MeanFlow's network (same build and seed as :func:`~course_lib.recipes.meanflow.train_mf`) trained
    on u(x0, 0, 1) -> x1 - x0 alone, for ``steps`` (None: ``B.routes.exact_steps``), batches of
    ``B.batch`` pairs (seed = step) from :func:`exact_pairs` of ``B.routes.exact_pairs`` noise points
    through the flow-matching model of the same budget (:func:`~course_lib.recipes.meanflow.train_fm`),
    recording the one-step TV curve, through the model cache (``meanflow-spirals-exact``). Returns the
    model; ``model.record``: {"history", "curve", "pair_seconds"} (the seconds the pairs took)."""
    def fit(model):
        x0, x1, pair_seconds = exact_pairs(recipe.train_fm(B, progress=progress), B.routes.exact_pairs)
        n = x0.shape[0]

        def loss_at(step, _x1):
            idx = torch.randint(0, n, (B.batch,), generator=torch.Generator().manual_seed(step))
            z0, z1 = x0[idx].to(_x1.device), x1[idx].to(_x1.device)             # (batch, 2) each
            return (model(z0, 0.0, 1.0) - (z1 - z0)).pow(2).sum(1).mean()
        out = recipe.train_on_spirals(B, model, loss_at, B.routes.exact_steps if steps is None else steps,
                                      "exact target", progress, curve=True)
        return {**out, "pair_seconds": pair_seconds}
    return recipe.spirals_model("meanflow-spirals-exact", B, True, fit, steps)


# ----------------------------------------------------------------------------- the α-Flow curriculum

def _alpha_loss(B, u, x1, alpha: float):
    return af.loss(u, x1, alpha, share_equal=B.share_equal, mean=B.time_mean, std=B.time_std, p=B.p, c=B.c)


def alpha_rule(B, steps: int):
    """``loss_at(step, x1, u)``: α-Flow's loss at the curriculum's α for that step of ``steps``, with
    MeanFlow's times and weights of this budget."""
    start, end = B.routes.alpha_window

    def loss_at(step, x1, u):
        return _alpha_loss(B, u, x1, af.alpha_schedule(step, steps, start=start, end=end))
    return loss_at


def alpha_equal_time_steps(B) -> int:
    """How many α-Flow steps cost as much time as ``B.fm_steps`` flow-matching steps here (as
    :func:`~course_lib.recipes.meanflow.equal_time_steps` does for MeanFlow): a step at α = 1, at
    0 < α < 1 (one more forward pass) and at α = 0 (the JVP) are each timed over ``B.calib_steps``
    steps, and weighted by the share of the run the schedule spends in each."""
    start, end = B.routes.alpha_window
    grid = [af.alpha_schedule(k, 1000, start=start, end=end) for k in range(1000)]
    share = {1.0: sum(a == 1.0 for a in grid) / 1000, 0.0: sum(a == 0.0 for a in grid) / 1000}
    share[0.5] = 1.0 - share[1.0] - share[0.0]
    fm_s = recipe.step_seconds(B, False, recipe.fm_rule, B.calib_steps)
    cost = sum(w * recipe.step_seconds(B, True, lambda u, x1, al=al: _alpha_loss(B, u, x1, al), B.calib_steps)
               for al, w in share.items() if w > 0)
    return max(1, int(round(B.fm_steps * fm_s / cost)))


def train_alpha(B, steps: int | None = None, progress: bool = True):
    """Seed, build (as MeanFlow) and train with the α-Flow curriculum for ``steps`` (None:
    :func:`alpha_equal_time_steps`, timed when it trains), recording the one-step TV curve, through the
    model cache (``meanflow-spirals-alpha``). Returns the model; ``model.record``: {"history", "curve"}."""
    def fit(model):
        n = alpha_equal_time_steps(B) if steps is None else steps
        rule = alpha_rule(B, n)
        return recipe.train_on_spirals(B, model, lambda step, x1: rule(step, x1, model), n, "α-Flow", progress,
                                       curve=True)
    return recipe.spirals_model("meanflow-spirals-alpha", B, True, fit, steps)


PRETRAINED = (Pretrained("meanflow-spirals-exact", ("10",), lambda mode: train_exact(recipe.budget(mode))),
              Pretrained("meanflow-spirals-alpha", ("10",), lambda mode: train_alpha(recipe.budget(mode))))
