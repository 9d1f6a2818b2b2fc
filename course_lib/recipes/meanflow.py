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
| the exactly solvable Gaussian flow | :mod:`course_lib.recipes.meanflow_toy` (:class:`GaussianFlow`, :func:`toy_net`, :func:`train_toy`, :func:`one_step_error`) |

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

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Callable

import torch

from course_lib import checks, flow, metrics, nets, runtime, train
from course_lib.flow import meanflow as mf
from course_lib.recipes import flow_matching_2d as fm2d
from course_lib.recipes.meanflow_toy import GaussianFlow, one_step_error, toy_net, train_toy  # noqa: F401 (the toy flow, here for the notebook)

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
    """Flow matching's loss on a batch x1 (notebook 08's rule, uniform times)."""
    return flow.loss(model, x1)


def mf_rule(B, target: Callable | None = None, weighting: Callable | None = None) -> Callable:
    """MeanFlow's loss on a batch x1 with this budget's times and weights (``target`` and
    ``weighting``: the notebook's own :func:`~course_lib.flow.meanflow.jvp_target` and
    :func:`~course_lib.flow.meanflow.adaptive_loss`)."""
    def rule(u, x1):
        return mf.loss(u, x1, share_equal=B.share_equal, mean=B.time_mean, std=B.time_std, p=B.p, c=B.c,
                       target=target, weighting=weighting)
    return rule


def train_on_spirals(B, model, loss_at: Callable, steps: int, desc: str, progress: bool = True, curve=None):
    """Train ``model`` for ``steps`` steps of ``loss_at(step, x1)`` on fresh spiral batches (data seed =
    step), AdamW with cosine decay. ``curve`` (a :class:`~course_lib.recipes.meanflow_routes.Curve`)
    records the one-step grid TV along the way; its evaluations are not counted as training time."""
    def loss_fn(step):
        if curve is not None:
            curve.record(model, step, steps)
        return loss_at(step, spirals(B.batch, step))
    hist = train.train(model, loss_fn, steps, lr=B.lr, schedule="cosine", progress=progress, desc=desc,
                       ema_decay=B.ema)
    if hist.ema is not None:
        model.load_state_dict(hist.ema.model.state_dict())
    if curve is not None:
        hist.seconds -= curve.eval_seconds
        curve.record(model, steps, steps, hist.seconds)
    return hist


def _train(B, model, rule, steps, desc, progress, curve=None):
    return train_on_spirals(B, model, lambda step, x1: rule(model, x1), steps, desc, progress, curve)


def train_fm(B, rule: Callable | None = None, steps: int | None = None, progress: bool = True):
    """Seed, build and train flow matching on fresh spiral batches (data seed = step) for
    ``steps`` (default ``B.fm_steps``). Returns (model, History)."""
    model = build(B, mean_flow=False)
    return model, _train(B, model, rule or fm_rule, steps or B.fm_steps, "flow matching", progress)


