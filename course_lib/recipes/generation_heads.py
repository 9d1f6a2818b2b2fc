"""Recipe of notebook 09_generation_heads: a transformer predicts a condition z per continuous token,
a head turns noise into the token; the MSE, flow-matching and energy heads compared on the prompted
shapes, in raster and in MAR's masked order, with the head's steps against quality and the split of
the compute between transformer and head.

Budgets per mode and the experiments that the notebook and ``python -m course_lib.bench heads`` both
call:

* :func:`toy_head` / :func:`fit_toy` / :func:`on_modes` (:mod:`~course_lib.recipes.head_toys`):
  the trap in two dimensions, a condition with two right answers, for the first picture of the
  notebook (and tests/test_heads.py);
* :func:`trained_pair`: a transformer of an order (:mod:`course_lib.heads.backbone`) and a head
  (:mod:`course_lib.heads`) trained together (:func:`fit_pair`) on the shared continuous tokenizer's
  latents (:mod:`course_lib.recipes.shape_latents`), B.steps steps, through the model cache: the
  course's shipped weights (``data/weights``), else the disk cache, else trained now;
* :func:`evaluate`: generate for held-out prompts, decode, score with the shapes evaluator
  (prompt accuracy, Fréchet distance) and notebook 07's judge of one clean shape, count the passes,
  time the transformer and the head apart;
* :func:`comparison`: every (order, head) pair, trained and evaluated on the same prompts, either the
  whole prompt (one right answer, up to a half-pixel jitter) or the prompt with the place left open
  (:func:`leave_place_open`: nine right places, the case where an average is none of them);
* :func:`head_steps_sweep`: the flow head's Euler steps against quality and time;
* :func:`note_data` / :func:`audio_heads` (:mod:`~course_lib.recipes.head_toys`): the audio example, one note as one continuous token,
  conditioned on its pitch class (the octave left open), for each head;
* :func:`bench_results`: the figures of the benchmark;
* :data:`ONE_STEP` / :func:`one_step_study`: notebook 11's one-step heads under the same transformer
  (:class:`~course_lib.heads.MeanFlowHead`, one head pass per token, and its ablation trained with
  b = a only), on the same frontier as the flow head at 1, 2 and 8 steps and the energy head.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from course_lib import checks, evaluator, heads, runtime, train
from course_lib.heads import backbone
from course_lib.nets import count_parameters
from course_lib.orders import prompt as P
from course_lib.orders.continuous import ContinuousConfig
from course_lib.recipes import limit_of_tokens, shape_latents, shapes_task
from course_lib.recipes.head_toys import (NOTE_RATE, SEED, audio_heads, closest_note, fit_toy, head_kwargs,  # noqa: F401
                                          note_data, note_head, on_modes, toy_data, toy_head)
from course_lib.recipes.registry import Pretrained


@dataclass(frozen=True)
class HeadBudget:
    """The generation heads' sizes (every kind: MSE, flow, energy)."""
    width: int                # hidden width
    depth: int                # residual blocks of the flow and energy heads
    flow_steps: int           # the flow head's default Euler steps


@dataclass(frozen=True)
class Budget:
    """Notebook 09's budget in one mode."""
    mode: str                 # the course mode this budget is for
    audio_steps: int          # steps of each head on the notes
    toy_steps: int            # steps of the 2-D head toy
    n_train: int              # training shapes
    batch: int                # sequences per step
    d_model: int              # the transformer's width
    n_layer: int              # transformer blocks
    n_head: int               # attention heads
    steps: int                # training steps of transformer + head
    lr: float                 # AdamW's peak learning rate
    n_eval: int               # held-out prompts per score
    cfg_scale: float          # guidance scale
    mar_steps: int            # the masked order's generation steps
    sweep: tuple              # head steps of the steps sweep
    head: HeadBudget          # the heads


