"""Recipe of notebook 08 (flow matching in 2-D): its budgets and its experiments.

Notebook 08 and ``python -m course_lib.bench flow2d`` call the same functions, so a benchmark figure
is a figure the notebook shows (at the benchmark's sample size). The notebook writes out what a
learner must read (the training pair, the loss, the sampler, guidance, the distance); the recipe
keeps the plumbing: which network, how long to train, with which seeds, and how to evaluate.

| experiment | functions |
| --- | --- |
| the main model on spirals (section 3) | :func:`build_model`, :func:`train_spirals`, :func:`loss_by_time` |
| steps against quality (section 5) | :func:`swd`, :func:`swd_table`, :func:`noise_floor`, :func:`tv`, :func:`tv_floor`, :func:`same_radii_disk` |
| reflow and minibatch OT (section 6) | :func:`straighten`, :func:`start_noise`, :data:`PAIRINGS`, :func:`compare_pairings` |
| conditional flow and guidance (section 7) | :func:`train_conditional`, :func:`class_centres`, :func:`guided_samples`, :func:`class_accuracy` |
| digits as 64-D points (section 8) | :func:`digit_vectors`, :func:`train_digits`, :func:`digit_judge`, :func:`to_images` |

Seeds: every experiment seeds itself (initialisation and training draws), so no figure depends on what ran
before it. Evaluation seed s samples from noise seed ``100 + s`` and compares with held-out data
(:data:`course_lib.metrics.HELD_OUT_SEED` + s) along projections drawn from s."""
from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Callable

import torch

from course_lib import checks, data, flow, metrics, nets, runtime, train


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


_SPACE = dict(space_features=64, space_scale=1.0, ema=None)          # the same in every mode
BUDGETS = {
    "quick": Budget("quick", hidden=128, depth=3, batch=512, steps=800, lr=3e-3, n_eval=2048, cond_steps=600,
                    guidance=3.0, regress_steps=150, n_frames=6, eval_seeds=1, n_tv=4096, **_SPACE,
                    reflow=Reflow(pairs=4096, teacher_steps=8, steps=300, lr=1.5e-3), ot=OT(steps=400, batch=256),
                    digits=Digits(hidden=256, steps=800, batch=128)),
    "lecture": Budget("lecture", hidden=256, depth=4, batch=1024, steps=8000, lr=2e-3, n_eval=8192, cond_steps=1200,
                      guidance=3.0, regress_steps=400, n_frames=11, eval_seeds=1, n_tv=10000, **_SPACE,
                      reflow=Reflow(pairs=50000, teacher_steps=32, steps=3000, lr=2e-3), ot=OT(steps=600, batch=512),
                      digits=Digits(hidden=512, steps=1200, batch=256)),
    "full": Budget("full", hidden=512, depth=5, batch=4096, steps=20000, lr=1e-3, n_eval=16384, cond_steps=10000,
                   guidance=3.0, regress_steps=1000, n_frames=21, eval_seeds=3, n_tv=50000, **_SPACE,
                   reflow=Reflow(pairs=100000, teacher_steps=64, steps=10000, lr=5e-4),
                   ot=OT(steps=20000, batch=1024), digits=Digits(hidden=1024, steps=20000, batch=512)),
}

STEP_LIST = (1, 2, 4, 8, 16, 32, 100)     # sampling steps of the steps-against-quality table
NOISE_SEED = 100                           # evaluation seed s samples from flow.prior(seed=100 + s)
COND_DATA = "8gaussians"                   # the labelled data set of the conditional flow


def budget(mode: str | None = None) -> Budget:
    """This notebook's budget in the current (or given) mode: ``budget().steps``."""
    return runtime.pick(BUDGETS, mode)


def spirals(n: int, seed: int) -> torch.Tensor:
    """n points of the two-arm spiral, (n, 2): the data of sections 3-6 (``data_fn`` of the SWD)."""
    return data.toy_2d("spirals", n, seed=seed)


# ----------------------------------------------------------------------------- the main model
#
# Lecture mode, measured (issue 15; grid TV of Euler-100 samples on 50,000 points, floor 0.052, one
# seed, 2 cores): 4x256 MLP on (x, t), 5000 steps: 0.126 (the figure); with 64 Fourier
# features of x at scale 1.0: 0.092 (75 s of training); scale 0.7: 0.097; scale 2.0 with EMA
# 0.999: 0.126; scale 1.0 with EMA 0.999: 0.098; scale 1.0, 8000 steps (the budget): 0.072 (112 s).

