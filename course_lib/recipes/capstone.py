"""Recipe of notebook 11 (the capstone): every generator of the course on one frontier.

The prompted-shapes task of notebooks 04-10 (a 16x16 shape from the prompt shape, colour, place,
size), every generator the course trained for it, and three costs against two qualities:

* **quality**: prompt accuracy (:func:`course_lib.evaluator.prompt_accuracy`, the share of images
  whose attributes all match the prompt) and the Fréchet distance to held-out real images in the
  shapes evaluator's feature space (:func:`course_lib.evaluator.frechet`), with the share of images
  that are one clean shape (:func:`course_lib.recipes.limit_of_tokens.clean_rate`);
* **costs**: *sequential network evaluations per image* (:attr:`Generator.sequential`: every network
  call on the critical path of one image, the transformer's passes and the head's passes after each
  of them; calls that run side by side in one batch, as guidance's two rows or MaskGIT's tokens of
  one step, count once; the tokenizer's decoder, one pass for every generator, is not counted),
  *wall seconds per image* (all ``n_eval`` prompts in one batch after a warm-up call, the median
  over the seeds; and alone, a batch of one, the median over ``n_alone`` prompts), and *parameters*
  (the generator's and its tokenizer's decoder's, :func:`decoder_params`: what it takes to make
  pixels).

Two frontiers (:func:`frontier`): the **whole prompt** (one right answer up to a half-pixel jitter),
and the **place left open** (:func:`course_lib.recipes.shapes_task.leave_place_open`: nine right
places). Only generators trained with open-place prompts join the second (``prompts="both"``): a
model trained on whole prompts never saw the null place. The Fréchet floor is real images against
real images at the same n (:func:`course_lib.evaluator.frechet_floor`, and
:func:`course_lib.recipes.generation_heads.open_floor` with the place open); each tokenizer's
ceiling (:func:`ceilings`) is its reconstruction of real images, scored the same way: the best a
generator over that tokenizer can do.

The generators (:data:`GENERATORS`), each sampled with its own notebook's recipe function:

* 04: a GPT over VQ tokens in raster order with guidance on the logits (iGPT, Chen et al. 2020;
  VQGAN's transformer, Esser et al. 2021; CFG, Ho & Salimans 2022);
* 05: MaskGIT (Chang et al. 2022, §3.2) at 1, 2, 4, 8, 16 parallel decoding steps;
* 06: VAR's next-scale prediction (Tian et al. 2024) and Infinity's bitwise tokens, with and without
  bitwise self-correction (Han et al. 2025);
* 07: the continuous transformer with the MSE head and with a Gaussian head (the trap);
* 09: the continuous transformer with MAR's flow-matching head (Li et al. 2024, §3; NextStep-1) at
  8 steps, SLED's energy-distance head (Ma et al. 2025, §3) and the MSE head, in raster and in MAR's
  masked order;
* 10: flow matching (Lipman et al. 2023) in the continuous tokenizer's latent space (as latent
  diffusion, Rombach et al. 2022) at 1, 2, 4, 8, 32 Euler steps, and MeanFlow (Geng et al. 2025,
  §4.1) at 1 and 2 steps;
* 11: the MeanFlow head under the raster transformer (one pass per token) and its ablation trained
  with b = a only (:mod:`course_lib.heads.meanflow_head`).

Simplified: one shared held-out set (``evaluator.reference(n_eval)``); the seeds change the
generators' noise, not the prompts, so the spread over seeds is the sampling's, not the reference's;
the clean-shape share is measured on the first seed only (it is the slowest score). Every model
comes from the course's shipped weights in lecture mode (nothing trains), from the disk cache or
trained now in quick mode. Usage::

    from course_lib.recipes import capstone
    whole = capstone.frontier()                     # rows, floor, ceilings, n_eval, seeds
    opened = capstone.frontier(open_place=True)
    capstone.frontier_figure(whole, opened); print(capstone.frontier_table(whole))
    for line in capstone.reading(whole, opened): print(line)
"""
from __future__ import annotations

