"""Recipe of notebook 07_limit_of_tokens: discrete against continuous tokens, and the MSE trap.

Budgets per mode and the experiments the notebook and the benchmarks share:

* :func:`compare_compression`: the VQ tokenizer of 04/05 (:mod:`course_lib.recipes.shape_tokens`,
  16 tokens x log2 256 = 128 bits per image) against the continuous tokenizer
  (:mod:`course_lib.recipes.shape_latents`, 16 tokens x D real numbers) on the same 4x4 grid, the
  continuous tokens also rounded to b bits per number (16 D b bits per image, so b = 2 spends the
  VQ's 128 bits): reconstruction PSNR, prompt accuracy and Fréchet distance of the reconstructions;
* :func:`trained_continuous`: the causal transformer of :mod:`course_lib.orders.continuous` with
  the MSE head or the Gaussian head, the same size and data as the GPT of notebook 04, trained on
  the continuous tokens and kept in the disk cache;
* :func:`mse_trap`: the GPT of 04 (discrete tokens, cross-entropy, sampled) against the MSE and the
  Gaussian model (continuous tokens) with the full prompt (one right answer, up to a half-pixel
  jitter) and with the null prompt (any of 432 prompts is right: the "running dog"), measured by
  the shapes evaluator: the share of samples that are one clean shape (:func:`clean_rate`),
  prompt accuracy, Fréchet distance, and how many different pictures come out.

Every experiment seeds its own draws, so its figures do not depend on which cells ran before.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import nn

from course_lib import checks, data, evaluator, heads, metrics, runtime, train
from course_lib.nets import count_parameters
from course_lib.orders import continuous, gpt
from course_lib.orders import prompt as P
from course_lib.recipes import chaining_tokens, shape_latents, shape_tokens, shapes_task
from course_lib.tokens.rounding import round_to_bits  # noqa: F401  (07's exercise 1; used below)
from course_lib.recipes.registry import Pretrained

VERSION = 1
# notebook 07's two heads, heads of course_lib.heads: the MSE head a single linear map (hidden=0)
HEADS = {"mse": functools.partial(heads.MSEHead, hidden=0), "gaussian": heads.GaussianHead}
P_NULL = chaining_tokens.P_NULL     # 10% null prompts in training, as the GPT
CFG_SCALE = 1.0                     # the trap compares the models' own distributions: no guidance
ROUND_BITS = (1, 2, 3, 4, 6)        # bits per number when the continuous tokens are rounded
CLEAN_RESIDUAL = 0.1                # a sample is one clean shape if its squared error to the nearest
                                    # clean rendering is under a tenth of that rendering's energy
                                    # (real images: under 0.07; a 70%-bright shape: 0.09)
JITTERS = torch.linspace(-0.5, 0.5, 5)   # the data's half-pixel placement jitter, on a 5 x 5 grid


@dataclass(frozen=True)
class Budget(shapes_task.TransformerBudget):
    """Notebook 07's budget in one mode: the GPT's sizes and data (:class:`chaining_tokens.Budget`)
    over shape_latents' tokens, fewer steps in lecture mode (time); all of it is the continuous
    models' cache key."""
    p_null: float = P_NULL    # share of training prompts replaced by the null prompt
    version: int = VERSION    # the code's version


BUDGETS = {
    "quick": Budget("quick", shape_latents.BUDGETS["quick"], n_train=4096, batch=64, d_model=64, n_layer=2,
                    n_head=4, steps=150, lr=2e-3, n_eval=128),
    "lecture": Budget("lecture", shape_latents.BUDGETS["lecture"], n_train=8192, batch=64, d_model=128,
                      n_layer=4, n_head=4, steps=1000, lr=1e-3, n_eval=512),
    "full": Budget("full", shape_latents.BUDGETS["full"], n_train=32768, batch=128, d_model=256, n_layer=6,
                   n_head=8, steps=12000, lr=6e-4, n_eval=2000),
}


def budget(mode: str | None = None) -> Budget:
    """Notebook 07's budget in the current (or given) mode."""
    return runtime.pick(BUDGETS, mode)


# ----------------------------------------------------------------------------- discrete vs continuous

