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
* :func:`self_correction_study`: Infinity with and without bitwise self-correction over seeds.
"""
from __future__ import annotations

import functools
import time
from types import SimpleNamespace

import torch

from course_lib import data, evaluator, runtime, train
from course_lib.nets.transformer import Config
from course_lib.orders import infinity, var
from course_lib.orders.prompt import drop_prompts
from course_lib.tokens import tokenizers

VERSION = 2                   # bump when the code changes what is trained (invalidates the cache)
SIZE = 16
SCALES = (1, 2, 3, 4)         # sides of the token maps, coarse to fine: 1 + 4 + 9 + 16 = 30 tokens
CODEBOOK = 64                 # VAR: one codebook of 64 codes shared by every scale
LATENT_DIM = 8                # VAR's code size
BITS = 8                      # Infinity's bits per token d: a vocabulary of 2^8 = 256
TRAIN_SEED = 0

BUDGETS = {
    "quick": dict(n_train=2048, batch=64, hidden=32, tok_steps=150, var_tok_steps=150, d_model=64, n_layer=2, n_head=4,
                  var_steps=120, inf_d_model=64, inf_layers=2, inf_steps=60, var_lr=2e-3, inf_lr=2e-3,
                  n_eval=128, seeds=(0, 1, 2)),
    "lecture": dict(n_train=8192, batch=64, hidden=48, tok_steps=1000, var_tok_steps=1200, d_model=96, n_layer=3,
                    n_head=4, var_steps=800, inf_d_model=64, inf_layers=2, inf_steps=800, var_lr=1.5e-3, inf_lr=2e-3,
                    n_eval=512, seeds=(0, 1, 2)),
    "full": dict(n_train=32768, batch=128, hidden=96, tok_steps=4000, var_tok_steps=4000, d_model=256, n_layer=6,
                 n_head=8, var_steps=6000, inf_d_model=256, inf_layers=6, inf_steps=6000, var_lr=5e-4, inf_lr=5e-4,
                 n_eval=2048, seeds=(0, 1, 2)),
}
VAR_CFG = 1.5                 # VAR's t-scale at the last scale (its FID protocol uses 1.5)
INF_CFG = 1.5                 # Infinity's cfg (c cfg + (1 - cfg) u), constant over scales
INF_TEMPERATURE = 0.5         # temperature of Infinity's bits (its inference script uses 0.5)
P_MAX = 0.3                   # bitwise self-correction: flip up to 30% of the bits per scale


def budget(mode: str | None = None) -> SimpleNamespace:
    """This notebook's budget in the current (or given) mode."""
    return runtime.pick(BUDGETS, mode)


def train_shapes(B: SimpleNamespace) -> data.Shapes:
    return data.shapes(B.n_train, size=SIZE, seed=TRAIN_SEED)


# ----------------------------------------------------------------------------- tokenizers

def _tok_steps(B, kind):
    return B.var_tok_steps if kind == "var" else B.tok_steps


def _tok_config(B, kind):
    return dict(version=VERSION, kind=kind, mode=B.mode, n_train=B.n_train, batch=B.batch, hidden=B.hidden,
                steps=_tok_steps(B, kind), K=CODEBOOK if kind == "var" else 2 ** BITS,
                dim=LATENT_DIM if kind == "var" else BITS, scales=list(SCALES), seed=TRAIN_SEED)


def _build_tokenizer(B, kind):
    torch.manual_seed(TRAIN_SEED)
    q = (var.MultiScaleVQ(CODEBOOK, LATENT_DIM, SCALES, seed=TRAIN_SEED) if kind == "var"
         else infinity.MultiScaleBSQ(BITS, SCALES))
    dim = LATENT_DIM if kind == "var" else BITS
    return tokenizers.ImageTokenizer(3, B.hidden, dim, n_down=2, quantizer=q).to(runtime.device())


def _fit_tokenizer(B, kind):
    def fit(model):
        pool = train_shapes(B).images
        tokenizers.fit(model, tokenizers.sample_batch(pool, B.batch), _tok_steps(B, kind), lr=2e-3, schedule="cosine",
                       desc=f"{kind} tokenizer")
    return fit


