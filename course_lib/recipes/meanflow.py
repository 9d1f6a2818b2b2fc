"""Recipe of notebook 10 (MeanFlow: one step): its budgets and its experiments.

Notebook 10 and ``python -m course_lib.bench meanflow`` call the same functions. The notebook writes
out what a learner must read (the average velocity, the identity, the JVP target, the sampler); the
recipe keeps the plumbing: which network, how long to train, and how to evaluate.

| experiment | functions |
| --- | --- |
| MeanFlow and flow matching on spirals at equal training time | :func:`build`, :func:`equal_time_steps`, :func:`train_fm`, :func:`train_mf`, :func:`train_pair` |
| quality against steps (both on one plot) | :func:`swd`, :func:`tv`, :func:`compare`, :data:`STEP_LIST` |
| the average-velocity field over (a, b) | :func:`average_field` |
| one step: the exact-target control, the α-Flow curriculum, TV against training time | :mod:`course_lib.recipes.meanflow_routes` |
| the exactly solvable Gaussian flow and its pitfalls | :mod:`course_lib.recipes.meanflow_toy` (:class:`GaussianFlow`, :func:`toy_net`, :func:`train_toy`, :func:`trained_toy`, :data:`PITFALLS`, :func:`one_step_error`) |
| prompted shapes in the latent space of notebook 07 | :mod:`course_lib.recipes.meanflow_latent` (:func:`train_latent`, :func:`latent_scores`, :func:`latent_images`) |

**Trained weights.** Every model of the notebook goes through the model cache
(:func:`course_lib.train.cached`; the names are in :data:`PRETRAINED` here and in
:mod:`~course_lib.recipes.meanflow_routes`): in lecture mode the course's weights are loaded, with
what the run that made them returned (``model.record``: the History, the one-step TV curve). Step
counts that equalise training time are timed when a model trains, so they are part of that record,
not of the cache key. A model asked for with the learner's exercise functions (``train_mf(B,
target=..., weighting=...)``) is trained with them and written nowhere, or the course's is loaded.

**The network** is notebook 08's (:func:`course_lib.recipes.flow_matching_2d.build_model`: an MLP
with Fourier features of x), with two changes: MeanFlow's gets a second time input (b - a), and both
embed time with frequencies up to ``B.max_freq`` = 5 rad per unit of t instead of 200. The MeanFlow
target contains d u / d a; with frequencies up to 200 that derivative is up to 200 times the size of u
and the bootstrapped target is so noisy that training stalls (measured on the Gaussian-to-Gaussian flow
of tests/test_meanflow.py: one-step error 0.86 at 20 rad, 0.14 at 3 rad). Flow matching gets the same
embedding, so that the comparison is between methods, not networks.

**Times** (:func:`course_lib.flow.meanflow.sample_times`): the paper's logit-normal, translated to the
course's convention, but wider (``B.time_std``): one-step sampling asks for u(x_0, 0, 1), and a narrow
sampler almost never trains at a near 0 and b near 1 at once.

**Loss weight.** Measured (issue 13; 1500 MeanFlow steps on spirals, batch 1024, 1 CPU thread
beside other jobs; one-step SWD on 16384 points, noise floor 0.018): logit-normal(+0.4, 1), 75% at
b = a, p = 1, frequencies up to 5: 0.233; logit-normal(0, 2), 50% at b = a, p = 0.5: 0.089; the same
with logit-normal(+0.4, 1): 0.163; logit-normal(0, 2), 25% at b = a, p = 0.5: 0.082; logit-normal(0, 2),
50% at b = a, p = 0 (plain squared error): 0.066, the budget. The adaptive weight down-weights large
errors, and the flow-matching part of the target has a large irreducible spread on this toy.
With the lecture budget (bench, 1 thread beside other jobs): flow matching 5000 steps (20.7 steps/s),
MeanFlow 2584 steps in the same time (11.6 steps/s); SWD of MeanFlow 1 / 2 steps 0.054 / 0.054 against
flow matching's 0.040 at 100 steps and 1.53 at 1 step (floor 0.019); grid TV 0.326 against 0.088 (floor
0.052): the SWD bar is met, but the one-step samples are a filled disk with the spiral's rim, not yet
the arms (the SWD's blind spot, notebook 08). Why, and what the α-Flow curriculum and an exact-target
control do about it: :mod:`course_lib.recipes.meanflow_routes` (notebook 10, section 6).

Seeds: every experiment seeds itself. Evaluation seed s samples from noise seed ``100 + s`` and
compares with held-out spirals (notebook 08's :func:`~course_lib.recipes.flow_matching_2d.swd`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Callable

import torch

from course_lib import checks, distributed, flow, metrics, nets, runtime, train
from course_lib.flow import meanflow as mf
from course_lib.recipes import flow_matching_2d as fm2d
from course_lib.recipes.meanflow_latent import (latent_images, latent_scores, prompt_class,  # noqa: F401 (section 8,
                                                train_latent, trained_latent)                 # here for the notebook)
from course_lib.recipes.meanflow_toy import (PITFALLS, GaussianFlow, note_course_model,  # noqa: F401 (the toy flow,
                                             one_step_error, toy_name, toy_net, train_toy,
                                             trained_toy)                                 # for the notebook)
from course_lib.recipes.registry import Pretrained

@dataclass(frozen=True)
class Latent:
    """Section 8's budget: MeanFlow against flow matching on the shapes' continuous tokens."""
    n: int                    # training shapes (their latents: 64 numbers each)
    hidden: int               # the latent MLP's width (depth 4)
    batch: int                # latents per step
    steps: int                # flow matching's steps (MeanFlow: as many as take the same time)
    guidance: float           # omega baked into MeanFlow, w of flow matching's guidance (1: none)
    n_eval: int               # held-out prompts per score


@dataclass(frozen=True)
class Routes:
    """Section 6's budget: the routes to a one-step spiral (:mod:`course_lib.recipes.meanflow_routes`)."""
    alpha_window: tuple       # α-Flow anneals α from 1 to 0 between these fractions of its steps
    exact_pairs: int          # noise points the control maps through flow matching's 100 Euler steps
    exact_steps: int          # the control's training steps (a plain regression, flow matching's cost)
    curve_points: int         # one-step TV evaluations along each run


