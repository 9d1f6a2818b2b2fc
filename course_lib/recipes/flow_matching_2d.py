"""Recipe of notebook 08 (flow matching in 2-D): its budgets and its experiments.

Notebook 08 and ``python -m course_lib.bench flow2d`` call the same functions, so a benchmark figure
is a figure the notebook shows (at the benchmark's sample size). The notebook writes out what a
learner must read (the training pair, the loss, the sampler, guidance, the distance); the recipe
keeps the plumbing: which network, how long to train, with which seeds, and how to evaluate.

| experiment | functions |
| --- | --- |
| MSE predicts the mean (section 1) | :func:`two_answers`, :func:`train_regressor` |
| the main model on spirals (section 3) | :func:`build_model`, :func:`train_spirals`, :func:`loss_by_time` |
| steps against quality (section 5) | :func:`swd`, :func:`swd_table`, :func:`noise_floor`, :func:`tv`, :func:`tv_floor`, :func:`same_radii_disk` |
| reflow and minibatch OT (section 6) | :func:`straighten`, :func:`start_noise`, :data:`PAIRINGS`, :func:`compare_pairings` |
| conditional flow and guidance (section 7) | :func:`train_conditional`, :func:`class_centres`, :func:`guided_samples`, :func:`class_accuracy` |
| digits as 64-D points (section 8) | :func:`digit_vectors`, :func:`train_digits`, :func:`digit_judge`, :func:`to_images` |

(:func:`loss_by_time`, :func:`start_noise`, section 5's functions, :func:`class_centres` and
:func:`class_accuracy` are :mod:`~course_lib.recipes.flow_matching_2d_quality`'s, re-exported here.)

Seeds: every experiment seeds itself (initialisation and training draws), so no figure depends on what ran
before it. Every model goes through :func:`course_lib.train.cached` (the course's shipped weights, the disk
cache, or training now; :data:`PRETRAINED`); its key holds what the weights depend on (:class:`Net`, steps,
batch, seed; a reflowed model also its teacher's key), not the evaluation sizes. A model trained with a
learner's function (``rule``, ``loss``) is never cached: it is the course's shipped model when the weights
switch says "load", else trained with that function (``model.cache_key`` is then None)."""
from __future__ import annotations

import copy
import dataclasses
import functools
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Callable

import torch

from course_lib import checks, data, distributed, flow, nets, runtime, train
from course_lib.recipes.flow_matching_2d_quality import (COND_DATA, NOISE_SEED, STEP_LIST,  # noqa: F401
                                                         class_accuracy, class_centres, loss_by_time, noise_floor,
                                                         same_radii_disk, spirals, start_noise, swd, swd_table, tv,
                                                         tv_floor)
from course_lib.recipes.registry import Pretrained


@dataclass(frozen=True)
class Reflow:
    """Section 5's budget: one round of reflow (Liu et al. 2023)."""
    pairs: int                # teacher pairs (noise, the teacher's sample)
    teacher_steps: int        # the teacher's Heun steps per pair
    steps: int                # the student's training steps
    lr: float                 # the student's learning rate


@dataclass(frozen=True)
class OT:
    """Section 6's budget: the pairings compared (minibatch OT), the same network each."""
    steps: int                # training steps per pairing
    batch: int                # points per batch (OT pairs within it)


@dataclass(frozen=True)
class Digits:
    """Section 8's budget: a conditional flow on the 8x8 digits."""
    hidden: int               # the network's width (4 layers)
    steps: int                # training steps
    batch: int                # digits per step