import functools
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch

from course_lib import checks, data, evaluator, runtime
from course_lib.nets import count_parameters
from course_lib.recipes import (chaining_tokens, generation_heads, limit_of_tokens, maskgit, meanflow,
                                meanflow_latent, next_scale, shape_latents, shape_tokens, shapes_task)
from course_lib.recipes.capstone_figures import (FAMILIES, frontier_figure, frontier_table,  # noqa: F401
                                                 reading, sample_grid_figure)

PRETRAINED = ()                  # the capstone trains nothing of its own: it loads notebooks 04-10's models


@dataclass(frozen=True)
class Budget:
    """Notebook 11's frontier budget in one mode (only evaluation sizes: no model depends on it)."""
    mode: str                 # the course mode this budget is for
    n_eval: int               # held-out prompts per score (evaluator.reference(n_eval))
    seeds: tuple              # sampling seeds: each figure is the mean (and spread) over them
    n_alone: int              # prompts generated one at a time for the latency of one image
    n_warmup: int = 4         # prompts of the untimed warm-up call before the timed batch


BUDGETS = {"quick": Budget("quick", n_eval=64, seeds=(0,), n_alone=2),
           "lecture": Budget("lecture", n_eval=256, seeds=(0, 1, 2), n_alone=8),
           "full": Budget("full", n_eval=1024, seeds=(0, 1, 2), n_alone=16)}


def budget(mode: str | None = None) -> Budget:
    """The frontier's budget in the current (or given) mode."""
    return runtime.pick(BUDGETS, mode)


# ----------------------------------------------------------------------------- the registry

TOKENIZERS = {"VQ": "VQ, 16 tokens of 256 codes (04, 05)", "VAR": "VAR's multi-scale VQ (06)",
              "BSQ": "Infinity's multi-scale bits (06)", "continuous": "continuous, 16 tokens x 4 numbers (07-10)"}


@dataclass(frozen=True)
class Generator:
    """One point of the frontier: a trained model and how its notebook samples it."""
    name: str                 # as the table prints it
    short: str                # its label on the chart
    family: str               # colour and marker (capstone_figures.FAMILIES)
    tokenizer: str            # whose decoder makes its pixels (a key of TOKENIZERS)
    prompts: str              # "whole": trained on whole prompts only; "both": also with the place open
    load: Callable            # (mode, open_place) -> the model (shipped weights, else cache, else trained)
    sample: Callable          # (model, prompts (N, 4), seed, mode) -> images (N, 3, 16, 16) in [0, 1]
    sequential: Callable      # model -> sequential network evaluations per image
    params: Callable = count_parameters   # model -> the generator's parameters (decoder apart)


def _once(fn: Callable) -> Callable:
    """``fn(mode, open_place)`` loaded once per mode, place and device (MaskGIT's five points share one model)."""
    memo = functools.lru_cache(maxsize=None)(lambda mode, open_place, device: fn(mode, open_place))
    return functools.wraps(fn)(lambda mode, open_place=False: memo(mode, bool(open_place), str(runtime.device())))


@_once
def _gpt(mode, open_place):
    return chaining_tokens.trained_gpt(mode, open_place=open_place)


@_once
def _maskgit(mode, open_place):
    return maskgit.trained_maskgit(mode, open_place=open_place)


def _gpt_point(cfg_scale: float) -> Generator:
    """The GPT of 04 at guidance ``cfg_scale`` (04's own scale, or 1: no guidance). Guidance pulls every
    sample towards what the prompt makes most likely; with the place open that is a few places, not nine
    (the open GPT at scale 1 against 2, lecture mode: Fréchet 438 against 1908, floor 354, 512 prompts)."""
    def sample(model, prompts, seed, mode):
        return chaining_tokens.sample(model, prompts, seed, mode, cfg_scale=cfg_scale, top_k=chaining_tokens.TOP_K)[0]
    guided = cfg_scale != 1.0
    return Generator("GPT, raster order" + ("" if guided else ", no guidance"), "GPT" if guided else "GPT w1",
                     "token GPT (04)", "VQ", "both", _gpt, sample, lambda m: m.cfg.n_tokens)   # one pass per token