def train_mf(B, rule: Callable | None = None, steps: int | None = None, progress: bool = True, curve=None):
    """Seed, build and train MeanFlow on the same batches for ``steps`` steps (default: as many as
    fit in flow matching's training time, :func:`equal_time_steps`). ``rule(u, x1) -> loss`` (the
    notebook passes its own; default :func:`mf_rule`); ``curve``: as :func:`train_on_spirals`.
    Returns (model, History)."""
    model = build(B, mean_flow=True)
    steps = steps or equal_time_steps(B)
    return model, _train(B, model, rule or mf_rule(B), steps, "MeanFlow", progress, curve)


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
    """Both methods at equal training time: flow matching for ``B.fm_steps``, MeanFlow for
    :func:`equal_time_steps`. Returns SimpleNamespace(fm, fm_hist, mf, mf_hist)."""
    mf_steps = equal_time_steps(B)
    fm_model, fm_hist = train_fm(B, progress=progress)
    mf_model, mf_hist = train_mf(B, steps=mf_steps, progress=progress)
    return SimpleNamespace(fm=fm_model, fm_hist=fm_hist, mf=mf_model, mf_hist=mf_hist)


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
    both floors. Returns {"swd_fm": {k: ..}, "tv_fm": .., "swd_mf": .., "tv_mf": .., "noise_floor",
    "tv_floor"}."""
    entries = [(False, k) for k in fm_steps] + [(True, k) for k in mf_steps]
    bar = train.progress_bar(len(entries), "evaluation") if progress else None
    out = {"swd_fm": {}, "tv_fm": {}, "swd_mf": {}, "tv_mf": {}}
    for is_mf, k in entries:
        model, key = (mf_model, "mf") if is_mf else (fm_model, "fm")
        out[f"swd_{key}"][k] = swd(model, k, is_mf, n=n, seeds=seeds)
        out[f"tv_{key}"][k] = tv(model, k, is_mf, n=n_tv, seeds=seeds[:1])
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


# ----------------------------------------------------------------------------- prompted shapes in latent space
#
# Flow matching in the latent space of a learned autoencoder, as Stable Diffusion 3, Movie Gen and
# Flux do it, here with notebook 07's continuous tokenizer (:mod:`course_lib.recipes.shape_latents`):
# a 16x16 shape is 16 tokens of LATENT_DIM numbers, flattened to one 64-D vector. The prompt (shape,
# colour, position, size: 432 combinations) is one class label of the MLP, with a null class for
# guidance. Flow matching samples with classifier-free guidance (2 network passes a step); MeanFlow has
# the guidance baked into its target (:class:`course_lib.flow.meanflow.Guidance`) and samples with one
# pass a step.
#
# Measured in lecture mode (issue 13; 1 CPU thread beside other jobs, 1000 held-out prompts, Fréchet
# floor 22.0): 4 x 512, flow matching 2500 steps (98 s): Euler w = 1 at 1 / 2 / 8 / 32 steps: prompt
# accuracy 0.95 / 0.98 / 0.98 / 0.98, Fréchet 58 / 30 / 26 / 27; with guidance w = 2 at 8 and 32 steps
# accuracy 1.00 but Fréchet 174 and 141. MeanFlow for the same time (1322 steps) with omega = 2 baked
# in: 1 / 2 steps accuracy 0.93 / 0.96, Fréchet 226 / 233. Guidance buys the last percent of accuracy
# with most of the diversity on this task, so the budget trains both plainly conditional (omega = 1,
# w = 1), and smaller (4 x 384, 1500 steps) to fit the lecture's time.

def prompt_class(prompts: torch.Tensor) -> torch.Tensor:
    """(N, 4) prompts (shape, colour, position, size) -> (N,) int64 class 0..431 (row-major). Every
    attribute must be given: a null id would silently become another class."""
    from course_lib import data
    from course_lib.orders.prompt import check_prompts
    prompts = check_prompts(prompts, allow_null=False)
    out = torch.zeros(prompts.shape[0], dtype=torch.long, device=prompts.device)
    for a, k in enumerate(data.N_VALUES):
        out = out * k + prompts[:, a].long()
    return out


def latent_set(B):
    """The training set: (x (n, 64) flattened latents, y (n,) prompt classes) of ``B.latent.n`` shapes."""
    from course_lib.recipes import shape_latents
    lat, prompts = shape_latents.latent_data(B.latent.n, mode=B.mode)
    return lat.flatten(1).to(runtime.device()), prompt_class(prompts).to(runtime.device())


def build_latent(B, mean_flow: bool, seed: int = 0):
    """The latent model: a 64-D :class:`~course_lib.nets.VelocityMLP` with the 432 prompts as classes
    (plus the null class); MeanFlow's wrapped in :class:`~course_lib.flow.meanflow.MeanFlowNet`."""
    from course_lib import data
    runtime.seed_everything(seed)
    n_classes = 1
    for k in data.N_VALUES:
        n_classes *= k
    cfg = nets.MLPConfig(dim=64, hidden=B.latent.hidden, depth=4, max_freq=B.max_freq, n_classes=n_classes,
                         class_dim=64, time_inputs=2 if mean_flow else 1)
    net = nets.VelocityMLP(cfg)
    return (mf.MeanFlowNet(net=net) if mean_flow else net).to(runtime.device())


