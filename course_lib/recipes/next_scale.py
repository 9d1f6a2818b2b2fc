"""Recipe of notebook 06_next_scale: VAR's next-scale prediction and Infinity's bits on prompted shapes.

Its budgets per mode and its experiments, shared by the notebook and ``course_lib.bench orders``
(:func:`bench_results`):

* :func:`var_tokenizer`, :func:`bsq_tokenizer`: a conv encoder (16x16 -> a 4x4 latent map), a
  multi-scale residual quantizer (scales 1, 2, 3, 4: VAR's shared codebook with phi, or Infinity's
  BSQ bits) and a decoder, trained once per mode and kept in the disk cache;
* :func:`residual_picture`: what each scale adds (decoded running reconstructions, their MSE);
* :func:`train_var`, :func:`train_infinity` (``self_correction`` p_max, a seed): the transformers;
* :func:`evaluate`: generate from the held-out prompts, then prompt accuracy, Fréchet distance (next
  to its floor), forward passes, seconds per image, parameters;
* :func:`self_correction_study`: Infinity with and without bitwise self-correction over seeds;
* :func:`four_orders`: the GPT of 04, MaskGIT of 05, VAR and Infinity on the same prompts.
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import torch

from course_lib import checks, data, evaluator, runtime, train
from course_lib.nets import count_parameters
from course_lib.nets.transformer import Config
from course_lib.orders import infinity, var
from course_lib.orders.prompt import check_prompts, drop_prompts
from course_lib.recipes import chaining_tokens
from course_lib.recipes import maskgit as maskgit_recipe
from course_lib.tokens import tokenizers
from course_lib.recipes.registry import Pretrained

VERSION = 3                   # bump when the code changes what is trained (invalidates the cache)
SIZE = 16
SCALES = (1, 2, 3, 4)         # sides of the token maps, coarse to fine: 1 + 4 + 9 + 16 = 30 tokens
CODEBOOK = 256                # VAR: one codebook shared by every scale (64: too few decoded shapes read right)
LATENT_DIM = 8                # VAR's code size
BITS = 8                      # Infinity's bits per token d: a vocabulary of 2^8 = 256
TRAIN_SEED = 0
KINDS = ("var", "infinity")    # the two next-scale models of notebook 06

VAR_CFG = 1.5                 # VAR's t-scale at the last scale (its FID protocol uses 1.5)
INF_CFG = 1.5                 # Infinity's cfg (c cfg + (1 - cfg) u), constant over scales
INF_TEMPERATURE = 0.5         # temperature of Infinity's bits (its inference script uses 0.5)
P_MAX = 0.3                   # bitwise self-correction: flip up to 30% of the bits per scale


@dataclass(frozen=True)
class Tokenizers:
    """The two multi-scale tokenizers' budget in one mode (and their design): their cache key."""
    mode: str                 # the course mode this budget is for
    n_train: int              # training shapes (seed TRAIN_SEED), the transformers' too
    batch: int                # images per step, the transformers' sequences per step too
    hidden: int               # channels of the conv autoencoder
    var_steps: int            # training steps of VAR's tokenizer
    bsq_steps: int            # training steps of Infinity's BSQ tokenizer
    scales: tuple = SCALES    # sides of the token maps
    codebook: int = CODEBOOK  # VAR's codes
    latent_dim: int = LATENT_DIM  # VAR's code size
    bits: int = BITS          # Infinity's bits per token
    seed: int = TRAIN_SEED    # weights and training shapes
    version: int = VERSION    # the code's version


@dataclass(frozen=True)
class Transformer:
    """A next-scale transformer's budget (VAR's or Infinity's)."""
    d_model: int              # width
    n_layer: int              # blocks
    n_head: int               # attention heads
    steps: int                # training steps
    lr: float                 # peak learning rate (AdamW, warmup, cosine decay)