@functools.lru_cache(maxsize=None)
def _tokenizer(kind: str, mode: str, device: str):
    B = budget(mode)
    return train.cached(f"next-scale-{kind}-tokenizer", _tok_config(B, kind),
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

def model_config(B: SimpleNamespace, kind: str = "var") -> Config:
    """The transformer's sizes: VAR's, or Infinity's (smaller in lecture mode, so that the six runs of
    the self-correction study fit the budget)."""
    if kind == "var":
        return Config(d_model=B.d_model, n_layer=B.n_layer, n_head=B.n_head)
    return Config(d_model=B.inf_d_model, n_layer=B.inf_layers, n_head=B.n_head)


def _batches(B, n, seed):
    g = torch.Generator().manual_seed(seed)
    return lambda: torch.randint(n, (B.batch,), generator=g)


def _fit_var(B, seed):
    def fit(model):
        tok = var_tokenizer(B.mode)
        shapes = train_shapes(B)
        codes, _ = tok.quantizer.encode_scales(latents(tok, shapes.images))        # (N, 30)
        inputs = tok.quantizer.teacher_inputs(codes)                              # (N, 29, D)
        prompts = shapes.prompts.to(codes.device)
        draw, g = _batches(B, len(codes), seed), torch.Generator().manual_seed(seed + 1)

        def loss_fn(step):
            i = draw().to(codes.device)
            return model.loss(drop_prompts(prompts[i], 0.1, g), codes[i], inputs[i])
        train.train(model, loss_fn, B.var_steps, lr=B.var_lr, schedule="cosine", warmup=B.var_steps // 20,
                    weight_decay=0.05, desc="VAR")
    return fit


def _fit_infinity(B, seed, p_max):
    def fit(model):
        tok = bsq_tokenizer(B.mode)
        shapes = train_shapes(B)
        z = latents(tok, shapes.images)                                           # (N, 4, 4, d)
        prompts = shapes.prompts.to(z.device)
        draw, g = _batches(B, len(z), seed), torch.Generator().manual_seed(seed + 1)

        def loss_fn(step):
            i = draw().to(z.device)
            sc = infinity.self_correct(tok.quantizer, z[i], p_max, g)
            return model.loss(drop_prompts(prompts[i], 0.1, g), sc.labels, sc.inputs)
        train.train(model, loss_fn, B.inf_steps, lr=B.inf_lr, schedule="cosine", warmup=B.inf_steps // 20,
                    weight_decay=0.05, desc=f"Infinity (self-correction {p_max})")
    return fit


def _model_key(B, kind, seed, **extra):
    cfg = model_config(B, kind)
    return dict(version=VERSION, kind=kind, tokenizer=_tok_config(B, "var" if kind == "var" else "bsq"),
                d_model=cfg.d_model, n_layer=cfg.n_layer, n_head=cfg.n_head,
                lr=B.var_lr if kind == "var" else B.inf_lr, batch=B.batch,
                steps=B.var_steps if kind == "var" else B.inf_steps, seed=seed, **extra)


def train_var(mode: str | None = None, seed: int = 0) -> var.VAR:
    """VAR's block-causal transformer over the multi-scale codes (trained, or loaded from the cache)."""
    B = budget(mode)

    def build():
        torch.manual_seed(seed)
        return var.VAR(CODEBOOK, LATENT_DIM, SCALES, model_config(B)).to(runtime.device())
    return train.cached("next-scale-var", _model_key(B, "var", seed), build, _fit_var(B, seed))


def train_infinity(self_correction: float = 0.0, mode: str | None = None, seed: int = 0) -> infinity.Infinity:
    """Infinity's bitwise transformer, trained with bitwise self-correction up to ``self_correction``
    (0 = off, 0.3 = Infinity's setting), or loaded from the cache."""
    B = budget(mode)

    def build():
        torch.manual_seed(seed)
        return infinity.Infinity(BITS, SCALES, model_config(B, "infinity")).to(runtime.device())
    return train.cached("next-scale-infinity", _model_key(B, "infinity", seed, p_max=self_correction), build,
                        _fit_infinity(B, seed, self_correction))


# ----------------------------------------------------------------------------- evaluation

def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def generate_images(kind: str, model, prompts: torch.Tensor, seed: int = 0, cfg: float | None = None,
                    batch: int = 256, mode: str | None = None, temperature: float | None = None) -> dict:
    """Images for ``prompts`` (N, 4) from VAR (``kind="var"``) or Infinity ("infinity"), in
    batches. Returns {"images", "nfe" (forward passes per batch), "seconds" (wall time)}."""
    tok = var_tokenizer(mode) if kind == "var" else bsq_tokenizer(mode)
    g = torch.Generator().manual_seed(seed)
    prompts = prompts.to(runtime.device())
    out, nfe, t0 = [], 0, time.perf_counter()
    for i in range(0, len(prompts), batch):
        if kind == "var":
            r = var.generate(model, tok.quantizer, prompts[i:i + batch], VAR_CFG if cfg is None else cfg, generator=g)
        else:
            r = infinity.generate(model, tok.quantizer, prompts[i:i + batch], INF_CFG if cfg is None else cfg,
                                  INF_TEMPERATURE if temperature is None else temperature, generator=g)
        out.append(decode(tok, r["latent"]))
        nfe = r["nfe"]
    return {"images": torch.cat(out), "nfe": nfe, "seconds": time.perf_counter() - t0}


def evaluate(kind: str, model, n: int | None = None, seed: int = 0, cfg: float | None = None,
             mode: str | None = None, temperature: float | None = None) -> dict:
    """Generate one image per held-out prompt (n of them, default B.n_eval) and measure:
    prompt_accuracy, frechet, frechet_floor (the same n), nfe, seconds_per_image, params; "images"
    and "prompts" come along for plotting."""
    n = n or budget(mode).n_eval
    ref = evaluator.reference(n, seed)
    r = generate_images(kind, model, ref.prompts, seed, cfg, mode=mode, temperature=temperature)
    return dict(prompt_accuracy=evaluator.prompt_accuracy(r["images"], ref.prompts),
                frechet=evaluator.frechet(r["images"], ref.images), frechet_floor=evaluator.frechet_floor(n, seed),
                nfe=r["nfe"], seconds_per_image=r["seconds"] / n, params=n_params(model),
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


def bench_results(mode: str | None = None) -> dict:
    """The bench's figures (``course_lib.bench orders``): ``var``, ``infinity`` and
    ``infinity_selfcorrect``, each {prompt_accuracy, frechet, frechet_floor, nfe, seconds_per_image,
    params}; the Infinity entries are means over the seeds of :func:`self_correction_study`, with
    the per-seed figures under ``per_seed``."""
    B = budget(mode)
    keys = ("prompt_accuracy", "frechet", "frechet_floor", "nfe", "seconds_per_image", "params")
    v = evaluate("var", train_var(B.mode), mode=B.mode)
    out = {"var": {k: v[k] for k in keys}}
    study = self_correction_study(B.mode)
    for name, arm in (("infinity", "off"), ("infinity_selfcorrect", "on")):
        out[name] = {k: mean_of(study[arm], k) for k in keys}
        out[name]["per_seed"] = {k: [r[k] for r in study[arm]] for k in ("prompt_accuracy", "frechet")}
        out[name]["seeds"] = list(study["seeds"])
    return out