@dataclass(frozen=True)
class PairBudget:
    """What trains one (order, head) pair: :class:`Budget`'s training fields, the cache key of
    :func:`trained_pair` (its evaluation sizes are not in it: changing them retrains nothing)."""
    mode: str
    n_train: int
    batch: int
    d_model: int
    n_layer: int
    n_head: int
    steps: int
    lr: float
    head: HeadBudget


BUDGETS = {
    "quick": Budget("quick", audio_steps=80, toy_steps=150, n_train=1024, batch=32, d_model=32, n_layer=1, n_head=2,
                    steps=100, lr=3e-3, n_eval=256, cfg_scale=1.0, mar_steps=8, sweep=(1, 2, 8),
                    head=HeadBudget(width=32, depth=2, flow_steps=8)),
    "lecture": Budget("lecture", audio_steps=400, toy_steps=500, n_train=4096, batch=32, d_model=64, n_layer=2,
                      n_head=4, steps=1500, lr=2e-3, n_eval=512, cfg_scale=1.0, mar_steps=8, sweep=(1, 2, 4, 8, 16),
                      head=HeadBudget(width=64, depth=3, flow_steps=8)),
    "full": Budget("full", audio_steps=2000, toy_steps=2000, n_train=32768, batch=128, d_model=256, n_layer=6, n_head=8,
                   steps=8000, lr=5e-4, n_eval=2048, cfg_scale=1.0, mar_steps=8, sweep=(1, 2, 4, 8, 16, 32),
                   head=HeadBudget(width=256, depth=4, flow_steps=16)),
}
ORDERS = backbone.ORDERS                   # ("raster", "masked")
KINDS = tuple(heads.KINDS)                 # ("mse", "flow", "energy")
PLACE = shapes_task.PLACE                  # the attribute that "the place left open" leaves open
leave_place_open = shapes_task.leave_place_open   # "a small red circle, anywhere" (notebook 09 calls it from here)
# Notebook 11's one-step kinds (issue 24, section 2): the MeanFlow head (Geng et al. 2025, §4.1, see
# course_lib.heads.meanflow_head) and, as its ablation, the same network trained with b = a for every
# draw (share_equal=1: plain flow matching, no JVP term). The head's docstring says why the ablation is
# needed: on the two-mode toy it too lands on the modes in one pass. Kept out of KINDS, which notebook
# 09's comparison loops over; their pairs have their own cache name (one_step_name).
# Under the transformer the head's defaults (p = 1, b != a for 75% of the draws) trained badly (a likely
# reason: the weight 1 / (|error|^2 + c)^p of §4.3 also scales the gradient that reaches the transformer
# through z). Both kinds use p = 0.5, a course choice between plain L2 (p = 0, which diverged here) and
# the official runs' p (1 on ImageNet; 0.75 in py-meanflow's CIFAR-10 run, meanflow/scripts/cifar10_v0.sh),
# and the MeanFlow kind b = a for 75% of the draws (the paper's ImageNet share, Gsunshine/meanflow
# data_proportion = 0.75); the times stay logit-normal(+2, 2), the head's. Measured once each (one seed),
# lecture mode, raster, whole prompt, Fréchet at 1 (2) passes, n = 512 (the flow head at 8 steps: 68,
# floor 45), (p, share of b = a): (1, 0.25): 3377 (2400); (1, 0.75): 2889 (2369); (0.75, 0.25): 240 (497);
# (0.75, 0.75): 294 (327); (0.5, 0.25): 518 (477); (0.5, 0.75): 207 (103); (0, 0.25): 17781; (1, 0.25)
# with times logit-normal(0, 1): 5440. With the place open (flow head at 8 steps: 1040, floor 354):
# (1, 0.25): 6370 (9955); (0.5, 0.75): 2073 (1069). These trials ran before orders/continuous.loss handed
# the head its generator (each pair's draws then depended on what trained before it); the shipped pairs
# were re-made after that fix, and notebook 11 and the README print what they measure.
ONE_STEP = {"meanflow": dict(p=0.5, share_equal=0.75), "meanflow_fm": dict(p=0.5, share_equal=1.0)}
ALL_KINDS = KINDS + tuple(ONE_STEP)       # ("mse", "flow", "energy", "meanflow", "meanflow_fm")
STUDY_FLOW_STEPS = (1, 2, 8)              # the flow head's Euler steps in one_step_study
STUDY_ONE_STEP_STEPS = (1, 2)             # the one-step heads' jumps in one_step_study
# The energy head draws 8 samples per token in training (SLED draws 2; the m-sample estimator of
# heads.energy.energy_score_samples is the same loss with less variance, as the flow head learns from
# 4 noise draws per token) from a noise of 16 numbers. Measured in lecture mode, 1500 steps, the same
# seed, Fréchet distance with 8 samples against 2: 126 against 407 (masked order, whole prompt), 401
# against 747 (raster, whole prompt), 2912 against 3603 (raster, place open).
ENERGY = dict(n_samples=8, noise_dim=4 * shape_latents.LATENT_DIM)