@dataclass(frozen=True)
class Budget:
    """Notebook 06's budget in one mode; a transformer's cache key is its part, the tokenizers' and its seed."""
    mode: str                 # the course mode this budget is for
    tokenizer: Tokenizers     # the tokenizers, and the training shapes and batch
    var: Transformer          # VAR's transformer
    infinity: Transformer     # Infinity's (smaller in lecture mode: the self-correction study trains six)
    n_eval: int               # held-out prompts per score
    seeds: tuple              # the self-correction study's seeds
    version: int = VERSION    # the code's version


BUDGETS = {
    "quick": Budget("quick", Tokenizers("quick", n_train=2048, batch=64, hidden=32, var_steps=150, bsq_steps=150),
                    var=Transformer(d_model=64, n_layer=2, n_head=4, steps=120, lr=2e-3),
                    infinity=Transformer(d_model=64, n_layer=2, n_head=4, steps=60, lr=2e-3),
                    n_eval=128, seeds=(0, 1, 2)),
    "lecture": Budget("lecture", Tokenizers("lecture", n_train=8192, batch=64, hidden=48, var_steps=1200,
                                            bsq_steps=1000),
                      var=Transformer(d_model=96, n_layer=3, n_head=4, steps=1600, lr=1.5e-3),
                      infinity=Transformer(d_model=64, n_layer=2, n_head=4, steps=800, lr=2e-3),
                      n_eval=512, seeds=(0, 1, 2)),
    "full": Budget("full", Tokenizers("full", n_train=32768, batch=128, hidden=96, var_steps=4000, bsq_steps=4000),
                   var=Transformer(d_model=256, n_layer=6, n_head=8, steps=6000, lr=5e-4),
                   infinity=Transformer(d_model=256, n_layer=6, n_head=8, steps=6000, lr=5e-4),
                   n_eval=2048, seeds=(0, 1, 2)),
}


def budget(mode: str | None = None) -> Budget:
    """This notebook's budget in the current (or given) mode."""
    return runtime.pick(BUDGETS, mode)


def train_shapes(T: Tokenizers) -> data.Shapes:
    """The training shapes of the tokenizers and the transformers: ``T.n_train``, seed ``T.seed``."""
    return data.shapes(T.n_train, size=SIZE, seed=T.seed)


# ----------------------------------------------------------------------------- tokenizers

def _build_tokenizer(B: Tokenizers, kind):
    torch.manual_seed(TRAIN_SEED)
    q = (var.MultiScaleVQ(CODEBOOK, LATENT_DIM, SCALES, seed=TRAIN_SEED) if kind == "var"
         else infinity.MultiScaleBSQ(BITS, SCALES))
    dim = LATENT_DIM if kind == "var" else BITS
    return tokenizers.ImageTokenizer(3, B.hidden, dim, n_down=2, quantizer=q).to(runtime.device())


def _fit_tokenizer(B: Tokenizers, kind):
    def fit(model):
        pool = train_shapes(B).images
        steps = B.var_steps if kind == "var" else B.bsq_steps
        tokenizers.fit(model, tokenizers.sample_batch(pool, B.batch), steps, lr=2e-3, schedule="cosine",
                       desc=f"{kind} tokenizer")
    return fit


@functools.lru_cache(maxsize=None)
def _tokenizer(kind: str, mode: str, device: str):
    B = budget(mode).tokenizer
    return train.cached(f"next-scale-{kind}-tokenizer", B,
                        build=lambda: _build_tokenizer(B, kind), fit=_fit_tokenizer(B, kind)).requires_grad_(False)


def var_tokenizer(mode: str | None = None) -> tokenizers.ImageTokenizer:
    """Encoder -> :class:`~course_lib.orders.var.MultiScaleVQ` -> decoder, trained (or loaded)."""
    return _tokenizer("var", budget(mode).mode, str(runtime.device()))


def bsq_tokenizer(mode: str | None = None) -> tokenizers.ImageTokenizer:
    """Encoder -> :class:`~course_lib.orders.infinity.MultiScaleBSQ` (BITS bits) -> decoder."""
    return _tokenizer("bsq", budget(mode).mode, str(runtime.device()))