def vq_bits() -> float:
    """Bits per image of the VQ tokenizer: 16 tokens x log2(K)."""
    return shape_tokens.N_TOKENS * torch.log2(torch.tensor(float(shape_tokens.CODEBOOK))).item()


def _quality(images: torch.Tensor, ref: data.Shapes) -> dict:
    return dict(psnr=metrics.psnr(images, ref.images),
                prompt_accuracy=evaluator.prompt_accuracy(images, ref.prompts),
                frechet=evaluator.frechet(images, ref.images))


@torch.no_grad()
def compare_compression(mode: str | None = None, n: int | None = None, seed: int = 0,
                        round_bits=ROUND_BITS, round_fn=None) -> dict:
    """Reconstruct ``n`` held-out shapes (:func:`course_lib.evaluator.reference`) through the VQ
    tokenizer, the continuous tokenizer, and the continuous tokenizer with its tokens rounded to
    each of ``round_bits`` bits per number. Returns {"rows": [dict(name, kind, bits, psnr,
    prompt_accuracy, frechet)], "frechet_floor", "real_accuracy", "n", "images": {name: the first
    8 reconstructions}, "originals"}. Bits per image: VQ 16 log2 K; continuous 16 D 32 (float32)
    or 16 D b (rounded). ``round_fn(latents, bits)``: the rounding (default :func:`round_to_bits`)."""
    B = budget(mode)
    round_fn = round_fn or round_to_bits
    n = n or B.n_eval
    ref = evaluator.reference(n, seed)
    rows, images = [], {}

    def add(name, kind, bits, recon):
        rows.append(dict(name=name, kind=kind, bits=float(bits), **_quality(recon, ref)))
        images[name] = recon[:8].cpu()

    add("VQ, K = 256", "discrete", vq_bits(), shape_tokens.decode(shape_tokens.encode(ref.images, B.mode), B.mode))
    latents = shape_latents.encode(ref.images, B.mode)                                # (n, 16, D)
    per_image = shape_latents.N_TOKENS * shape_latents.LATENT_DIM
    for b in round_bits:
        add(f"continuous, {b} bit{'s' if b > 1 else ''}/number", "rounded", per_image * b,
            shape_latents.decode(round_fn(latents, b), B.mode))
    add("continuous, float32", "continuous", per_image * 32, shape_latents.decode(latents, B.mode))
    return dict(rows=rows, frechet_floor=evaluator.frechet_floor(n, seed),
                real_accuracy=evaluator.prompt_accuracy(ref.images, ref.prompts), n=n,
                images=images, originals=ref.images[:8].cpu())


# ----------------------------------------------------------------------------- the continuous models

def build(kind: str, B: Budget) -> nn.ModuleDict:
    """{"ar": ContinuousAR, "head": MSEHead or GaussianHead}, weights seeded, on the course device."""
    checks.one_of(kind, "kind", tuple(HEADS))
    torch.manual_seed(0)
    cfg = continuous.ContinuousConfig(latent_dim=shape_latents.LATENT_DIM, n_tokens=shape_latents.N_TOKENS,
                                      d_model=B.d_model, n_layer=B.n_layer, n_head=B.n_head)
    return nn.ModuleDict(dict(ar=continuous.ContinuousAR(cfg), head=HEADS[kind](cfg.latent_dim, B.d_model))
                         ).to(runtime.device())


