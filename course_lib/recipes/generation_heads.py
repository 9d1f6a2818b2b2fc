"""Recipe of notebook 09_generation_heads: a transformer predicts a condition z per continuous token,
a head turns noise into the token; the MSE, flow-matching and energy heads compared on the prompted
shapes, in raster and in MAR's masked order, with the head's steps against quality and the split of
the compute between transformer and head.

Budgets per mode and the experiments that the notebook and ``python -m course_lib.bench heads`` both
call:

* :func:`toy_data` / :func:`fit_toy` / :func:`on_modes`: the trap in two dimensions, a condition
  with two right answers, for the first picture of the notebook (and tests/test_heads.py);
* :func:`train_pair`: a transformer of an order (:mod:`course_lib.heads.backbone`) and a head
  (:mod:`course_lib.heads`) trained together on the shared continuous tokenizer's latents
  (:mod:`course_lib.recipes.shape_latents`), B.steps steps;
* :func:`evaluate`: generate for held-out prompts, decode, score with the shapes evaluator
  (prompt accuracy, Fréchet distance) and notebook 07's judge of one clean shape, count the passes,
  time the transformer and the head apart;
* :func:`comparison`: every (order, head) pair, trained and evaluated on the same prompts, either the
  whole prompt (one right answer, up to a half-pixel jitter) or the prompt with the place left open
  (:func:`leave_place_open`: nine right places, the case where an average is none of them);
* :func:`head_steps_sweep`: the flow head's Euler steps against quality and time;
* :func:`note_data` / :func:`audio_heads`: the audio example, one note as one continuous token,
  conditioned on its pitch class (the octave left open), for each head;
* :func:`bench_results`: the figures of the benchmark.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from course_lib import checks, data, evaluator, heads, metrics, runtime, train
from course_lib.heads import backbone
from course_lib.nets import count_parameters
from course_lib.orders import prompt as P
from course_lib.orders.continuous import ContinuousConfig
from course_lib.recipes import limit_of_tokens, shape_latents


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


BUDGETS = {
    "quick": Budget("quick", audio_steps=80, toy_steps=150, n_train=1024, batch=32, d_model=32, n_layer=1, n_head=2,
                    steps=100, lr=3e-3, n_eval=256, cfg_scale=1.0, mar_steps=8, sweep=(1, 2, 8),
                    head=HeadBudget(width=32, depth=2, flow_steps=8)),
    "lecture": Budget("lecture", audio_steps=400, toy_steps=500, n_train=4096, batch=32, d_model=64, n_layer=2,
                      n_head=4, steps=1500, lr=2e-3, n_eval=1024, cfg_scale=1.0, mar_steps=8, sweep=(1, 2, 4, 8, 16),
                      head=HeadBudget(width=64, depth=3, flow_steps=8)),
    "full": Budget("full", audio_steps=2000, toy_steps=2000, n_train=32768, batch=128, d_model=256, n_layer=6, n_head=8,
                   steps=8000, lr=5e-4, n_eval=2048, cfg_scale=1.0, mar_steps=8, sweep=(1, 2, 4, 8, 16, 32),
                   head=HeadBudget(width=256, depth=4, flow_steps=16)),
}
ORDERS = backbone.ORDERS                   # ("raster", "masked")
KINDS = tuple(heads.KINDS)                 # ("mse", "flow", "energy")
SEED = 0
PLACE = data.ATTRIBUTES.index("position")  # the attribute that "the place left open" leaves open
# The energy head draws 8 samples per token in training (SLED draws 2; the m-sample estimator of
# heads.energy.energy_score_samples is the same loss with less variance, as the flow head learns from
# 4 noise draws per token) from a noise of 16 numbers. Measured in lecture mode, 1500 steps, the same
# seed, Fréchet distance with 8 samples against 2: 126 against 407 (masked order, whole prompt), 401
# against 747 (raster, whole prompt), 2912 against 3603 (raster, place open).
ENERGY = dict(n_samples=8, noise_dim=4 * shape_latents.LATENT_DIM)


def budget(mode: str | None = None) -> Budget:
    """This notebook's budget in the current (or given) mode: ``budget().steps``."""
    return runtime.pick(BUDGETS, mode)