def latent_rule(B, mean_flow: bool) -> Callable:
    """The loss on a batch (x1 (B, 64), y (B,)): flow matching with 10% of labels dropped, or MeanFlow
    with the same dropout and guidance baked in (omega = ``B.latent.guidance``, kappa = 0)."""
    if mean_flow:
        g = mf.Guidance(omega=B.latent.guidance, kappa=0.0) if B.latent.guidance != 1.0 else None
        return lambda u, x1, y: mf.loss(u, x1, y=y, p_uncond=0.1, guidance=g, share_equal=B.share_equal,
                                        mean=B.time_mean, std=B.time_std, p=B.p, c=B.c)
    return lambda v, x1, y: flow.loss(v, x1, y=y, p_uncond=0.1)


def _latent_seconds_per_step(B, X, Y, mean_flow: bool, n: int) -> float:
    model = build_latent(B, mean_flow, seed=1)
    rule = latent_rule(B, mean_flow)
    opt = torch.optim.AdamW(model.parameters(), lr=B.lr)

    def step(k):
        idx = torch.randint(0, X.shape[0], (B.latent.batch,), generator=torch.Generator().manual_seed(k)).to(X.device)
        loss = rule(model, X[idx], Y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return runtime.seconds_per_step(step, n, warmup=3)


def train_latent(B, progress: bool = True) -> SimpleNamespace:
    """Flow matching for ``B.latent.steps`` steps and MeanFlow for the same training time (both timed
    first) on the latents of ``B.latent.n`` shapes. Returns SimpleNamespace(fm, fm_hist, mf, mf_hist)."""
    X, Y = latent_set(B)
    ratio = _latent_seconds_per_step(B, X, Y, False, B.calib_steps) / _latent_seconds_per_step(B, X, Y, True, B.calib_steps)
    out = {}
    for key, is_mf, steps in (("fm", False, B.latent.steps), ("mf", True, max(1, round(B.latent.steps * ratio)))):
        model = build_latent(B, is_mf)
        rule = latent_rule(B, is_mf)

        def loss_fn(step, model=model, rule=rule):
            idx = torch.randint(0, X.shape[0], (B.latent.batch,), generator=torch.Generator().manual_seed(step)).to(X.device)
            return rule(model, X[idx], Y[idx])
        out[key] = model
        out[f"{key}_hist"] = train.train(model, loss_fn, steps, lr=B.lr, schedule="cosine", progress=progress,
                                         desc=f"{'MeanFlow' if is_mf else 'flow matching'} on latents")
    return SimpleNamespace(**out)


@torch.no_grad()
def latent_images(model, prompts: torch.Tensor, steps: int, mean_flow: bool, w: float = 1.0, seed: int = 0, *,
                  mode: str):
    """Images (N, 3, 16, 16) for ``prompts`` (N, 4): noise (seed) -> ``steps`` steps in latent space
    (MeanFlow's sampler, or Euler with classifier-free guidance w) -> the decoder of the tokenizer of
    ``mode`` (the budget's: ``B.mode``, the one the model was trained on)."""
    from course_lib.recipes import shape_latents
    y = prompt_class(prompts).to(runtime.device())
    x0 = flow.prior(len(prompts), 64, seed=seed)
    x1 = mf.sample(model, x0, steps, y=y) if mean_flow else flow.integrate(flow.field(model, y, w), x0, steps)
    return shape_latents.decode(x1.view(-1, 16, 64 // 16), mode=mode)


def latent_scores(model, steps: int, mean_flow: bool, *, n: int, mode: str, w: float = 1.0) -> dict:
    """Prompt accuracy and Fréchet distance (:mod:`course_lib.evaluator`) of ``steps``-step samples for
    the prompts of n held-out shapes, against those shapes (decoded by the tokenizer of ``mode``)."""
    from course_lib import evaluator
    ref = evaluator.reference(n)
    imgs = latent_images(model, ref.prompts, steps, mean_flow, w, mode=mode)
    return {"prompt_accuracy": evaluator.prompt_accuracy(imgs, ref.prompts),
            "frechet": evaluator.frechet(imgs, ref.images)}