def build_model(B, dim: int = 2, n_classes: int = 0, hidden: int | None = None,
                depth: int | None = None, space: bool = False) -> nets.VelocityMLP:
    """The notebook's velocity network (B.hidden wide, B.depth deep unless given) on the course's
    device; with ``space`` it also sees ``B.space_features`` Fourier features of x (the main model)."""
    extra = dict(space_features=B.space_features, space_scale=B.space_scale) if space else {}
    cfg = nets.MLPConfig(dim=dim, hidden=hidden or B.hidden, depth=depth or B.depth, n_classes=n_classes, **extra)
    return nets.VelocityMLP(cfg).to(runtime.device())


def describe_network(B) -> str:
    """The main model in words, for the bench's JSON."""
    feats = f", {B.space_features} Fourier features of x (scale {B.space_scale})" if B.space_features else ""
    return f"VelocityMLP {B.depth}x{B.hidden} SiLU{feats}"


def spirals_loss(model: Callable, x1: torch.Tensor, pairing: Callable | None = None) -> torch.Tensor:
    """The flow-matching loss on a batch x1 (B, 2) with fresh noise x0 ~ N(0, I); with a ``pairing``
    (:func:`pairing`) the pairs are re-paired by minibatch OT first."""
    x0 = torch.randn_like(x1)                                                    # (B, 2) noise
    if pairing is not None:
        x0, x1 = pairing(x0, x1)                                                 # x1 permuted
    return flow.loss(model, x1, x0=x0)


def train_spirals(B, rule: Callable | None = None, *, steps: int | None = None, pairing: Callable | None = None,
                  batch: int | None = None, data_fn: Callable = None, seed: int = 0, progress: bool = True):
    """Seed, build the main model and train it on fresh spiral batches (batch ``B.batch``, data seed =
    step) for ``steps`` (default ``B.steps``) steps with a cosine schedule. With ``B.ema`` (a decay)
    the returned model holds the exponential moving average of the weights (Polyak averaging: less
    step-to-step noise in the field, which shows as fuzz on the spiral's arms).

    ``rule(model, x1) -> loss`` is the training rule (the notebook passes the one it writes out);
    the default is :func:`spirals_loss` (with ``pairing`` for minibatch-OT pairs). Both draw the
    noise and the times in the same order, so they train the same model. ``batch`` and
    ``data_fn(n, seed) -> (n, 2)`` replace the batch size and the spirals (section 6's comparison).
    Returns (model, :class:`course_lib.train.History`).
    """
    runtime.seed_everything(seed)
    model = build_model(B, space=True)
    rule = rule or functools.partial(spirals_loss, pairing=pairing)
    data_fn = data_fn or spirals

    def loss_fn(step):
        return rule(model, data_fn(batch or B.batch, step))
    hist = train.train(model, loss_fn, steps or B.steps, lr=B.lr, schedule="cosine", progress=progress,
                       desc="flow matching" + (" (minibatch OT)" if pairing else ""), ema_decay=B.ema)
    if hist.ema is not None:
        model.load_state_dict(hist.ema.model.state_dict())                       # sample with the EMA weights
    return model, hist


@torch.no_grad()
def loss_by_time(model: Callable, times, n: int = 8192, pair: Callable = flow.fm_pair) -> list[float]:
    """The flow-matching loss at each fixed t of ``times``, on n held-out spiral points and seeded
    noise (the same pairs for every t); ``pair(x0, x1, t) -> (x_t, target)``."""
    x1 = spirals(n, 777)                                                         # (n, 2)
    x0 = flow.prior(n, 2, seed=7, device=x1.device)                              # (n, 2)
    out = []
    for tv in times:
        checks.number(tv, "times", 0.0, 1.0)
        t = torch.full((n,), float(tv), device=x1.device)                        # (n,)
        x_t, target = pair(x0, x1, t)
        out.append((model(x_t, t) - target).pow(2).mean().item())
    return out


# ----------------------------------------------------------------------------- steps against quality

def swd(v: Callable, steps: int, method: str = "euler", *, n: int, seeds=(0,),
        distance: Callable = metrics.sliced_wasserstein, data_fn: Callable | None = None) -> float:
    """SWD of ``v``'s samples (``steps`` steps of ``method`` from noise seed 100 + s) to held-out
    spirals, averaged over evaluation seeds s (:func:`course_lib.metrics.swd_to_data`, 256
    projections)."""
    def sample_fn(m, s):
        return flow.sample(v, m, 2, steps, method, seed=NOISE_SEED + s)
    return metrics.swd_to_data(sample_fn, data_fn or spirals, n, seeds, distance=distance)