class Pair(nn.Module):
    """A transformer (``backbone``) and its head (``head``), trained and saved together."""

    def __init__(self, backbone_: nn.Module, head: heads.Head, order: str, kind: str):
        super().__init__()
        self.backbone, self.head, self.order, self.kind = backbone_, head, order, kind


def build(B: Budget, order: str, kind: str) -> Pair:
    """A transformer of ``order`` and a head ``kind`` of this budget's sizes, seeded, on the course device."""
    checks.one_of(order, "order", ORDERS), checks.one_of(kind, "kind", KINDS)
    torch.manual_seed(SEED)
    cfg = ContinuousConfig(latent_dim=shape_latents.LATENT_DIM, n_tokens=shape_latents.N_TOKENS,
                           d_model=B.d_model, n_layer=B.n_layer, n_head=B.n_head)
    kw = dict(width=B.head.width) if kind == "mse" else dict(width=B.head.width, depth=B.head.depth)
    if kind == "flow":
        kw["default_steps"] = B.head.flow_steps
    if kind == "energy":
        kw.update(ENERGY)
    head = heads.make(kind, shape_latents.LATENT_DIM, B.d_model, **kw)
    return Pair(backbone.build(order, cfg), head, order, kind).to(runtime.device())


def leave_place_open(prompts: torch.Tensor) -> torch.Tensor:
    """A copy of ``prompts`` (N, 4) with the position replaced by its null id: "a small red circle,
    anywhere". Nine places are right for each such prompt, the shapes' version of the lecture's dog
    that may run left or right; the evaluator does not judge the place of an image for it."""
    out = P.check_prompts(prompts).clone()
    out[:, PLACE] = int(P.NULL[PLACE])
    return out


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
    elsewhere = ref.prompts.clone().cpu()
    g = torch.Generator().manual_seed(metrics.FLOOR_SEED + seed)
    elsewhere[:, PLACE] = torch.randint(data.N_VALUES[PLACE], (n,), generator=g)
    return evaluator.frechet(data.render_prompts(elsewhere, seed=metrics.FLOOR_SEED + seed), ref.images)