@torch.no_grad()
def latents(tok, images: torch.Tensor, batch: int = 1024) -> torch.Tensor:
    """Images (N, 3, 16, 16) -> the encoder's latent maps (N, 4, 4, D)."""
    images = images.to(runtime.device())
    return torch.cat([tok.encode(images[i:i + batch]) for i in range(0, len(images), batch)])


@torch.no_grad()
def decode(tok, latent: torch.Tensor) -> torch.Tensor:
    """Latent maps (N, 4, 4, D) -> images (N, 3, 16, 16) clamped to [0, 1]."""
    return tok.decode(latent).clamp(0, 1)


@torch.no_grad()
def residual_picture(tok, images: torch.Tensor) -> dict:
    """Decode the running reconstruction after each scale. Returns {"images": one (N, 3, 16, 16)
    tensor per scale, "mse": the image MSE after each scale, "latent_mse": the latent's MSE to the
    encoder output after each scale}."""
    z = latents(tok, images)
    _, partial = tok.quantizer.encode_scales(z)
    recon = [decode(tok, p) for p in partial]
    images = images.to(recon[0].device)
    return {"images": recon, "mse": [(r - images).pow(2).mean().item() for r in recon],
            "latent_mse": [(p - z).pow(2).mean().item() for p in partial]}


# ----------------------------------------------------------------------------- transformers

def model_config(B: Budget, kind: str = "var") -> Config:
    """The transformer's sizes: VAR's, or Infinity's (smaller in lecture mode, so that the six runs of
    the self-correction study fit the budget)."""
    if kind == "var":
        return Config(d_model=B.var.d_model, n_layer=B.var.n_layer, n_head=B.var.n_head)
    return Config(d_model=B.infinity.d_model, n_layer=B.infinity.n_layer, n_head=B.infinity.n_head)


def _batches(B, n, seed):
    g = torch.Generator().manual_seed(seed)
    return lambda: torch.randint(n, (B.tokenizer.batch,), generator=g)


def _fit_var(B, seed):
    def fit(model):
        tok = var_tokenizer(B.mode)
        shapes = train_shapes(B.tokenizer)
        codes, _ = tok.quantizer.encode_scales(latents(tok, shapes.images))        # (N, 30)
        inputs = tok.quantizer.teacher_inputs(codes)                              # (N, 29, D)
        prompts = shapes.prompts.to(codes.device)
        draw, g = _batches(B, len(codes), seed), torch.Generator().manual_seed(seed + 1)

        def loss_fn(step):
            i = draw().to(codes.device)
            return model.loss(codes[i], inputs[i], drop_prompts(prompts[i], 0.1, g))
        train.train(model, loss_fn, B.var.steps, lr=B.var.lr, schedule="cosine", warmup=B.var.steps // 20,
                    weight_decay=0.05, desc="VAR")
    return fit


def _fit_infinity(B, seed, p_max):
    def fit(model):
        tok = bsq_tokenizer(B.mode)
        shapes = train_shapes(B.tokenizer)
        z = latents(tok, shapes.images)                                           # (N, 4, 4, d)
        prompts = shapes.prompts.to(z.device)
        draw, g = _batches(B, len(z), seed), torch.Generator().manual_seed(seed + 1)

        def loss_fn(step):
            i = draw().to(z.device)
            sc = infinity.self_correct(tok.quantizer, z[i], p_max, g)
            return model.loss(sc.labels, sc.inputs, drop_prompts(prompts[i], 0.1, g))
        train.train(model, loss_fn, B.infinity.steps, lr=B.infinity.lr, schedule="cosine",
                    warmup=B.infinity.steps // 20,
                    weight_decay=0.05, desc=f"Infinity (self-correction {p_max})")
    return fit


def train_var(mode: str | None = None, seed: int = 0) -> var.VAR:
    """VAR's block-causal transformer over the multi-scale codes (trained, or loaded from the cache)."""
    B = budget(mode)

    def build():
        torch.manual_seed(seed)
        return var.VAR(CODEBOOK, LATENT_DIM, SCALES, model_config(B)).to(runtime.device())
    return train.cached("next-scale-var", dict(tokenizer=B.tokenizer, var=B.var, seed=seed), build,
                        _fit_var(B, seed))          # the parts it is trained from: tuning Infinity keeps it