def swd_table(v: Callable, *, n: int, seeds=(0,), steps=STEP_LIST, methods=("euler", "heun"),
              distance: Callable = metrics.sliced_wasserstein, progress: bool = True) -> dict:
    """{(method, steps): :func:`swd`} for every method and step count (with ``progress``, a bar
    over the entries: in lecture mode the table takes several seconds)."""
    entries = [(m, k) for m in methods for k in steps]
    bar = train.progress_bar(len(entries), "SWD table") if progress else None
    table = {}
    for m, k in entries:
        table[m, k] = swd(v, k, m, n=n, seeds=seeds, distance=distance)
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    return table


def noise_floor(n: int, seeds=(0,), distance: Callable = metrics.sliced_wasserstein,
                data_fn: Callable | None = None) -> float:
    """The spirals' noise floor at n points (:func:`course_lib.metrics.noise_floor`)."""
    return metrics.noise_floor(data_fn or spirals, n, seeds, distance=distance)


def tv(v: Callable, steps: int, method: str = "euler", *, n: int, seeds=(0,),
       data_fn: Callable | None = None) -> float:
    """Grid TV (:func:`course_lib.metrics.grid_tv`, 32 x 32 cells over [-4, 4]^2) of ``v``'s samples
    to held-out spirals: the same samples and reference draws as :func:`swd`."""
    def sample_fn(m, s):
        return flow.sample(v, m, 2, steps, method, seed=NOISE_SEED + s)
    return metrics.grid_tv_to_data(sample_fn, data_fn or spirals, n, seeds)


def tv_floor(n: int, seeds=(0,), data_fn: Callable | None = None) -> float:
    """The grid TV of a second draw of the spirals at n points (:func:`course_lib.metrics.grid_tv_floor`)."""
    return metrics.grid_tv_floor(data_fn or spirals, n, seeds)


def same_radii_disk(x: torch.Tensor, seed: int = 0, radius: float | None = None) -> torch.Tensor:
    """Each point of x (N, 2) within ``radius`` of the origin (all of them if None) turned about the
    origin by its own random angle (seed): the same radial profile as x, the arms inside that radius
    smeared into a filled disk (the spiral with its inner coils filled in). (N, 2)."""
    checks.tensor(x, "x", ndim=2, dim=2, floating=True, shape="(N, 2)")
    if radius is not None:
        checks.number(radius, "radius", 0.0)
    g = torch.Generator().manual_seed(seed)
    a = (2 * torch.pi * torch.rand(x.shape[0], generator=g)).to(x.device, x.dtype)     # (N,)
    if radius is not None:
        a = torch.where(x.norm(dim=1) < radius, a, torch.zeros_like(a))                # outside: not turned
    c, s = torch.cos(a), torch.sin(a)
    return torch.stack([c * x[:, 0] - s * x[:, 1], s * x[:, 0] + c * x[:, 1]], dim=1)


# ----------------------------------------------------------------------------- straightening

def start_noise(n: int = 2000) -> torch.Tensor:
    """The fixed noise (seed 5) every model's trajectories start from, (n, 2)."""
    return flow.prior(n, 2, seed=5)


def straighten(model: torch.nn.Module, B, progress: bool = True):
    """One round of reflow: ``B.reflow.pairs`` pairs from the teacher's Heun solver
    (``B.reflow.teacher_steps`` steps, noise seed 7), then a copy of the teacher trained on them for
    ``B.reflow.steps`` steps at learning rate ``B.reflow.lr``. Returns (student, History).

    Lecture mode, measured (issue 15; grid TV on 50,000 samples, floor 0.052, 8000-step teacher):
    20,000 pairs, 1500 steps at lr 1e-3 gave a 1-step TV of 0.146; 50,000 pairs alone 0.146; times
    drawn logit-normal toward t = 0 0.155; 3000 steps 0.122; lr 2e-3 0.125; 50,000 pairs, 3000
    steps and lr 2e-3 (the budget) 0.105."""
    x0, x1 = flow.reflow_pairs(model, B.reflow.pairs, 2, B.reflow.teacher_steps, "heun", seed=7)
    student = copy.deepcopy(model)                                               # start from the teacher
    hist = flow.reflow(student, x0, x1, B.reflow.steps, batch=B.batch, lr=B.reflow.lr, schedule="cosine",
                       progress=progress)
    return student, hist


# ----------------------------------------------------------------------------- minibatch-OT pairings