@dataclass(frozen=True)
class Budget:
    """Notebook 10's budget in one mode."""
    mode: str                 # the course mode this budget is for
    hidden: int               # the 2-D network's width
    depth: int                # its hidden layers
    batch: int                # spirals points per step
    fm_steps: int             # flow matching's training steps (MeanFlow: the same time)
    lr: float                 # AdamW's peak learning rate (cosine decay)
    n_eval: int               # samples per SWD estimate in the notebook
    n_tv: int                 # samples per grid-TV estimate
    space_features: int       # Fourier features of x
    space_scale: float        # their frequency scale
    max_freq: float           # the highest time frequency (rad per unit of t)
    share_equal: float        # share of MeanFlow's pairs with a = b
    time_mean: float          # MeanFlow's logit-normal times: mean
    time_std: float           # and standard deviation
    p: float                  # the adaptive loss weight's power (0: plain squared error)
    c: float                  # and its constant
    ema: float | None         # EMA decay of the weights (None: no EMA)
    calib_steps: int          # steps timed to equalise the training time
    toy_steps: int            # steps of the broken-target experiment
    latent: Latent            # section 8, on the shapes' continuous tokens
    routes: Routes            # section 6, the routes to a one-step spiral


_TOY = dict(space_features=64, space_scale=1.0, max_freq=5.0, share_equal=0.5, time_mean=0.0, time_std=2.0,
            p=0.0, c=1e-3, ema=None)          # the same in every mode