def _maskgit_point(steps: int) -> Generator:
    def sample(model, prompts, seed, mode):           # at the budget's guidance, as notebook 05
        return maskgit.sample(model, prompts, steps, seed, mode)[0]
    return Generator(f"MaskGIT, {steps} step{'s' * (steps > 1)}", f"MG{steps}", "MaskGIT (05)", "VQ", "both",
                     _maskgit, sample, lambda m: steps)


def _next_scale_point(name: str, short: str, kind: str, load) -> Generator:
    def sample(model, prompts, seed, mode):
        return next_scale.generate_images(kind, model, prompts, seed, mode=mode)["images"]
    return Generator(name, short, "next scale (06)", "VAR" if kind == "var" else "BSQ", "whole", _once(load),
                     sample, lambda m: len(next_scale.SCALES))          # one pass per scale


def _continuous_point(kind: str) -> Generator:
    def sample(model, prompts, seed, mode):
        return limit_of_tokens.sample_continuous(model, prompts, seed, mode, cfg_scale=limit_of_tokens.CFG_SCALE)
    return Generator(f"continuous chain + {kind} head (07)", f"{kind} 07", "continuous chain (07)", "continuous",
                     "whole", _once(lambda mode, _: limit_of_tokens.trained_continuous(kind, mode)), sample,
                     lambda m: m.ar.cfg.n_tokens * (1 + m.head.nfe()))  # per token: transformer, then head


def _pair_point(order: str, kind: str, head_steps: int | None = None, family: str | None = None) -> Generator:
    """A transformer + head pair of notebook 09 (or the one-step head of 11), sampled by its recipe."""
    def sample(pair, prompts, seed, mode):
        return generation_heads.generate(pair, prompts, generation_heads.budget(mode), head_steps, seed)[0]

    def sequential(pair):                             # per step of the order: a transformer pass, then the head's
        B = generation_heads.budget(getattr(pair, "capstone_mode", None))            # the mode load() kept on it
        passes = pair.backbone.cfg.n_tokens if order == "raster" else min(B.mar_steps, pair.backbone.cfg.n_tokens)
        return passes * (1 + pair.head.nfe(head_steps))

    label = {"mse": "MSE head", "flow": f"flow head, {head_steps} steps", "energy": "energy head",
             "meanflow": "MeanFlow head", "meanflow_fm": "b = a ablation"}[kind]
    if kind in ("meanflow", "meanflow_fm"):
        label += f", {head_steps} pass{'es' * (head_steps > 1)}"
    short = {"mse": "MSE", "flow": f"flow{head_steps}", "energy": "energy", "meanflow": f"MF{head_steps}",
             "meanflow_fm": f"b=a {head_steps}"}[kind]
    load = _once(lambda mode, open_place: generation_heads.trained_pair(generation_heads.budget(mode), order, kind,
                                                                        open_place, progress=False))
    return Generator(f"{order} + {label}", f"{order[0]}-{short}", family or f"heads, {order} (09)", "continuous",
                     "both", load, sample, sequential)


def _latent_point(method: str, steps: int) -> Generator:
    mean_flow = method == "mf"

    def sample(model, prompts, seed, mode):
        B = meanflow.budget(mode)
        return meanflow_latent.latent_images(model, prompts, steps, mean_flow, w=B.latent.guidance, seed=seed,
                                             mode=B.mode)
    name = f"{'MeanFlow' if mean_flow else 'flow matching'} in latents, {steps} step{'s' * (steps > 1)}"
    load = _once(lambda mode, _: meanflow_latent.trained_latent(meanflow.budget(mode), method, progress=False))
    return Generator(name, f"{method.upper()}{steps}", "latent flow (10)", "continuous", "whole", load, sample,
                     lambda m: steps)             # one pass a step (guidance's two rows run in one batch)