def fit(model: nn.ModuleDict, B: Budget, steps: int | None = None, progress: bool = True,
        desc: str = "continuous AR") -> train.History:
    """Train on B.n_train shapes' continuous tokens (seed 0, the GPT's images), batches of B.batch,
    AdamW with warmup and cosine decay, 10% null prompts: the GPT's recipe with the head's loss."""
    latents, prompts = shape_latents.latent_data(B.n_train, seed=shape_latents.TRAIN_SEED, mode=B.mode)
    dev = runtime.device()
    latents, prompts = latents.to(dev), prompts.to(dev)
    g = torch.Generator().manual_seed(0)
    steps = steps or B.steps

    def loss_fn(step):
        idx = torch.randint(len(latents), (B.batch,), generator=g).to(dev)
        return continuous.loss(model.ar, model.head, latents[idx], prompts[idx], p_null=B.p_null, generator=g)

    return train.train(model, loss_fn, steps, lr=B.lr, weight_decay=0.01, schedule="cosine",
                       warmup=min(100, steps // 10), desc=desc, progress=progress)


@functools.lru_cache(maxsize=None)
def _trained(kind: str, mode: str, device: str) -> nn.ModuleDict:
    B = budget(mode)
    return train.cached(f"continuous-ar-{kind}", B, build=lambda: build(kind, B),
                        fit=lambda m: fit(m, B, desc=f"continuous AR ({kind} head)")).requires_grad_(False)


def trained_continuous(kind: str = "mse", mode: str | None = None) -> nn.ModuleDict:
    """The continuous-token model with the ``kind`` head ("mse" or "gaussian") of this mode, from
    memory, the disk cache, or trained now: ``m.ar`` (ContinuousAR), ``m.head``."""
    if kind not in HEADS:
        raise ValueError(f"kind: expected one of {', '.join(map(repr, HEADS))}, got {kind!r}")
    return _trained(kind, budget(mode).mode, str(runtime.device()))


def sample_continuous(model: nn.ModuleDict, prompts: torch.Tensor, seed: int = 0, mode: str | None = None,
                      **kw) -> torch.Tensor:
    """Images (N, 3, 16, 16) from ``prompts`` (null ids allowed) through the continuous chain and
    the continuous tokenizer's decoder; keywords go to :func:`course_lib.orders.continuous.generate`."""
    prompts = P.check_prompts(prompts)
    latents = continuous.generate(model.ar, model.head, prompts.to(runtime.device()),
                                  generator=torch.Generator().manual_seed(seed), **kw)
    return shape_latents.decode(latents, mode)


def sample_discrete(prompts: torch.Tensor, seed: int = 0, mode: str | None = None, **kw) -> torch.Tensor:
    """Images from the GPT of notebook 04 (discrete tokens, cross-entropy, sampled)."""
    kw.setdefault("cfg_scale", CFG_SCALE)
    return chaining_tokens.sample(chaining_tokens.trained_gpt(mode), prompts, seed, mode, **kw)[0]


# ----------------------------------------------------------------------------- the judge of "one clean shape"

@torch.no_grad()
def nearest_rendering(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each image, the clean rendering of what the evaluator reads in it (its predicted shape,
    colour, position and size) at the best of 5 x 5 placements within the data's jitter. Returns
    (renderings (N, 3, 16, 16), residual (N,)): the squared error to that rendering divided by
    the rendering's own energy (0 = exactly a clean shape; 1 = as far as a black image)."""
    pred = evaluator.shapes_evaluator().predict(images)                            # (N, 4) on the CPU
    shape, color, position, big = pred.unbind(1)
    radius = torch.where(big == 1, 0.22, 0.14) * 16
    cx0 = (0.25 + 0.25 * (position % 3)).float() * 16                              # as data.shapes places it
    cy0 = (0.25 + 0.25 * (position // 3)).float() * 16
    x = images.cpu().float()
    best_err, best = torch.full((len(x),), float("inf")), torch.zeros_like(x)
    for dx in JITTERS:
        for dy in JITTERS:
            r = data.render_shapes(shape, color, cx0 + dx, cy0 + dy, radius, 16)   # (N, 3, 16, 16)
            err = (x - r).pow(2).sum((1, 2, 3)) / r.pow(2).sum((1, 2, 3)).clamp_min(1e-8)
            better = err < best_err
            best_err = torch.where(better, err, best_err)
            best[better] = r[better]
    return best, best_err


def clean_rate(images: torch.Tensor, threshold: float = CLEAN_RESIDUAL) -> float:
    """Share of ``images`` that are one clean shape: residual to :func:`nearest_rendering` under
    ``threshold``. A blurred average of several placements, a shape at half brightness or of a
    mixed colour, two half shapes all fail; a real image passes."""
    checks.number(threshold, "threshold", 0.0)
    return (nearest_rendering(images)[1] < threshold).float().mean().item()


def distinct_readings(images: torch.Tensor) -> int:
    """How many different (shape, colour, position, size) the evaluator reads in ``images``: 1 for
    a model that gives the same picture every time."""
    return len({tuple(p) for p in evaluator.shapes_evaluator().predict(images).tolist()})


# ----------------------------------------------------------------------------- the trap

def _judge(images: torch.Tensor, ref_images: torch.Tensor, prompts: torch.Tensor | None) -> dict:
    return dict(clean=clean_rate(images),
                prompt_accuracy=None if prompts is None else evaluator.prompt_accuracy(images, prompts),
                frechet=evaluator.frechet(images, ref_images), distinct=distinct_readings(images))


MODELS = ("discrete_ce", "continuous_mse", "continuous_gaussian")


@torch.no_grad()
def mse_trap(mode: str | None = None, n: int | None = None, seed: int = 0, n_show: int = 0) -> dict:
    """The MSE trap, measured. For ``n`` held-out prompts (the full prompt: one right answer) and
    for ``n`` null prompts (no prompt: every shape, colour, place and size is right), sample

    * discrete_ce: the GPT of notebook 04 (discrete tokens, cross-entropy, one token drawn at a time),
    * continuous_mse: the continuous chain with the MSE head (each token is the predicted mean),
    * continuous_gaussian: the continuous chain with the Gaussian head (mean + sigma * noise),

    and judge each set (:func:`_judge`): clean (share of one clean shape, :func:`clean_rate`),
    prompt_accuracy (full prompt only), frechet (to real images), distinct (evaluator readings).
    "real" is the same judge on real images (the ceiling), "vq" on real images through the VQ
    tokenizer and "latents" through the continuous one (what each token world can show at best).

    Returns {"prompt": {name: figures}, "null": {name: figures}, "frechet_floor", "n", "mode",
    "params": {name: parameters}}, numbers only (a benchmark prints it as JSON); with
    ``n_show`` > 0 also "images": {(condition, name): the first ``n_show`` samples}. Budgets from
    the mode.
    """
    B = budget(mode)
    n = n or B.n_eval
    ref = evaluator.reference(n, seed)                                             # the prompted draw
    other = evaluator.reference(n, seed + 1).images                                # a second real draw
    dev = runtime.device()
    models = {k: trained_continuous(k, B.mode) for k in HEADS}
    gpt_model = chaining_tokens.trained_gpt(B.mode)
    conditions = {"prompt": ref.prompts, "null": P.null_prompts(n)}
    res = {"n": n, "mode": B.mode, "frechet_floor": evaluator.frechet_floor(n, seed),
           "params": {"discrete_ce": count_parameters(gpt_model),
                      **{f"continuous_{k}": count_parameters(m) for k, m in models.items()}}}
    for cond, prompts in conditions.items():
        given = prompts if cond == "prompt" else None
        samples = {"discrete_ce": sample_discrete(prompts.to(dev), seed, B.mode),
                   **{f"continuous_{k}": sample_continuous(m, prompts, seed, B.mode, cfg_scale=CFG_SCALE)
                      for k, m in models.items()}}
        # the best each world can show: real images, and real images through each tokenizer
        real = data.render_prompts(ref.prompts, seed=metrics.FLOOR_SEED + seed) if cond == "prompt" else other
        samples.update(real=real,
                       vq=shape_tokens.decode(shape_tokens.encode(real, B.mode), B.mode),
                       latents=shape_latents.decode(shape_latents.encode(real, B.mode), B.mode))
        res[cond] = {name: _judge(x, ref.images, given)
                     for name, x in samples.items()}
        if n_show > 0:
            res.setdefault("images", {}).update({(cond, name): x[:n_show].cpu() for name, x in samples.items()})
    return res


def trap_figures(res: dict) -> dict:
    """The flat numbers of :func:`mse_trap` for a benchmark's JSON: ``{condition_model_figure: value}``."""
    out = {"n": res["n"], "frechet_floor": res["frechet_floor"]}
    for cond in ("prompt", "null"):
        for name, figs in res[cond].items():
            for k, v in figs.items():
                if v is not None:
                    out[f"{cond}_{name}_{k}"] = v
    return out


PRETRAINED = (Pretrained("continuous-ar-mse", ("07",), lambda mode: trained_continuous("mse", mode)),
              Pretrained("continuous-ar-gaussian", ("07",), lambda mode: trained_continuous("gaussian", mode)))