def budget(mode: str | None = None) -> Budget:
    """This notebook's budget in the current (or given) mode: ``budget().steps``."""
    return runtime.pick(BUDGETS, mode)


def pair_budget(B: Budget) -> PairBudget:
    """The training part of ``B`` (:class:`PairBudget`)."""
    return PairBudget(B.mode, B.n_train, B.batch, B.d_model, B.n_layer, B.n_head, B.steps, B.lr, B.head)


def pair_head_kwargs(B: Budget | PairBudget, kind: str) -> dict:
    """The sizes of the head ``kind`` (one of :data:`ALL_KINDS`) under a transformer of this budget;
    for a one-step kind also its settings of :data:`ONE_STEP`."""
    checks.one_of(kind, "kind", ALL_KINDS)
    if kind in ONE_STEP:
        return dict(width=B.head.width, depth=B.head.depth, **ONE_STEP[kind])
    kw = head_kwargs(kind, B.head.width, B.head.depth)
    if kind == "flow":
        kw["default_steps"] = B.head.flow_steps
    if kind == "energy":
        kw.update(ENERGY)
    return kw


class Pair(nn.Module):
    """A transformer (``backbone``) and its head (``head``), trained and saved together."""

    def __init__(self, backbone_: nn.Module, head: heads.Head, order: str, kind: str):
        super().__init__()
        self.backbone, self.head, self.order, self.kind = backbone_, head, order, kind


def build(B: Budget | PairBudget, order: str, kind: str) -> Pair:
    """A transformer of ``order`` and a head ``kind`` (one of :data:`ALL_KINDS`) of this budget's sizes,
    seeded, on the course device. A one-step kind is a :class:`~course_lib.heads.MeanFlowHead`."""
    checks.one_of(order, "order", ORDERS), checks.one_of(kind, "kind", ALL_KINDS)
    torch.manual_seed(SEED)
    cfg = ContinuousConfig(latent_dim=shape_latents.LATENT_DIM, n_tokens=shape_latents.N_TOKENS,
                           d_model=B.d_model, n_layer=B.n_layer, n_head=B.n_head)
    kw = pair_head_kwargs(B, kind)
    head = (heads.MeanFlowHead(shape_latents.LATENT_DIM, B.d_model, **kw) if kind in ONE_STEP
            else heads.make(kind, shape_latents.LATENT_DIM, B.d_model, **kw))
    return Pair(backbone.build(order, cfg), head, order, kind).to(runtime.device())