LATENT_FM_STEPS = (1, 2, 4, 8, 32)    # flow matching's Euler steps in the latent space
FLOW_HEAD_STEPS = 8                   # the flow head's Euler steps per token (notebook 09's lecture default)


def _generators() -> tuple:
    gens = [_gpt_point(chaining_tokens.CFG_SCALE), _gpt_point(1.0),
            *(_maskgit_point(s) for s in maskgit.STEPS),
            _next_scale_point("VAR", "VAR", "var", lambda mode, _: next_scale.train_var(mode)),
            _next_scale_point("Infinity", "Inf", "infinity", lambda mode, _: next_scale.train_infinity(0.0, mode)),
            _next_scale_point("Infinity, self-correction", "Inf-SC", "infinity",
                              lambda mode, _: next_scale.train_infinity(next_scale.P_MAX, mode)),
            *(_continuous_point(k) for k in limit_of_tokens.HEADS),
            *(_pair_point(o, k, FLOW_HEAD_STEPS if k == "flow" else None)
              for o in generation_heads.ORDERS for k in generation_heads.KINDS),
            *(_latent_point("fm", s) for s in LATENT_FM_STEPS),
            *(_latent_point("mf", s) for s in meanflow.MF_STEPS),
            _pair_point("raster", "meanflow", 1, "one-step head (11)"),
            _pair_point("raster", "meanflow", 2, "one-step head (11)"),
            _pair_point("raster", "meanflow_fm", 1, "one-step head (11)")]
    return tuple(gens)


GENERATORS = _generators()


def generators(open_place: bool = False) -> tuple:
    """The generators of a frontier: all of them, or with ``open_place`` those trained with the place open."""
    return tuple(g for g in GENERATORS if not open_place or g.prompts == "both")


def find(name: str) -> Generator:
    """The generator called ``name`` (ValueError listing the names otherwise)."""
    for g in GENERATORS:
        if g.name == name:
            return g
    raise ValueError(f"name: expected one of {', '.join(repr(g.name) for g in GENERATORS)}, got {name!r}")


def load(gen: Generator, mode: str | None = None, open_place: bool = False):
    """``gen``'s model for ``mode`` (trained with the place open if ``open_place``), loaded once."""
    mode = budget(mode).mode
    if open_place and gen.prompts != "both":
        raise ValueError(f"{gen.name} was trained on whole prompts only: it has no place-open model "
                         f"(open_place=True needs one of {[g.name for g in generators(True)]})")
    model = gen.load(mode, open_place)
    model.capstone_mode = mode
    return model


@functools.lru_cache(maxsize=None)
def _decoder_params(tokenizer: str, mode: str, device: str) -> int:
    if tokenizer == "continuous":
        return count_parameters(shape_latents.tokenizer(mode).ae.decoder)
    tok = {"VQ": shape_tokens.tokenizer, "VAR": next_scale.var_tokenizer, "BSQ": next_scale.bsq_tokenizer}[tokenizer](mode)
    return count_parameters(tok.decoder, tok.quantizer)     # the quantizer's look-up (VAR's phi convolutions)


def decoder_params(tokenizer: str, mode: str | None = None) -> int:
    """Parameters of ``tokenizer``'s way back to pixels: its decoder and its quantizer's parameters
    (an EMA codebook is a buffer, not counted)."""
    checks.one_of(tokenizer, "tokenizer", tuple(TOKENIZERS))
    return _decoder_params(tokenizer, budget(mode).mode, str(runtime.device()))


# ----------------------------------------------------------------------------- measuring