@dataclass(frozen=True)
class Budget:
    """Notebook 08's budget in one mode."""
    mode: str                 # the course mode this budget is for
    hidden: int               # the velocity network's width
    depth: int                # its hidden layers
    batch: int                # points per step
    steps: int                # the main model's training steps
    lr: float                 # AdamW's peak learning rate (cosine decay)
    n_eval: int               # samples per SWD estimate
    cond_steps: int           # the conditional flow's steps
    guidance: float           # the guidance scale shown
    regress_steps: int        # steps of the plain regressor
    n_frames: int             # frames of the path animation
    eval_seeds: int           # evaluation seeds averaged
    space_features: int       # Fourier features of x
    space_scale: float        # their frequency scale
    ema: float | None         # EMA decay of the weights (None: none)
    n_tv: int                 # samples per grid-TV estimate
    reflow: Reflow            # section 5
    ot: OT                    # section 6
    digits: Digits            # section 8


@dataclass(frozen=True)
class Net:
    """What a velocity network's weights depend on besides the steps, batch and seed of its run (the
    budget's training fields: the key of :func:`course_lib.train.cached`, without the evaluation sizes)."""
    mode: str
    hidden: int
    depth: int
    lr: float
    space_features: int
    space_scale: float
    ema: float | None


def net(B) -> Net:
    """The training fields of budget ``B`` (:class:`Net`)."""
    return Net(**{f.name: getattr(B, f.name) for f in dataclasses.fields(Net)})


_SPACE = dict(space_features=64, space_scale=1.0, ema=None)          # the same in every mode
BUDGETS = {
    "quick": Budget("quick", hidden=128, depth=3, batch=512, steps=800, lr=3e-3, n_eval=2048, cond_steps=600,
                    guidance=3.0, regress_steps=150, n_frames=6, eval_seeds=1, n_tv=4096, **_SPACE,
                    reflow=Reflow(pairs=4096, teacher_steps=8, steps=300, lr=1.5e-3), ot=OT(steps=400, batch=256),
                    digits=Digits(hidden=256, steps=800, batch=128)),
    "lecture": Budget("lecture", hidden=256, depth=4, batch=1024, steps=8000, lr=2e-3, n_eval=4096, cond_steps=1200,
                      guidance=3.0, regress_steps=400, n_frames=11, eval_seeds=1, n_tv=10000, **_SPACE,
                      reflow=Reflow(pairs=50000, teacher_steps=32, steps=3000, lr=2e-3), ot=OT(steps=600, batch=512),
                      digits=Digits(hidden=512, steps=1200, batch=256)),
    "full": Budget("full", hidden=512, depth=5, batch=4096, steps=20000, lr=1e-3, n_eval=16384, cond_steps=10000,
                   guidance=3.0, regress_steps=1000, n_frames=21, eval_seeds=3, n_tv=50000, **_SPACE,
                   reflow=Reflow(pairs=100000, teacher_steps=64, steps=10000, lr=5e-4),
                   ot=OT(steps=20000, batch=1024), digits=Digits(hidden=1024, steps=20000, batch=512)),
}

def budget(mode: str | None = None) -> Budget:
    """This notebook's budget in the current (or given) mode: ``budget().steps``."""
    return runtime.pick(BUDGETS, mode)


def _cached(name: str, config: dict, build: Callable, fit: Callable, share: bool = True):
    """:func:`course_lib.train.cached`; returns (model, the History of the run that made it). The model's
    ``cache_key`` is the stem of its cache file if it holds the course's weights (trained with the
    course's function, or loaded), else None (trained here with a learner's function)."""
    model = train.cached(name, config, build, fit, share=share)
    model.cache_key = train.cache_path(name, config).stem if share or model.from_cache else None
    return model, model.history


# ----------------------------------------------------------------------------- MSE predicts the mean