def train_infinity(self_correction: float = 0.0, mode: str | None = None, seed: int = 0) -> infinity.Infinity:
    """Infinity's bitwise transformer, trained with bitwise self-correction up to ``self_correction``
    (0 = off, 0.3 = Infinity's setting), or loaded from the cache."""
    B = budget(mode)

    def build():
        torch.manual_seed(seed)
        return infinity.Infinity(BITS, SCALES, model_config(B, "infinity")).to(runtime.device())
    return train.cached("next-scale-infinity", dict(tokenizer=B.tokenizer, infinity=B.infinity, seed=seed,
                                                  p_max=self_correction), build,
                        _fit_infinity(B, seed, self_correction))


# ----------------------------------------------------------------------------- evaluation

@torch.no_grad()
def generate_images(kind: str, model, prompts: torch.Tensor, seed: int = 0, cfg: float | None = None,
                    batch: int = 256, mode: str | None = None, temperature: float | None = None) -> dict:
    """Images for ``prompts`` (N, 4) from VAR (``kind="var"``) or Infinity ("infinity"), in
    batches. Returns {"images", "nfe" (forward passes per batch), "seconds" (wall time)}."""
    checks.one_of(kind, "kind", KINDS)                        # "VAR" must not take Infinity's path
    prompts = check_prompts(prompts)
    tok = var_tokenizer(mode) if kind == "var" else bsq_tokenizer(mode)
    g = torch.Generator().manual_seed(seed)
    prompts = prompts.to(runtime.device())
    out, nfe, t0 = [], 0, time.perf_counter()
    for i in range(0, len(prompts), batch):
        if kind == "var":
            r = var.generate(model, tok.quantizer, prompts[i:i + batch],   # w = 1 + VAR's t at the last scale
                             cfg_scale=1 + (VAR_CFG if cfg is None else cfg), generator=g)
        else:
            r = infinity.generate(model, tok.quantizer, prompts[i:i + batch], cfg_scale=INF_CFG if cfg is None else cfg,
                                  temperature=INF_TEMPERATURE if temperature is None else temperature, generator=g)
        out.append(decode(tok, r["latent"]))
        nfe = r["nfe"]
    return {"images": torch.cat(out), "nfe": nfe, "seconds": time.perf_counter() - t0}


def evaluate(kind: str, model, n: int | None = None, seed: int = 0, cfg: float | None = None,
             mode: str | None = None, temperature: float | None = None) -> dict:
    """Generate one image per held-out prompt (n of them, default B.n_eval) and measure:
    prompt_accuracy, frechet, frechet_floor (the same n), nfe, seconds_per_image, params; "images"
    and "prompts" come along for plotting."""
    checks.one_of(kind, "kind", KINDS)
    B = budget(mode)
    n = n or B.n_eval
    ref = evaluator.reference(n, seed)
    r = generate_images(kind, model, ref.prompts, seed, cfg, mode=B.mode, temperature=temperature)
    return dict(prompt_accuracy=evaluator.prompt_accuracy(r["images"], ref.prompts),
                frechet=evaluator.frechet(r["images"], ref.images), frechet_floor=evaluator.frechet_floor(n, seed),
                nfe=r["nfe"], seconds_per_image=r["seconds"] / n, params=count_parameters(model),
                images=r["images"], prompts=ref.prompts)


def self_correction_study(mode: str | None = None, seeds=None, p_max: float = P_MAX) -> dict:
    """Infinity trained with and without bitwise self-correction, one model per seed, same steps.
    Returns {"off": [result per seed], "on": [...], "seeds": seeds} (results of :func:`evaluate`
    without the images)."""
    B = budget(mode)
    seeds = tuple(B.seeds if seeds is None else seeds)
    out = {"seeds": seeds, "off": [], "on": []}
    for arm, p in (("off", 0.0), ("on", p_max)):
        for s in seeds:
            res = evaluate("infinity", train_infinity(p, B.mode, s), seed=s, mode=B.mode)
            out[arm].append({k: v for k, v in res.items() if k not in ("images", "prompts")})
    return out