BUDGETS = {
    "quick": Budget("quick", hidden=128, depth=3, batch=512, fm_steps=500, lr=3e-3, n_eval=2048, n_tv=4096,
                    calib_steps=10, toy_steps=300, **_TOY,
                    latent=Latent(n=2048, hidden=256, batch=128, steps=300, guidance=1.0, n_eval=256),
                    routes=Routes(alpha_window=(0.0, 1.0), exact_pairs=2048, exact_steps=150, curve_points=4)),
    "lecture": Budget("lecture", hidden=256, depth=4, batch=1024, fm_steps=5000, lr=2e-3, n_eval=8192, n_tv=20000,
                      calib_steps=30, toy_steps=1500, **_TOY,
                      latent=Latent(n=8192, hidden=384, batch=256, steps=1500, guidance=1.0, n_eval=1000),
                      routes=Routes(alpha_window=(0.0, 1.0), exact_pairs=16384, exact_steps=1000, curve_points=8)),
    "full": Budget("full", hidden=512, depth=5, batch=4096, fm_steps=20000, lr=1e-3, n_eval=16384, n_tv=50000,
                   calib_steps=50, toy_steps=3000, **_TOY,
                   latent=Latent(n=32768, hidden=1024, batch=512, steps=20000, guidance=1.0, n_eval=4000),
                   routes=Routes(alpha_window=(0.0, 1.0), exact_pairs=65536, exact_steps=4000, curve_points=10)),
}

STEP_LIST = (1, 2, 4, 8, 16, 32, 100)     # flow matching's Euler steps in the comparison
MF_STEPS = (1, 2)                          # MeanFlow's steps
NOISE_SEED = fm2d.NOISE_SEED


def budget(mode: str | None = None) -> Budget:
    """This notebook's budget in the current (or given) mode."""
    return runtime.pick(BUDGETS, mode)


spirals = fm2d.spirals


def build(B, mean_flow: bool, seed: int = 0):
    """The network of both methods, seeded: a :class:`~course_lib.nets.VelocityMLP` v(x, t) for flow
    matching, or a :class:`~course_lib.flow.meanflow.MeanFlowNet` u(z, a, b) (the same MLP with a
    second time input, b - a) for MeanFlow."""
    runtime.seed_everything(seed)
    cfg = nets.MLPConfig(dim=2, hidden=B.hidden, depth=B.depth, max_freq=B.max_freq,
                         space_features=B.space_features, space_scale=B.space_scale,
                         time_inputs=2 if mean_flow else 1)
    net = nets.VelocityMLP(cfg)
    return (mf.MeanFlowNet(net=net) if mean_flow else net).to(runtime.device())


def describe_network(B) -> str:
    return (f"VelocityMLP {B.depth}x{B.hidden} SiLU, {B.space_features} Fourier features of x (scale "
            f"{B.space_scale}), time features up to {B.max_freq:g} rad; MeanFlow: + a second time input b - a")


def fm_rule(model, x1):
    """Flow matching's loss on a batch x1 (notebook 08's rule, uniform times). The noise and times are
    drawn for the whole batch, in the order and from the generator flow.loss draws them, and under
    torchrun each rank takes its rows (:func:`course_lib.distributed.shard`): N ranks share one step's
    work, and one process gives the same draws and weights as ``flow.loss(model, x1)``."""
    x0 = torch.randn_like(x1)                                                        # (N, 2)
    t = flow.sample_time(len(x1), device=x1.device).to(x1.dtype)                      # (N,)
    shard = distributed.shard
    return flow.loss(model, shard(x1), x0=shard(x0), t=shard(t))