def train_pair(B: Budget, order: str, kind: str, head: heads.Head | None = None, data=None,
               progress: bool = True) -> tuple[Pair, train.History]:
    """Build (or take ``head``) and train transformer + head together for B.steps steps (AdamW,
    cosine learning rate) with :func:`course_lib.heads.backbone.loss` (10% null prompts). Returns
    (pair in eval mode, History)."""
    latents, prompts = data if data is not None else latent_data(B)
    pair = build(B, order, kind)
    if head is not None:
        pair.head = head.to(runtime.device())
    g = torch.Generator().manual_seed(SEED)

    def loss_fn(step):
        idx = torch.randint(len(latents), (B.batch,), generator=g).to(latents.device)
        return backbone.loss(pair.backbone, pair.head, latents[idx], prompts[idx], generator=g)
    hist = train.train(pair, loss_fn, B.steps, lr=B.lr, schedule="cosine", warmup=min(100, B.steps // 10),
                       progress=progress, desc=f"{order} + {kind} head")
    return pair.eval(), hist


# ----------------------------------------------------------------------------- the trap in 2-D

def toy_data(n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Three conditions, two right answers each: c in {0, 1, 2} as a one-hot z (n, 3); the token x
    (n, 2) is centre(c) = (c - 1, 0) plus (0, +1) or (0, -1) with probability 1/2, plus noise of std
    0.05. Returns (z, x, centre)."""
    checks.positive_int(n, "n"), checks.generator(generator)
    c = torch.randint(3, (n,), generator=generator)
    z = torch.nn.functional.one_hot(c, 3).float()                                   # (n, 3)
    centre = torch.stack([c.float() - 1, torch.zeros(n)], 1)                        # (n, 2)
    up = torch.randint(2, (n,), generator=generator).float() * 2 - 1                # +-1
    x = centre + torch.stack([torch.zeros(n), up], 1) + 0.05 * torch.randn(n, 2, generator=generator)
    return z, x, centre


def fit_toy(head: heads.Head, steps: int, batch: int = 256, lr: float = 2e-3, seed: int = SEED,
            progress: bool = False) -> train.History:
    """Train ``head`` alone (z is given, no transformer) on :func:`toy_data` for ``steps`` steps (CPU)."""
    checks.positive_int(steps, "steps"), checks.positive_int(batch, "batch")
    g = torch.Generator().manual_seed(seed)

    def loss_fn(step):
        z, x, _ = toy_data(batch, g)
        return head.loss(x, z, generator=g)
    return train.train(head, loss_fn, steps, lr=lr, progress=progress, desc=type(head).__name__)


def on_modes(head: heads.Head, n: int = 2000, steps: int = 8, seed: int = 1) -> dict:
    """Samples of ``head`` for n toy conditions: the share within 0.3 of one of the two right
    answers, the share in the upper one, and the samples and conditions themselves."""
    checks.positive_int(n, "n"), checks.positive_int(steps, "steps")
    z, _, centre = toy_data(n, torch.Generator().manual_seed(seed))
    x = head.sample(z, steps=steps, generator=torch.Generator().manual_seed(seed + 1))       # (n, 2)
    d = x - centre
    near = ((d[:, 1].abs() - 1).abs() < 0.3) & (d[:, 0].abs() < 0.3)
    return dict(on_modes=near.float().mean().item(), upper=(d[:, 1] > 0).float().mean().item(), samples=x, z=z)


# ----------------------------------------------------------------------------- audio: a note as a token

NOTE_RATE, NOTE_SECONDS = 8000, 0.125          # 1000 samples per note


def note_data(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, list]:
    """``n`` synthetic notes (:func:`course_lib.data.audio_clips`, C3..C6, 1/8 s at 8 kHz) as one
    continuous token each, the waveform (n, 1000), with the condition z = one-hot pitch CLASS (n, 12):
    C, C#, ... whatever the octave, so each condition has two or three right answers (its octaves).
    Returns (z, waves, MIDI numbers)."""
    clips = data.audio_clips(n, kind="note", sample_rate=NOTE_RATE, seconds=NOTE_SECONDS, seed=seed)
    midi = [m[0] for m in clips.notes]
    z = torch.nn.functional.one_hot(torch.tensor(midi) % 12, 12).float()                 # (n, 12)
    return z, clips.waves.cpu(), midi


def closest_note(samples: torch.Tensor, pitch_class: torch.Tensor, bank_waves: torch.Tensor,
                 bank_midi: list) -> torch.Tensor:
    """For each sample (n, L), the largest cosine similarity to a real note of its pitch class in the
    bank: 1 for a copy of one note; about 1/sqrt(k) for the average of k octaves."""
    bank_pc = torch.tensor(bank_midi) % 12                                               # (m,)
    sim = torch.nn.functional.normalize(samples, dim=1) @ torch.nn.functional.normalize(bank_waves, dim=1).T
    sim = sim.masked_fill(bank_pc[None, :] != pitch_class[:, None], -1.0)                # (n, m)
    return sim.amax(1)


def audio_heads(B: Budget, n_train: int = 2048, progress: bool = False) -> dict:
    """Train the three heads (no transformer: z is the pitch class) on :func:`note_data` for
    B.audio_steps steps and draw one note per pitch class from each. Returns {head: dict(samples
    (12, 1000), similarity (mean :func:`closest_note` over 240 draws))}, plus the bank of real notes.

    The heads see each note divided by the notes' standard deviation (about 0.19), as
    :mod:`~course_lib.recipes.shape_latents` normalises its latents: a generative head starts from
    N(0, I) noise, and at a fifth of that scale the notes were lost in it (the flow head's similarity
    was 0.12 with raw waveforms, 0.59 normalised, at 400 steps)."""
    z_all, waves, midi = note_data(n_train, seed=0)
    scale = waves.std()                                                     # one number for all samples
    bank = {}
    for m, w in zip(midi, waves):
        bank.setdefault(m, w)
    bank_midi, bank_waves = sorted(bank), torch.stack([bank[m] for m in sorted(bank)])   # one wave per note
    out = {"real": dict(samples=torch.stack([bank[next(m for m in bank_midi if m % 12 == pc)] for pc in range(12)]),
                        sample_rate=NOTE_RATE)}
    g = torch.Generator().manual_seed(SEED)
    for kind in KINDS:
        torch.manual_seed(SEED)
        kw = dict(width=128) if kind == "mse" else dict(width=128, depth=2)
        head = heads.make(kind, waves.shape[1], 12, **kw)

        def loss_fn(step):
            idx = torch.randint(n_train, (64,), generator=g)
            return head.loss(waves[idx] / scale, z_all[idx], generator=g)
        train.train(head, loss_fn, B.audio_steps, lr=1e-3, progress=progress, desc=f"{kind} head, notes")
        pcs = torch.arange(240) % 12
        draws = scale * head.sample(torch.nn.functional.one_hot(pcs, 12).float(), generator=torch.Generator().manual_seed(1))
        out[kind] = dict(samples=draws[:12], similarity=closest_note(draws, pcs, bank_waves, bank_midi).mean().item())
    return out


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
                clean=limit_of_tokens.clean_rate(images),
                head_nfe=out.head_nfe, passes=out.passes, seconds_per_image=seconds / len(ref.prompts),
                head_share_of_time=out.head_share, seconds_backbone=out.seconds_backbone,
                seconds_head=out.seconds_head, params_backbone=count_parameters(pair.backbone),
                params_head=count_parameters(pair.head))


def comparison(B: Budget, orders=ORDERS, kinds=KINDS, open_place: bool = False,
               progress: bool = True) -> tuple[dict, list[dict], float]:
    """Train every (order, head) pair on the same latents and evaluate it on the same prompts: the
    whole prompts, or with ``open_place`` prompts that leave the place open, in training and in
    evaluation. Returns ({(order, kind): pair}, rows of :func:`evaluate` with ``train_seconds``
    and ``final_loss``, the Fréchet floor at B.n_eval for these prompts)."""
    data = latent_data(B, open_place)
    ref = evaluator.reference(B.n_eval)
    pairs, rows = {}, []
    for order in orders:
        for kind in kinds:
            pair, hist = train_pair(B, order, kind, data=data, progress=progress)
            pairs[order, kind] = pair
            rows.append(dict(evaluate(pair, B, ref, open_place=open_place), train_seconds=hist.seconds,
                             final_loss=sum(hist.losses[-50:]) / len(hist.losses[-50:])))
    floor = open_floor(B.n_eval) if open_place else evaluator.frechet_floor(B.n_eval)
    return pairs, rows, floor


def head_steps_sweep(pair: Pair, B: Budget, steps=None, ref=None, open_place: bool = False) -> list[dict]:
    """:func:`evaluate` for every number of head steps in ``steps`` (B.sweep) on the same prompts."""
    ref = ref or evaluator.reference(B.n_eval)
    return [evaluate(pair, B, ref, head_steps=s, open_place=open_place) for s in (steps or B.sweep)]


def bench_results(mode: str | None = None) -> dict:
    """The figures of ``python -m course_lib.bench heads``. For the whole prompts, per (order, head)
    ``<order>_<head>``, and for prompts that leave the place open, ``open_<order>_<head>``: frechet,
    prompt_accuracy, clean, head_nfe, passes, seconds_per_image, head_share_of_time, parameters,
    training seconds; the Fréchet floors (``frechet_floor``, ``open_frechet_floor``) at the same
    n; the flow head's step sweep in raster order with the place open (``open_raster_flow_steps``);
    and the two bars (flow <= 0.5x MSE, energy at 1 step <= 1.5x flow) per order, ``open_<order>_bars``
    where the prompt has several right answers (what the bars are about) and ``<order>_bars`` for
    the whole prompt."""
    B = budget(mode)
    keys = ("frechet", "prompt_accuracy", "clean", "head_nfe", "passes", "seconds_per_image",
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