def _mean_std(values: list) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def measure(gen: Generator, mode: str | None = None, open_place: bool = False, ref=None, seeds=None) -> dict:
    """Sample ``gen`` for the prompts of ``ref`` (default ``evaluator.reference(n_eval)``; with
    ``open_place`` the place left open and not judged) once per seed, and return: name, family,
    tokenizer, open_place, prompt_accuracy and frechet (means over the seeds, ``_std`` their standard
    deviations, ``_per_seed`` the values), clean (first seed), sequential_evaluations,
    seconds_per_image_batch (all prompts in one batch after a warm-up, median over the seeds),
    seconds_per_image_alone (median over n_alone prompts drawn one at a time), params (generator and
    decoder, :func:`decoder_params`), params_generator, n, seeds, seconds_measuring (this call's wall time)."""
    C = budget(mode)
    t0 = time.perf_counter()
    ref = ref or evaluator.reference(C.n_eval)
    seeds = C.seeds if seeds is None else tuple(checks.positive_int(s, "seeds", 0) for s in seeds)
    if not seeds:
        raise ValueError("seeds: expected at least one seed, got none")
    model = load(gen, C.mode, open_place)
    prompts = shapes_task.leave_place_open(ref.prompts) if open_place else ref.prompts

    def draw(p, seed):
        return gen.sample(model, p, seed, C.mode)
    draw(prompts[:C.n_warmup], seeds[0])                                       # warm up
    acc, fid, per_image, clean = [], [], [], None
    for s in seeds:
        images, seconds = runtime.timed(lambda: draw(prompts, s))
        evaluator.check_images(images, f"{gen.name}'s images")
        per_image.append(seconds / len(prompts))
        acc.append(evaluator.prompt_accuracy(images, prompts))
        fid.append(evaluator.frechet(images, ref.images))
        clean = limit_of_tokens.clean_rate(images) if clean is None else clean
    draw(prompts[:1], seeds[0])                                                 # warm up a batch of one
    alone = [runtime.timed(lambda: draw(prompts[i:i + 1], seeds[0]))[1] for i in range(min(C.n_alone, len(prompts)))]
    (a, a_std), (f, f_std) = _mean_std(acc), _mean_std(fid)
    params = gen.params(model)
    return dict(name=gen.name, short=gen.short, family=gen.family, tokenizer=gen.tokenizer, open_place=bool(open_place),
                prompt_accuracy=a, prompt_accuracy_std=a_std, prompt_accuracy_per_seed=acc,
                frechet=f, frechet_std=f_std, frechet_per_seed=fid, clean=clean,
                sequential_evaluations=int(gen.sequential(model)),
                seconds_per_image_batch=statistics.median(per_image),
                seconds_per_image_alone=statistics.median(alone),
                params=params + decoder_params(gen.tokenizer, C.mode), params_generator=params,
                n=len(prompts), seeds=list(seeds), seconds_measuring=time.perf_counter() - t0)


def real_draw(ref, open_place: bool = False, seed: int = 0) -> torch.Tensor:
    """What a perfect generator would draw for ``ref``'s prompts: the floors' second draw of real
    images (:func:`course_lib.evaluator.frechet_floor`; with ``open_place`` the same shapes at places
    drawn at random, as :func:`course_lib.recipes.generation_heads.open_floor` draws them)."""
    return shapes_task.real_draw(ref.prompts, open_place, seed)


@torch.no_grad()
def reconstruct(tokenizer: str, images: torch.Tensor, mode: str | None = None) -> torch.Tensor:
    """``images`` (N, 3, 16, 16) through ``tokenizer`` and back (quantized, every scale for VAR and BSQ)."""
    checks.one_of(tokenizer, "tokenizer", tuple(TOKENIZERS))
    images = evaluator.check_images(images, "images")
    mode = budget(mode).mode
    if tokenizer == "VQ":
        return shape_tokens.decode(shape_tokens.encode(images, mode), mode)
    if tokenizer == "continuous":
        return shape_latents.decode(shape_latents.encode(images, mode), mode)
    tok = next_scale.var_tokenizer(mode) if tokenizer == "VAR" else next_scale.bsq_tokenizer(mode)
    return next_scale.residual_picture(tok, images)["images"][-1]           # after the last scale