def two_answers(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Section 1's data: prompts c (n, 1) uniform in [-1, 1], each with two right answers (c, +1.5) and
    (c, -1.5) equally often, plus noise of std 0.1: returns (c (n, 1), y (n, 2)) on the course's device."""
    g = torch.Generator().manual_seed(seed)
    c = torch.rand(n, 1, generator=g) * 2 - 1                                    # (n, 1)
    side = (torch.randint(0, 2, (n, 1), generator=g) * 2 - 1).float()            # (n, 1): +1 or -1
    y = torch.cat([c, 1.5 * side], 1) + 0.1 * torch.randn(n, 2, generator=g)     # (n, 2)
    return c.to(runtime.device()), y.to(runtime.device())


def train_regressor(B, loss: Callable | None = None, *, seed: int = 0, progress: bool = True):
    """Seed and train a 1 -> 64 -> 64 -> 2 SiLU MLP c -> y on :func:`two_answers` (batches of 512, data seed
    = step, ``B.regress_steps`` steps at lr 3e-3) with ``loss(model, c, y)`` (default: the MSE; the
    notebook passes its own). Returns (model, History)."""
    nn = torch.nn

    def build():
        return nn.Sequential(nn.Linear(1, 64), nn.SiLU(), nn.Linear(64, 64), nn.SiLU(),
                             nn.Linear(64, 2)).to(runtime.device())

    def fit(model):
        rule = loss or (lambda m, c, y: torch.nn.functional.mse_loss(m(c), y))
        return train.train(model, lambda step: rule(model, *two_answers(512, step)), B.regress_steps, lr=3e-3,
                           progress=progress, desc="MSE regressor")
    runtime.seed_everything(seed)
    return _cached("flow2d-regressor", dict(mode=B.mode, steps=B.regress_steps, seed=seed), build, fit,
                   share=loss is None)


# ----------------------------------------------------------------------------- the main model
# Lecture mode, measured (issue 15; Euler-100 grid TV on 50,000 points, floor 0.052): 4x256 MLP, 5000 steps
# 0.126; + 64 Fourier features of x at scale 1.0 0.092 (0.7: 0.097; 2.0 + EMA 0.999: 0.126; 1.0 + EMA
# 0.098); scale 1.0, 8000 steps (the budget) 0.072 (112 s).

def build_model(B, dim: int = 2, n_classes: int = 0, hidden: int | None = None,
                depth: int | None = None, space: bool = False) -> nets.VelocityMLP:
    """The notebook's velocity network (B.hidden wide, B.depth deep unless given) on the course's
    device; with ``space`` it also sees ``B.space_features`` Fourier features of x (the main model)."""
    extra = dict(space_features=B.space_features, space_scale=B.space_scale) if space else {}
    cfg = nets.MLPConfig(dim=dim, hidden=B.hidden if hidden is None else hidden,
                         depth=B.depth if depth is None else depth, n_classes=n_classes, **extra)
    return nets.VelocityMLP(cfg).to(runtime.device())


def describe_network(B) -> str:
    """The main model in words, for the bench's JSON."""
    feats = f", {B.space_features} Fourier features of x (scale {B.space_scale})" if B.space_features else ""
    return f"VelocityMLP {B.depth}x{B.hidden} SiLU{feats}"


def spirals_loss(model: Callable, x1: torch.Tensor, pairing: Callable | None = None) -> torch.Tensor:
    """Flow matching on a batch x1 (B, 2), fresh noise x0 ~ N(0, I), re-paired by minibatch OT with a ``pairing``
    (:func:`pairing_fn`); under torchrun each rank then takes its rows (times drawn for the whole batch)."""
    x0 = torch.randn_like(x1)                                                    # (B, 2) noise
    if pairing is not None:
        x0, x1 = pairing(x0, x1)                                                 # x1 permuted
    t, shard = flow.sample_time(len(x1), device=x1.device).to(x1.dtype), distributed.shard    # (B,)
    return flow.loss(model, shard(x1), x0=shard(x0), t=shard(t))


def train_spirals(B, rule: Callable | None = None, *, steps: int | None = None, pairing: str = "independent",
                  batch: int | None = None, data_name: str = "spirals", seed: int = 0, progress: bool = True):
    """Seed, build the main model and train it on fresh batches of ``data_name`` (:func:`toy_data`;
    ``batch``, default ``B.batch``; data seed = step) for ``steps`` (default ``B.steps``) steps with a
    cosine schedule. With ``B.ema`` (a decay) the returned model holds the exponential moving average
    of the weights (Polyak averaging: less step-to-step noise in the field, which shows as fuzz on
    the spiral's arms).

    ``rule(model, x1) -> loss`` is the training rule (the notebook passes the one it writes out);
    the default is :func:`spirals_loss`, with the minibatch-OT ``pairing`` of :data:`PAIRINGS` (a
    name). Both draw the noise and the times in the same order, so they train the same model; a
    ``rule`` is a learner's, so that model is never cached (module docstring).
    Returns (model, :class:`course_lib.train.History`).
    """
    steps = checks.positive_int(B.steps if steps is None else steps, "steps")
    batch = checks.positive_int(B.batch if batch is None else batch, "batch")
    pair, data_fn = pairing_fn(pairing, batch), toy_data(data_name)

    def fit(model):
        step_loss = rule or functools.partial(spirals_loss, pairing=pair)
        hist = train.train(model, lambda step: step_loss(model, data_fn(batch, step)), steps, lr=B.lr,
                           schedule="cosine", progress=progress, ema_decay=B.ema,
                           desc="flow matching" + ("" if pair is None else f" ({pairing})"))
        if hist.ema is not None:
            model.load_state_dict(hist.ema.model.state_dict())                   # sample with the EMA weights
        return hist
    runtime.seed_everything(seed)
    return _cached("flow2d-spirals", _spirals_key(B, steps, batch, pairing, data_name, seed),
                   lambda: build_model(B, space=True), fit, share=rule is None)


def _spirals_key(B, steps: int, batch: int, pairing: str = "independent", data_name: str = "spirals",
                 seed: int = 0) -> dict:
    return dict(net=net(B), steps=steps, batch=batch, pairing=pairing, data=data_name, seed=seed)


# ----------------------------------------------------------------------------- straightening

def straighten(model: torch.nn.Module | None, B, progress: bool = True):
    """One round of reflow: ``B.reflow.pairs`` pairs from the teacher ``model``'s Heun solver
    (``B.reflow.teacher_steps`` steps, noise seed 7), then a copy of the teacher trained on them for
    ``B.reflow.steps`` steps at learning rate ``B.reflow.lr``. Returns (student, History). The
    student's cache key holds the teacher's (``model.cache_key``); a teacher without one (trained
    with a learner's function) makes a student that is not cached either. ``model=None``: the
    course's main model (:func:`train_spirals` of ``B``, loaded or trained when the student is built).

    Lecture mode, measured (issue 15; 1-step grid TV on 50,000 samples, floor 0.052, 8000-step teacher):
    20,000 pairs, 1500 steps, lr 1e-3: 0.146; 50,000 pairs 0.146; times logit-normal toward t = 0 0.155;
    3000 steps 0.122; lr 2e-3 0.125; 50,000 pairs, 3000 steps, lr 2e-3 (the budget) 0.105."""
    teacher = (train.cache_path("flow2d-spirals", _spirals_key(B, B.steps, B.batch)).stem if model is None
               else getattr(model, "cache_key", None))

    def build():
        nonlocal model
        model = train_spirals(B, progress=progress)[0] if model is None else model
        return copy.deepcopy(model)                                              # start from the teacher

    def fit(student):
        x0, x1 = flow.reflow_pairs(model, B.reflow.pairs, 2, B.reflow.teacher_steps, "heun", seed=7)
        return flow.reflow(student, x0, x1, B.reflow.steps, batch=B.batch, lr=B.reflow.lr, schedule="cosine",
                           progress=progress)
    config = dict(reflow=B.reflow, batch=B.batch, mode=B.mode, teacher=teacher)
    return _cached("flow2d-reflow", config, build, fit, share=teacher is not None)


# ----------------------------------------------------------------------------- minibatch-OT pairings

# Section 6's ways of pairing a batch's noise with its data: name -> flow.minibatch_ot keywords, with
# blocks of a quarter batch (None: independent pairs, plain flow matching).
PAIRINGS = {
    "independent": None,
    "blocks in batch order": dict(order="batch"),
    "blocks of similar points": dict(order="similar"),          # the course's default
    "exact, whole batch": dict(block=None),
}


def pairing_fn(name: str, batch: int) -> Callable | None:
    """The pairing ``name`` of :data:`PAIRINGS` for batches of ``batch``: a function
    (x0, x1) -> (x0, x1 permuted), or None for independent pairs."""
    kw = PAIRINGS[checks.one_of(name, "pairing", tuple(PAIRINGS))]
    if kw is None:
        return None
    return functools.partial(flow.minibatch_ot, **{"block": max(batch // 4, 1), **kw})


def toy_data(name: str) -> Callable:
    """``data_fn(n, seed) -> (n, 2)`` for the 2-D set ``name`` of :func:`course_lib.data.toy_2d`."""
    return spirals if checks.one_of(name, "name", data.TOY_2D) == "spirals" else functools.partial(data.toy_2d, name)


def compare_pairings(B, names=tuple(PAIRINGS), *, steps: int, batch: int, data_name: str = "spirals",
                     eval_steps=(1,), n_swd: int | None = None, n_tv: int | None = None,
                     progress: bool = True) -> dict:
    """Train the main model once per pairing of ``names`` (same seed, network, batches and
    ``steps`` steps of ``batch`` points of ``data_name``) and measure each: seconds per training step
    (the solver included; of the run that made the weights, if they were loaded) and, at each of
    ``eval_steps`` Euler steps, the SWD (``n_swd`` points, default ``B.n_eval``) and the grid TV
    (``n_tv``, default ``B.n_tv``) to held-out data.
    Returns {name: SimpleNamespace(model, history, seconds_per_step, swd={k: ...}, tv={k: ...})}."""
    data_fn, n_swd, n_tv = toy_data(data_name), B.n_eval if n_swd is None else n_swd, B.n_tv if n_tv is None else n_tv
    out = {}
    for name in names:
        model, hist = train_spirals(B, steps=steps, batch=batch, data_name=data_name, pairing=name,
                                    progress=progress)
        out[name] = SimpleNamespace(
            model=model, history=hist, seconds_per_step=hist.seconds / steps,
            swd={k: swd(model, k, n=n_swd, data_fn=data_fn) for k in eval_steps},
            tv={k: tv(model, k, n=n_tv, data_fn=data_fn) for k in eval_steps})
    return out


# ----------------------------------------------------------------------------- conditional flow

def train_conditional(B, seed: int = 1, progress: bool = True):
    """Seed, build and train the class-conditional model on 8 Gaussians (8 labels), dropping 10% of
    the labels to the null class so that the same network learns the unconditional field.
    Returns (model, History)."""
    def fit(cond):
        def loss_fn(step):
            x1, y = data.toy_2d(COND_DATA, B.batch, seed=step, labels=True)
            return flow.loss(cond, x1, y=y, p_uncond=0.1)                        # 10% of labels -> null class
        return train.train(cond, loss_fn, B.cond_steps, lr=B.lr, schedule="cosine", progress=progress,
                           desc="conditional")
    runtime.seed_everything(seed)
    config = dict(net=net(B), steps=B.cond_steps, batch=B.batch, data=COND_DATA, seed=seed)
    return _cached("flow2d-conditional", config, lambda: build_model(B, n_classes=data.toy_2d_classes(COND_DATA)),
                   fit)


@torch.no_grad()
def guided_samples(cond: Callable, w: float, n: int, *, seed: int = 11, steps: int = 50,
                   guide: Callable = flow.guided_velocity, sampler: Callable = flow.euler_sample):
    """n samples of random classes with guidance scale w: labels and noise from ``seed``, then
    ``sampler(v, x0, steps)`` on ``v(x, t) = guide(cond, x, t, labels, w)``. The notebook passes its
    own (the exercises') guide and sampler. Returns (x (n, 2), labels (n,))."""
    checks.positive_int(n, "n"), checks.number(w, "w")
    g = torch.Generator().manual_seed(seed)
    want = torch.randint(0, data.toy_2d_classes(COND_DATA), (n,), generator=g).to(runtime.device())
    x0 = torch.randn(n, 2, generator=g).to(runtime.device())                     # (n, 2)
    return sampler(lambda x, t: guide(cond, x, t, want, w), x0, steps), want


# ----------------------------------------------------------------------------- digits as 64-D points

def digit_vectors(split: str = "train"):
    """The 8x8 digits as points in [-1, 1]^64 and their labels: (N, 64) float, (N,) int64."""
    d = data.digits(split)
    return d.images.float().flatten(1) / 8 - 1, d.labels                         # (N, 64), (N,)


def to_images(x: torch.Tensor) -> torch.Tensor:
    """Points of [-1, 1]^64 back to 8x8 images with values 0..16, (N, 1, 8, 8)."""
    checks.tensor(x, "x", ndim=2, dim=64, floating=True, shape="(N, 64)")
    return ((x + 1) * 8).clamp(0, 16).view(-1, 1, 8, 8)


def train_digits(B, seed: int = 2, progress: bool = True):
    """Seed, build and train a conditional flow on the training digits (10 classes plus the null
    class, 10% label dropout), 4 layers of ``B.digits.hidden``, batches of ``B.digits.batch``.
    Returns (model, History)."""
    def fit(model):
        X, Y = digit_vectors("train")                                            # (N, 64), (N,)

        def loss_fn(step):
            g = torch.Generator().manual_seed(step)
            idx = torch.randint(0, X.shape[0], (B.digits.batch,), generator=g).to(X.device)   # (batch,)
            return flow.loss(model, X[idx], y=Y[idx], p_uncond=0.1)
        return train.train(model, loss_fn, B.digits.steps, lr=1e-3, schedule="cosine", progress=progress,
                           desc="digits")
    runtime.seed_everything(seed)
    return _cached("flow2d-digits", dict(digits=B.digits, mode=B.mode, seed=seed),
                   lambda: build_model(B, dim=64, n_classes=10, hidden=B.digits.hidden, depth=4), fit)


def digit_judge():
    """A judge that knows nothing about the flow: logistic regression on the real training digits
    (scikit-learn). Returns (judge, its accuracy on the real test digits)."""
    from sklearn.linear_model import LogisticRegression

    X, Y = digit_vectors("train")
    Xt, Yt = digit_vectors("test")
    judge = LogisticRegression(max_iter=2000).fit(X.cpu().numpy(), Y.cpu().numpy())
    return judge, judge.score(Xt.cpu().numpy(), Yt.cpu().numpy())


def _spirals_family(mode: str):
    B = budget(mode)
    train_spirals(B)                                                             # section 3's model
    compare_pairings(B, steps=B.ot.steps, batch=B.ot.batch, eval_steps=(1, 2))   # section 6's, as the notebook


# the models notebook 08 trains (make pretrain); the learner's functions' models are made with the course's
PRETRAINED = (Pretrained("flow2d-regressor", ("08",), lambda mode: train_regressor(budget(mode))),
              Pretrained("flow2d-spirals", ("08", "11"), _spirals_family),
              Pretrained("flow2d-reflow", ("08",), lambda mode: straighten(None, budget(mode))),
              Pretrained("flow2d-conditional", ("08",), lambda mode: train_conditional(budget(mode))),
              Pretrained("flow2d-digits", ("08",), lambda mode: train_digits(budget(mode))))