def mean_of(results: list[dict], key: str) -> float:
    return sum(r[key] for r in results) / len(results)


# ----------------------------------------------------------------------------- the four orders side by side

MASKGIT_STEPS = (len(SCALES), 8)   # MaskGIT in as many passes as VAR has scales, and in MaskGIT's 8
SIDE_BY_SIDE = ("prompt_accuracy", "frechet", "nfe", "seconds_per_image", "params")


def four_orders(mode: str | None = None) -> dict:
    """The orders of notebooks 04-06 on the same held-out prompts (the GPT's n of
    :func:`course_lib.evaluator.reference`, seed 0), each at its notebook's guidance: the raster GPT of
    04 (KV cache), MaskGIT of 05 (:func:`course_lib.recipes.maskgit.trained_maskgit`) in MASKGIT_STEPS
    steps, VAR, and Infinity with self-correction (seed 0) of this notebook. Every model comes from the
    disk cache (trained now where it is missing). Notebook 06's last table and ``bench orders``
    (``four_orders``) both call it.
    Returns {"n", "frechet_floor", "rows": [{"method", prompt_accuracy, frechet, nfe (forward passes
    per image), seconds_per_image, params}]}."""
    B = budget(mode)
    gpt = chaining_tokens.gpt_results(B.mode)
    n = int(gpt["n"])
    rows = [dict(method="GPT, raster order", **{k: gpt[k] for k in SIDE_BY_SIDE})]
    mg, ref = maskgit_recipe.trained_maskgit(B.mode), evaluator.reference(n)
    for steps in MASKGIT_STEPS:
        r = maskgit_recipe.evaluate_maskgit(mg, steps, maskgit_recipe.budget(B.mode), ref)
        rows.append(dict(method=f"MaskGIT, {steps} steps", **{k: r[k] for k in SIDE_BY_SIDE}))
    for name, kind, model in (("VAR", "var", train_var(B.mode)),
                              ("Infinity, self-correction", "infinity", train_infinity(P_MAX, B.mode, 0))):
        r = evaluate(kind, model, n=n, mode=B.mode)
        rows.append(dict(method=name, **{k: r[k] for k in SIDE_BY_SIDE}))
    return dict(n=n, frechet_floor=evaluator.frechet_floor(n), rows=rows)


def bench_results(mode: str | None = None) -> dict:
    """The bench's figures (``course_lib.bench orders``): ``var``, ``infinity`` and
    ``infinity_selfcorrect``, each {prompt_accuracy, frechet, frechet_floor, nfe, seconds_per_image,
    params}; the Infinity entries are means over the seeds of :func:`self_correction_study`, with
    the per-seed figures under ``per_seed``; ``four_orders``: :func:`four_orders`."""
    B = budget(mode)
    keys = ("prompt_accuracy", "frechet", "frechet_floor", "nfe", "seconds_per_image", "params")
    v = evaluate("var", train_var(B.mode), mode=B.mode)
    out = {"var": {k: v[k] for k in keys}}
    study = self_correction_study(B.mode)
    for name, arm in (("infinity", "off"), ("infinity_selfcorrect", "on")):
        out[name] = {k: mean_of(study[arm], k) for k in keys}
        out[name]["per_seed"] = {k: [r[k] for r in study[arm]] for k in ("prompt_accuracy", "frechet")}
        out[name]["seeds"] = list(study["seeds"])
    out["four_orders"] = four_orders(B.mode)
    return out


def _all_infinity(mode: str) -> None:
    """Every Infinity notebook 06 trains: self-correction off and on, over the study's seeds."""
    for p in (0.0, P_MAX):
        for s in budget(mode).seeds:
            train_infinity(p, mode, s)


PRETRAINED = (Pretrained("next-scale-var-tokenizer", ("06",), var_tokenizer),
              Pretrained("next-scale-bsq-tokenizer", ("06",), bsq_tokenizer),
              Pretrained("next-scale-var", ("06",), lambda mode: train_var(mode)),
              Pretrained("next-scale-infinity", ("06",), _all_infinity))