def ceilings(mode: str | None = None, n: int | None = None, open_place: bool = False) -> dict:
    """The best each tokenizer allows: :func:`real_draw` for the prompts of ``evaluator.reference(n)``
    reconstructed by each tokenizer (:func:`reconstruct`), scored as the generators are (prompt
    accuracy, Fréchet to the reference images, clean). Returns {tokenizer: scores}, and under
    "real images" the real draw itself (its Fréchet is the floor)."""
    C = budget(mode)
    ref = evaluator.reference(checks.positive_int(n or C.n_eval, "n", 2))
    prompts = shapes_task.leave_place_open(ref.prompts) if open_place else ref.prompts
    real = real_draw(ref, open_place)

    def score(images):
        return dict(prompt_accuracy=evaluator.prompt_accuracy(images, prompts),
                    frechet=evaluator.frechet(images, ref.images), clean=limit_of_tokens.clean_rate(images))
    return {"real images": score(real), **{t: score(reconstruct(t, real, C.mode)) for t in TOKENIZERS}}


def frontier(mode: str | None = None, open_place: bool = False, progress: bool = True) -> dict:
    """:func:`measure` for every generator of :func:`generators` (``open_place``) on the same prompts.
    Returns dict(rows, floor (real against real at n_eval), ceilings (:func:`ceilings`), n_eval, seeds,
    mode, open_place, seconds and cpu_seconds (the wall and CPU time of the whole measurement))."""
    C = budget(mode)
    t0, cpu0 = time.perf_counter(), time.process_time()
    ref = evaluator.reference(C.n_eval)
    gens = generators(open_place)
    if progress:
        from tqdm.auto import tqdm
        gens = tqdm(gens, desc=f"frontier, {'place open' if open_place else 'whole prompt'}")
    rows = [measure(g, C.mode, open_place, ref) for g in gens]
    floor = generation_heads.open_floor(C.n_eval) if open_place else evaluator.frechet_floor(C.n_eval)
    return dict(rows=rows, floor=floor, ceilings=ceilings(C.mode, C.n_eval, open_place), n_eval=C.n_eval,
                seeds=list(C.seeds), mode=C.mode, open_place=bool(open_place), seconds=time.perf_counter() - t0,
                cpu_seconds=time.process_time() - cpu0)


# ----------------------------------------------------------------------------- the widget

def check_prompt(prompt, open_place: bool = False) -> torch.Tensor:
    """One prompt (shape, colour, place, size) as a list or a (4,) integer tensor -> (1, 4) int64;
    with ``open_place`` the place may be anything (it is left open), even the null id."""
    if isinstance(prompt, torch.Tensor):
        checks.tensor(prompt, "prompt", ndim=1, floating=False, shape="(4,) int64")
        prompt = prompt.tolist()
    if not isinstance(prompt, (list, tuple)) or len(prompt) != len(data.ATTRIBUTES):
        raise ValueError(f"prompt: expected 4 integers ({', '.join(data.ATTRIBUTES)}), got {prompt!r}")
    for a, (name, k, v) in enumerate(zip(data.ATTRIBUTES, data.N_VALUES, prompt)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"prompt[{a}] ({name}): expected an int, got {type(v).__name__} {v!r}")
        high = k if open_place and a == shapes_task.PLACE else k - 1
        if not 0 <= v <= high:
            raise ValueError(f"prompt[{a}] ({name}): expected an int in [0, {high}], got {v}")
    out = torch.tensor([prompt], dtype=torch.long)                                 # (1, 4)
    return shapes_task.leave_place_open(out) if open_place else out


def samples_for(prompt, mode: str | None = None, open_place: bool = False, n: int = 4, seed: int = 0) -> dict:
    """For the notebook's widget: ``n`` images of ``prompt`` (see :func:`check_prompt`) from every
    generator of the frontier (``open_place``: the place left open, the open-trained ones).
    Returns {name: images (n, 3, 16, 16)}."""
    prompts = check_prompt(prompt, open_place).repeat(checks.positive_int(n, "n"), 1)      # (n, 4)
    seed = checks.positive_int(seed, "seed", 0)
    mode = budget(mode).mode
    out = {}
    for g in generators(open_place):
        out[g.name] = g.sample(load(g, mode, open_place), prompts, seed, mode).cpu()
    return out