# Section 6's ways of pairing a batch's noise with its data: name -> flow.minibatch_ot keywords, with
# blocks of a quarter batch (None: independent pairs, plain flow matching).
PAIRINGS = {
    "independent": None,
    "blocks in batch order": dict(order="batch"),
    "blocks of similar points": dict(order="similar"),          # the course's default
    "exact, whole batch": dict(block=None),
}


def pairing(name: str, batch: int) -> Callable | None:
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
    (the solver included) and, at each of ``eval_steps`` Euler steps, the SWD (``n_swd`` points,
    default ``B.n_eval``) and the grid TV (``n_tv``, default ``B.n_tv``) to held-out data.
    Returns {name: SimpleNamespace(model, history, seconds_per_step, swd={k: ...}, tv={k: ...})}."""
    data_fn = toy_data(data_name)
    out = {}
    for name in names:
        model, hist = train_spirals(B, steps=steps, batch=batch, data_fn=data_fn,
                                    pairing=pairing(name, batch), progress=progress)
        out[name] = SimpleNamespace(
            model=model, history=hist, seconds_per_step=hist.seconds / steps,
            swd={k: swd(model, k, n=n_swd or B.n_eval, data_fn=data_fn) for k in eval_steps},
            tv={k: tv(model, k, n=n_tv or B.n_tv, data_fn=data_fn) for k in eval_steps})
    return out


# ----------------------------------------------------------------------------- conditional flow

def train_conditional(B, seed: int = 1, progress: bool = True):
    """Seed, build and train the class-conditional model on 8 Gaussians (8 labels), dropping 10% of
    the labels to the null class so that the same network learns the unconditional field.
    Returns (model, History)."""
    runtime.seed_everything(seed)
    cond = build_model(B, n_classes=data.toy_2d_classes(COND_DATA))

    def loss_fn(step):
        x1, y = data.toy_2d(COND_DATA, B.batch, seed=step, labels=True)
        return flow.loss(cond, x1, y=y, p_uncond=0.1)                            # 10% of labels -> null class
    hist = train.train(cond, loss_fn, B.cond_steps, lr=B.lr, schedule="cosine", progress=progress,
                       desc="conditional")
    return cond, hist


def class_centres(n: int = 8192) -> torch.Tensor:
    """The mean of each class of held-out 8-Gaussians data (seed 30000), (K, 2)."""
    ref, ref_y = data.toy_2d(COND_DATA, n, seed=30_000, labels=True)
    return torch.stack([ref[ref_y == c].mean(0) for c in range(data.toy_2d_classes(COND_DATA))])


def class_accuracy(x: torch.Tensor, y: torch.Tensor, centres: torch.Tensor) -> float:
    """Fraction of points x (N, D) whose nearest centre (K, D) is the one of their label y (N,):
    the rule by which notebook 08 decides that a conditional sample "landed in its class"."""
    checks.tensor(x, "x", ndim=2, floating=True, shape="(N, D)")
    checks.rows(x, "x")
    checks.tensor(centres, "centres", ndim=2, dim=x.shape[1], shape=f"(K, {x.shape[1]})")
    checks.tensor(y, "y", ndim=1, floating=False, shape="(N,) int64 labels")
    checks.same_rows(y, "y", x.shape[0], "x")
    checks.index_range(y, "y", centres.shape[0])               # a label without a centre is never right
    d = torch.cdist(x.float(), centres.float().to(x.device))                     # (N, K)
    return (d.argmin(1) == y.to(x.device)).float().mean().item()


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
    X, Y = digit_vectors("train")
    runtime.seed_everything(seed)
    model = build_model(B, dim=64, n_classes=10, hidden=B.digits.hidden, depth=4)

    def loss_fn(step):
        g = torch.Generator().manual_seed(step)
        idx = torch.randint(0, X.shape[0], (B.digits.batch,), generator=g).to(X.device)   # (batch,)
        return flow.loss(model, X[idx], y=Y[idx], p_uncond=0.1)
    hist = train.train(model, loss_fn, B.digits.steps, lr=1e-3, schedule="cosine", progress=progress,
                       desc="digits")
    return model, hist


def digit_judge():
    """A judge that knows nothing about the flow: logistic regression on the real training digits
    (scikit-learn). Returns (judge, its accuracy on the real test digits)."""
    from sklearn.linear_model import LogisticRegression

    X, Y = digit_vectors("train")
    Xt, Yt = digit_vectors("test")
    judge = LogisticRegression(max_iter=2000).fit(X.cpu().numpy(), Y.cpu().numpy())
    return judge, judge.score(Xt.cpu().numpy(), Yt.cpu().numpy())