def mf_rule(B, target: Callable | None = None, weighting: Callable | None = None) -> Callable:
    """MeanFlow's loss on a batch x1 with this budget's times and weights (``target`` and
    ``weighting``: the notebook's own :func:`~course_lib.flow.meanflow.jvp_target` and
    :func:`~course_lib.flow.meanflow.adaptive_loss`)."""
    def rule(u, x1):
        # noise and times for the whole batch (as mf.loss draws them), then this rank's rows under
        # torchrun: the JVP target's gradients are averaged by train.train's explicit all-reduce
        x0 = torch.randn_like(x1)                                                    # (N, 2)
        a, b = mf.sample_times(len(x1), B.share_equal, mean=B.time_mean, std=B.time_std, device=x1.device)
        shard = distributed.shard
        return mf.loss(u, shard(x1), x0=shard(x0), a=shard(a).to(x1.dtype), b=shard(b).to(x1.dtype),
                       p=B.p, c=B.c, target=target, weighting=weighting)
    return rule


class Curve:
    """The one-step grid TV of a MeanFlow-type model (x0 + u(x0, 0, 1)) along its training: ``points``
    evaluations on ``n`` samples (noise seed ``NOISE_SEED``), each with the training seconds and steps
    spent so far. The time spent evaluating is kept in ``eval_seconds``, out of ``seconds``.
    :meth:`as_record` gives the lists that go into the model's record (``model.record["curve"]``)."""

    def __init__(self, n: int, points: int = 8):
        self.n, self.points = checks.positive_int(n, "n"), checks.positive_int(points, "points")
        self.steps, self.seconds, self.tv = [], [], []
        self.eval_seconds, self._t0 = 0.0, None

    def record(self, model, step: int, total: int, seconds: float | None = None):
        """Called before every step by :func:`train_on_spirals` (evaluates at ``points`` evenly spaced
        steps), and once after training with its final ``seconds``."""
        now = time.perf_counter()
        if self._t0 is None:
            self._t0 = now
        if seconds is None and step % max(1, total // self.points):
            return
        with runtime.evaluating(model), torch.no_grad():
            self.tv.append(tv(model, 1, True, n=self.n))
        self.steps.append(step)
        self.seconds.append(seconds if seconds is not None else now - self._t0 - self.eval_seconds)
        self.eval_seconds += time.perf_counter() - now

    def as_record(self) -> dict:
        """{"steps", "seconds", "tv"}: lists of numbers, one entry per evaluation."""
        return {"steps": list(self.steps), "seconds": list(self.seconds), "tv": list(self.tv)}


def train_on_spirals(B, model, loss_at: Callable, steps: int, desc: str, progress: bool = True,
                     curve: bool = False) -> dict:
    """Train ``model`` for ``steps`` steps of ``loss_at(step, x1)`` on fresh spiral batches (data seed =
    step), AdamW with cosine decay. ``curve``: record the one-step grid TV along the way (a
    :class:`Curve` of ``B.n_tv`` samples at ``B.routes.curve_points`` steps; its evaluations are not
    counted as training time). Returns {"history": History} and, with ``curve``, "curve":
    :meth:`Curve.as_record`: what :func:`course_lib.train.cached` keeps with the weights."""
    checks.positive_int(steps, "steps")
    tracker = Curve(B.n_tv, B.routes.curve_points) if curve else None

    def loss_fn(step):
        if tracker is not None:
            tracker.record(model, step, steps)
        return loss_at(step, spirals(B.batch, step))
    hist = train.train(model, loss_fn, steps, lr=B.lr, schedule="cosine", progress=progress, desc=desc,
                       ema_decay=B.ema)
    if hist.ema is not None:
        model.load_state_dict(hist.ema.model.state_dict())
    if tracker is None:
        return {"history": hist}
    hist.seconds -= tracker.eval_seconds
    tracker.record(model, steps, steps, hist.seconds)
    return {"history": hist, "curve": tracker.as_record()}


def spirals_model(name: str, B, mean_flow: bool, fit: Callable, steps: int | None, *, share: bool = True):
    """The spirals model ``name`` (``meanflow-spirals-*``) through the model cache: config = the budget
    and ``steps`` (None: the default the recipe picks, timed when it trains). ``fit(model)`` returns
    what :func:`train_on_spirals` does; the model comes back with it as ``model.record``."""
    if steps is not None:
        checks.positive_int(steps, "steps")
    return train.cached(name, {"budget": B, "steps": steps}, lambda: build(B, mean_flow), fit, share=share)


def train_fm(B, steps: int | None = None, progress: bool = True):
    """Flow matching on fresh spiral batches (data seed = step) for ``steps`` (None: ``B.fm_steps``),
    through the model cache (``meanflow-spirals-fm``). Returns the model; ``model.history`` is the
    History of the run that made it."""
    return spirals_model("meanflow-spirals-fm", B, False, lambda m: train_on_spirals(
        B, m, lambda step, x1: fm_rule(m, x1), B.fm_steps if steps is None else steps, "flow matching", progress),
        steps)


def train_mf(B, target: Callable | None = None, weighting: Callable | None = None, steps: int | None = None,
             progress: bool = True):
    """MeanFlow on the same batches for ``steps`` (None: as many as fit in flow matching's training
    time, :func:`equal_time_steps`, timed when it trains) with :func:`mf_rule` (``target``,
    ``weighting``: the notebook's exercises; None: the library's), recording the one-step TV curve,
    through the model cache (``meanflow-spirals-mf``). With the learner's functions the model is
    trained with them and written nowhere, or the course's weights (made with the library's) are
    loaded. Returns the model; ``model.record``: {"history", "curve"}."""
    rule = mf_rule(B, target, weighting)

    def fit(m):
        n = equal_time_steps(B, rule) if steps is None else steps
        return train_on_spirals(B, m, lambda step, x1: rule(m, x1), n, "MeanFlow", progress, curve=True)
    learners = target is not None or weighting is not None
    model = spirals_model("meanflow-spirals-mf", B, True, fit, steps, share=not learners)
    note_course_model(model, learners, "MeanFlow target and loss")
    return model


def step_seconds(B, mean_flow: bool, rule, n: int) -> float:
    """Seconds per training step of ``rule(model, x1)`` on this budget's network (``mean_flow``: MeanFlow's)
    and batch, timed over ``n`` steps after 3 warm-up steps."""
    model = build(B, mean_flow, seed=1)
    opt = torch.optim.AdamW(model.parameters(), lr=B.lr)

    def step(k):
        loss = rule(model, spirals(B.batch, 10_000 + k))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return runtime.seconds_per_step(step, n, warmup=3)


def equal_time_steps(B, mf_rule_fn: Callable | None = None) -> int:
    """How many MeanFlow steps cost as much time as ``B.fm_steps`` flow-matching steps here: both
    timed over ``B.calib_steps`` steps of the same network and batch (a MeanFlow step also pays for
    the JVP on the rows with b > a)."""
    fm_s = step_seconds(B, False, fm_rule, B.calib_steps)
    mf_s = step_seconds(B, True, mf_rule_fn or mf_rule(B), B.calib_steps)
    return max(1, int(round(B.fm_steps * fm_s / mf_s)))


def train_pair(B, progress: bool = True) -> SimpleNamespace:
    """Both methods at equal training time (:func:`train_fm`, :func:`train_mf` with the library's
    functions). Returns SimpleNamespace(fm, fm_hist, mf, mf_hist)."""
    fm_model, mf_model = train_fm(B, progress=progress), train_mf(B, progress=progress)
    return SimpleNamespace(fm=fm_model, fm_hist=fm_model.history, mf=mf_model, mf_hist=mf_model.history)


# ----------------------------------------------------------------------------- evaluation

def sampler(model, steps: int, mean_flow: bool) -> Callable:
    """``sample_fn(n, seed) -> (n, 2)``: MeanFlow's few-step sampler, or flow matching's Euler."""
    def sample_fn(n, s):
        x0 = flow.prior(n, 2, seed=NOISE_SEED + s, device=checks.model_device(model))
        return mf.sample(model, x0, steps) if mean_flow else flow.integrate(model, x0, steps)
    return sample_fn


def swd(model, steps: int, mean_flow: bool, *, n: int, seeds=(0,)) -> float:
    """SWD (256 projections) of ``steps``-step samples to held-out spirals, averaged over seeds."""
    return metrics.swd_to_data(sampler(model, steps, mean_flow), spirals, n, seeds)


def tv(model, steps: int, mean_flow: bool, *, n: int, seeds=(0,)) -> float:
    """Grid TV (32 x 32 cells over [-4, 4]^2) of ``steps``-step samples to held-out spirals."""
    return metrics.grid_tv_to_data(sampler(model, steps, mean_flow), spirals, n, seeds)


def compare(fm_model, mf_model, *, n: int, n_tv: int, seeds=(0,), fm_steps=STEP_LIST, mf_steps=MF_STEPS,
            progress: bool = True) -> dict:
    """SWD and grid TV of flow matching at ``fm_steps`` Euler steps and MeanFlow at ``mf_steps``, with
    both floors. Each entry samples once per seed (the first seed: max(n, n_tv) points, the TV's, whose
    first n the SWD scores too), which halves the sampling of two separate draws. Returns {"swd_fm": {k: ..}, "tv_fm": .., "swd_mf": .., "tv_mf": .., "noise_floor",
    "tv_floor"}."""
    seeds = tuple(seeds)
    entries = [(False, k) for k in fm_steps] + [(True, k) for k in mf_steps]
    bar = train.progress_bar(len(entries), "evaluation") if progress else None
    out = {"swd_fm": {}, "tv_fm": {}, "swd_mf": {}, "tv_mf": {}}
    for is_mf, k in entries:
        model, key = (mf_model, "mf") if is_mf else (fm_model, "fm")
        draws, draw = {}, sampler(model, k, is_mf)

        def sample_fn(m, s):                          # one draw per seed: the TV's points start the SWD's
            if s not in draws:
                draws[s] = draw(max(n, n_tv) if s == seeds[0] else n, s)
            return draws[s][:m]
        out[f"swd_{key}"][k] = metrics.swd_to_data(sample_fn, spirals, n, seeds)
        out[f"tv_{key}"][k] = metrics.grid_tv_to_data(sample_fn, spirals, n_tv, seeds[:1])
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    out["noise_floor"] = fm2d.noise_floor(n, seeds)
    out["tv_floor"] = fm2d.tv_floor(n_tv, seeds[:1])
    return out


def average_field(u, a: float, b: float) -> Callable:
    """The field x -> u(x, a, b) as a ``v(x, t)`` for :func:`course_lib.viz.vector_field` (its t is
    ignored): where a particle at x at time a lands at time b is x + (b - a) u(x, a, b)."""
    def v(x, t):
        return u(x, torch.full_like(t, a), torch.full_like(t, b))
    v.model = u
    return v


def _toy(pitfall: str) -> Callable:
    def make(mode: str):
        return trained_toy(GaussianFlow(), budget(mode).toy_steps, pitfall, mode=budget(mode).mode)
    return make


# the models of notebook 10 the course ships (make pretrain); the routes' in meanflow_routes
PRETRAINED = (Pretrained("meanflow-spirals-fm", ("10",), lambda mode: train_fm(budget(mode))),
              Pretrained("meanflow-spirals-mf", ("10",), lambda mode: train_mf(budget(mode))),
              Pretrained("meanflow-latent-fm", ("10",), lambda mode: trained_latent(budget(mode), "fm")),
              Pretrained("meanflow-latent-mf", ("10",), lambda mode: trained_latent(budget(mode), "mf")),
              *(Pretrained(toy_name(p), ("10",), _toy(p)) for p in PITFALLS))