def latent_data(B: Budget, open_place: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The training latents (n_train, 16, D) and prompts (n_train, 4), on the course device; with
    ``open_place`` the prompts leave the place open (:func:`leave_place_open`)."""
    latents, prompts = shape_latents.latent_data(B.n_train, mode=B.mode)
    if open_place:
        prompts = leave_place_open(prompts)
    dev = runtime.device()
    return latents.to(dev), prompts.to(dev)


def open_floor(n: int, seed: int = 0) -> float:
    """The Fréchet floor of a perfect generator for the reference's prompts with the place left
    open: the same shapes, colours and sizes rendered at other places drawn at random, against
    :func:`course_lib.evaluator.reference` (n, seed). Higher than the floor at whole prompts, where
    the two real sets agree in every place."""
    ref = evaluator.reference(n, seed)
    return evaluator.frechet(shapes_task.real_draw(ref.prompts, open_place=True, seed=seed), ref.images)


def fit_pair(pair: Pair, B: Budget | PairBudget, open_place: bool = False, progress: bool = True) -> train.History:
    """Train transformer + head together for B.steps steps (AdamW, cosine learning rate) with
    :func:`course_lib.heads.backbone.loss` (10% null prompts) on :func:`latent_data`. Returns the History."""
    latents, prompts = latent_data(B, open_place)
    g = torch.Generator().manual_seed(SEED)

    def loss_fn(step):
        idx = torch.randint(len(latents), (B.batch,), generator=g).to(latents.device)
        return backbone.loss(pair.backbone, pair.head, latents[idx], prompts[idx], generator=g)
    return train.train(pair, loss_fn, B.steps, lr=B.lr, schedule="cosine", warmup=min(100, B.steps // 10),
                       progress=progress, desc=f"{pair.order} + {pair.kind} head")


def pair_name(order: str, open_place: bool) -> str:
    """The cache name of the pairs of ``order`` trained on whole prompts or with the place open."""
    return f"heads-{order}-{'open' if open_place else 'whole'}"


def one_step_name(order: str, open_place: bool) -> str:
    """The cache name of the one-step pairs (:data:`ONE_STEP`) of ``order``: their own files, so that
    shipping them leaves notebook 09's (:func:`pair_name`) as they are."""
    return f"heads-one-step-{order}-{'open' if open_place else 'whole'}"


def pair_config(B: Budget | PairBudget, order: str, kind: str, open_place: bool = False) -> dict:
    """The cache key of the pair (``order``, ``kind``): :func:`pair_budget`, order, head and its
    settings (:func:`pair_head_kwargs`), prompts, seed."""
    checks.one_of(order, "order", ORDERS), checks.one_of(kind, "kind", ALL_KINDS)
    PB = B if isinstance(B, PairBudget) else pair_budget(B)
    return dict(budget=PB, order=order, kind=kind, head_kwargs=pair_head_kwargs(PB, kind),
                open_place=bool(open_place), seed=SEED)


def trained_pair(B: Budget, order: str, kind: str, open_place: bool = False, progress: bool = True) -> Pair:
    """The pair (``order``, ``kind``) of :func:`build` trained by :func:`fit_pair`, through
    :func:`course_lib.train.cached` (key: :func:`pair_config`; name: :func:`pair_name`, or
    :func:`one_step_name` for a kind of :data:`ONE_STEP`): the course's shipped weights, else the disk
    cache, else trained now. In eval mode; ``pair.history`` is the loss curve of the run that made it."""
    config = pair_config(B, order, kind, open_place)
    PB = config["budget"]
    name = one_step_name(order, open_place) if kind in ONE_STEP else pair_name(order, open_place)
    return train.cached(name, config, build=lambda: build(PB, order, kind),
                        fit=lambda pair: fit_pair(pair, PB, open_place, progress))


# ----------------------------------------------------------------------------- measuring

def generate(pair: Pair, prompts: torch.Tensor, B: Budget, head_steps: int | None = None,
             seed: int = SEED) -> tuple[torch.Tensor, backbone.Generated]:
    """Images (N, 3, 16, 16) for ``prompts`` and the :class:`~course_lib.heads.backbone.Generated`
    record (latents, passes, the time in transformer and head)."""
    prompts = P.check_prompts(prompts)
    out = backbone.generate(pair.backbone, pair.head, prompts.to(runtime.device()), steps=B.mar_steps,
                            head_steps=head_steps, cfg_scale=B.cfg_scale, generator=torch.Generator().manual_seed(seed))
    return shape_latents.decode(out.latents, B.mode), out


def evaluate(pair: Pair, B: Budget, ref=None, head_steps: int | None = None,
             open_place: bool = False) -> dict:
    """Generate one image per held-out prompt (B.n_eval of :func:`course_lib.evaluator.reference`;
    with ``open_place`` the prompt leaves the place open and the place is not judged) and return
    order, head, head_steps, frechet (to the reference images), prompt_accuracy, clean (the share
    of images that are one clean shape, :func:`course_lib.recipes.limit_of_tokens.clean_rate`),
    head_nfe (head passes per token),
    passes (transformer passes per image), seconds_per_image (latents and decoding, all prompts in
    one batch), head_share_of_time (share of the generation time spent in the head), params of
    transformer and head."""
    ref = ref or evaluator.reference(B.n_eval)
    prompts = leave_place_open(ref.prompts) if open_place else ref.prompts
    generate(pair, prompts[:4], B, head_steps)                          # warm up
    (images, out), seconds = runtime.timed(lambda: generate(pair, prompts, B, head_steps))
    return dict(order=pair.order, head=pair.kind, head_steps=out.head_nfe, open_place=open_place,
                frechet=evaluator.frechet(images, ref.images),
                prompt_accuracy=evaluator.prompt_accuracy(images, prompts),
                accuracy_no_place=evaluator.prompt_accuracy(images, leave_place_open(prompts)),
                clean=limit_of_tokens.clean_rate(images),
                head_nfe=out.head_nfe, passes=out.passes, seconds_per_image=seconds / len(ref.prompts),
                head_share_of_time=out.head_share, seconds_backbone=out.seconds_backbone,
                seconds_head=out.seconds_head, params_backbone=count_parameters(pair.backbone),
                params_head=count_parameters(pair.head))


def comparison(B: Budget, orders=ORDERS, kinds=KINDS, open_place: bool = False,
               progress: bool = True) -> tuple[dict, list[dict], float]:
    """Every (order, head) pair of :func:`trained_pair` (the same latents), evaluated on the same
    prompts: the whole prompts, or with ``open_place`` prompts that leave the place open, in training
    and in evaluation. Returns ({(order, kind): pair}, rows of :func:`evaluate` with ``train_seconds``
    and ``final_loss`` of the run that made the weights, the Fréchet floor at B.n_eval for these prompts)."""
    ref = evaluator.reference(B.n_eval)
    pairs, rows = {}, []
    for order in orders:
        for kind in kinds:
            pair = pairs[order, kind] = trained_pair(B, order, kind, open_place, progress=progress)
            hist = pair.history
            rows.append(dict(evaluate(pair, B, ref, open_place=open_place), train_seconds=hist.seconds,
                             final_loss=sum(hist.losses[-50:]) / len(hist.losses[-50:])))
    floor = open_floor(B.n_eval) if open_place else evaluator.frechet_floor(B.n_eval)
    return pairs, rows, floor


def one_step_study(B: Budget, open_place: bool, ref=None, progress: bool = True) -> list[dict]:
    """Notebook 11's frontier of passes per token against quality, raster order, the same prompts
    (``ref``: :func:`course_lib.evaluator.reference` (B.n_eval) when None), whole prompts or the place
    left open: rows of :func:`evaluate` (with ``train_seconds`` and ``final_loss`` of the run that made
    each pair) for the flow head at 1, 2 and 8 Euler steps, the energy head (one pass), and the two
    one-step kinds of :data:`ONE_STEP` (the MeanFlow head and its b = a ablation) at 1 and 2 jumps.
    The flow and energy pairs are notebook 09's (:func:`trained_pair`)."""
    ref = ref or evaluator.reference(B.n_eval)
    plan = [("flow", s) for s in STUDY_FLOW_STEPS] + [("energy", 1)]
    plan += [(kind, s) for kind in ONE_STEP for s in STUDY_ONE_STEP_STEPS]
    pairs, rows = {}, []
    for kind, steps in plan:
        if kind not in pairs:
            pairs[kind] = trained_pair(B, "raster", kind, open_place, progress=progress)
        hist = pairs[kind].history
        rows.append(dict(evaluate(pairs[kind], B, ref, head_steps=steps, open_place=open_place),
                         train_seconds=hist.seconds, final_loss=sum(hist.losses[-50:]) / len(hist.losses[-50:])))
    return rows


def head_steps_sweep(pair: Pair, B: Budget, steps=None, ref=None, open_place: bool = False) -> list[dict]:
    """:func:`evaluate` for every number of head steps in ``steps`` (B.sweep) on the same prompts."""
    ref = ref or evaluator.reference(B.n_eval)
    return [evaluate(pair, B, ref, head_steps=s, open_place=open_place) for s in (steps or B.sweep)]


def bench_results(mode: str | None = None) -> dict:
    """The figures of ``python -m course_lib.bench heads``, from the pairs of :func:`trained_pair`
    (the shipped weights when there are, as in the notebook). For the whole prompts, per (order, head)
    ``<order>_<head>``, and for prompts that leave the place open, ``open_<order>_<head>``: frechet,
    prompt_accuracy, accuracy_no_place, clean, head_nfe, passes, seconds_per_image, head_share_of_time, parameters,
    training seconds; the Fréchet floors (``frechet_floor``, ``open_frechet_floor``) at the same
    n; the flow head's step sweep in raster order with the place open (``open_raster_flow_steps``);
    and the two bars (flow <= 0.5x MSE, energy at 1 step <= 1.5x flow) per order, ``open_<order>_bars``
    where the prompt has several right answers (what the bars are about) and ``<order>_bars`` for
    the whole prompt."""
    B = budget(mode)
    keys = ("frechet", "prompt_accuracy", "accuracy_no_place", "clean", "head_nfe", "passes", "seconds_per_image",
            "head_share_of_time", "params_backbone", "params_head", "train_seconds")
    res: dict = {"n_eval": B.n_eval, "train_steps": B.steps}
    for prefix, open_place in (("", False), ("open_", True)):
        pairs, rows, floor = comparison(B, open_place=open_place, progress=False)
        res.update({f"{prefix}{r['order']}_{r['head']}": {k: r[k] for k in keys} for r in rows})
        res[f"{prefix}frechet_floor"] = floor
        for order in ORDERS:
            f = {k: res[f"{prefix}{order}_{k}"]["frechet"] for k in KINDS}
            res[f"{prefix}{order}_bars"] = dict(flow_over_mse=f["flow"] / f["mse"],
                                                energy_over_flow=f["energy"] / f["flow"],
                                                flow_le_half_mse=f["flow"] <= 0.5 * f["mse"],
                                                energy_within_1_5x_flow=f["energy"] <= 1.5 * f["flow"])
    sweep = head_steps_sweep(pairs["raster", "flow"], B, open_place=True)
    res["open_raster_flow_steps"] = {str(r["head_nfe"]): {k: r[k] for k in ("frechet", "prompt_accuracy", "clean",
                                                                              "seconds_per_image", "head_share_of_time")}
                                     for r in sweep}
    return res


# the notebook's pairs, (order, place open), then the bench's fourth; every head of each
PAIRS = (("masked", False), ("raster", False), ("raster", True), ("masked", True))


def _make_pairs(order: str, open_place: bool):
    return lambda mode: [trained_pair(budget(mode), order, k, open_place) for k in KINDS]


PRETRAINED = (Pretrained("heads-toy", ("09",), lambda mode: [toy_head(k, budget(mode), progress=True) for k in KINDS]),
              *(Pretrained(pair_name(o, op), ("09",) if (o, op) != ("masked", True) else (), _make_pairs(o, op))
                for o, op in PAIRS),
              Pretrained("heads-notes", ("09",), lambda mode: [note_head(k, budget(mode), progress=True) for k in KINDS]),
              *(Pretrained(one_step_name("raster", op), ("11",),
                           lambda mode, op=op: [trained_pair(budget(mode), "raster", k, op) for k in ONE_STEP])
                for op in (False, True)))
