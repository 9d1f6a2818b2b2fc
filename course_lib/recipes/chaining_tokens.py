"""Recipe of notebook 04_chaining_tokens: a GPT over the tokens of prompted shapes.

Budgets per mode and the experiments the notebook and ``python -m course_lib.bench orders`` share:

* :func:`trained_gpt`: the :class:`~course_lib.orders.gpt.TokenGPT` of this mode, trained on the
  shared tokenizer's tokens (:mod:`course_lib.recipes.shape_tokens`) and kept in the disk cache;
  with ``open_place`` the same GPT trained on prompts that leave the place open (notebook 11);
* :func:`held_out_loss`: its next-token loss on held-out images, against log K (a uniform guess);
* :func:`kv_cache_comparison`: the same prompts sampled with and without the KV cache: identical
  tokens? how much faster?
* :func:`cfg_sweep`: prompt accuracy, Fréchet distance and diversity per guidance scale;
* :func:`forced_start`: the first row of tokens imposed from an image of another colour, and what
  the model makes of the rest (a token, once drawn, is never revised);
* :func:`gpt_results`: the figures of the benchmark (prompt accuracy, Fréchet distance and its
  floor, forward passes, seconds per image, parameters) at the notebook's CFG scale.

Every experiment seeds its own draws, so its figure does not depend on which cells ran before.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from course_lib import checks, distributed, evaluator, runtime, train
from course_lib.nets import count_parameters
from course_lib.orders import gpt
from course_lib.orders import prompt as P
from course_lib.recipes import shape_tokens, shapes_task
from course_lib.recipes.registry import Pretrained

VERSION = 1
CFG_SCALE = 2.0                 # the guidance scale the notebook and the bench use
CFG_SCALES = (0.0, 1.0, 2.0, 3.0)
TOP_K = None                    # sample from the full distribution unless an experiment says otherwise
P_NULL = 0.1                    # null-prompt dropout (as VAR, MaskGIT, MAR)


@dataclass(frozen=True)
class Budget(shapes_task.TransformerBudget):
    """Notebook 04's budget in one mode (the GPT's, over shape_tokens' tokens); all of it is the
    trained GPT's cache key."""
    n_div: int                # prompts whose 8 samples measure diversity
    n_kv: int                 # prompts sampled with and without the KV cache
    p_null: float = P_NULL    # share of training prompts replaced by the null prompt
    version: int = VERSION    # the code's version


BUDGETS = {
    "quick": Budget("quick", shape_tokens.BUDGETS["quick"], n_train=4096, batch=64, d_model=64, n_layer=2,
                    n_head=4, steps=150, lr=2e-3, n_eval=128, n_div=8, n_kv=64),
    "lecture": Budget("lecture", shape_tokens.BUDGETS["lecture"], n_train=8192, batch=64, d_model=128,
                      n_layer=4, n_head=4, steps=1500, lr=1e-3, n_eval=512, n_div=24, n_kv=128),
    "full": Budget("full", shape_tokens.BUDGETS["full"], n_train=32768, batch=128, d_model=256, n_layer=6,
                   n_head=8, steps=12000, lr=6e-4, n_eval=2000, n_div=48, n_kv=256),
}


def budget(mode: str | None = None) -> Budget:
    """Notebook 04's budget in the current (or given) mode."""
    return runtime.pick(BUDGETS, mode)


def gpt_config(B: Budget) -> gpt.GPTConfig:
    return gpt.GPTConfig(vocab_size=shape_tokens.CODEBOOK, n_tokens=shape_tokens.N_TOKENS,
                         d_model=B.d_model, n_layer=B.n_layer, n_head=B.n_head)


def build(B: Budget) -> gpt.TokenGPT:
    torch.manual_seed(0)
    return gpt.TokenGPT(gpt_config(B)).to(runtime.device())


def train_data(B: Budget, open_place: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The GPT's training set on the CPU: B.n_train token maps (n_train, 16) of the shared tokenizer
    (seed ``shape_tokens.TRAIN_SEED``) and their prompts (n_train, 4). With ``open_place`` the same
    tokens, each prompt with its place replaced by the null id
    (:func:`course_lib.recipes.shapes_task.leave_place_open`: "a small red circle, anywhere"),
    so the softmax learns to spread its mass over the nine right places."""
    tokens, prompts = shape_tokens.token_data(B.n_train, seed=shape_tokens.TRAIN_SEED, mode=B.mode)
    if open_place:
        prompts = shapes_task.leave_place_open(prompts)                          # (n_train, 4), place null
    return tokens, prompts


def fit(model: gpt.TokenGPT, B: Budget, steps: int | None = None, progress: bool = True,
        open_place: bool = False) -> train.History:
    """Train ``model`` on B.n_train tokenized shapes (seed 0; :func:`train_data`, with ``open_place``
    the place left open in every prompt), batches of B.batch, AdamW with warmup and cosine decay;
    the prompt is dropped (null) 10% of the time. Under torchrun each rank trains on
    its rows of the same global batch (:func:`course_lib.distributed.shard`; the dropped prompts are
    drawn for the whole batch first), so N ranks take the single process's steps; in one process the
    draws and the weights are bit for bit those of a run without sharding."""
    tokens, prompts = train_data(B, open_place)
    dev = runtime.device()
    tokens, prompts = tokens.to(dev), prompts.to(dev)
    g = torch.Generator().manual_seed(0)

    spare = torch.Generator()           # gpt.loss's own (p_null = 0) draw must not move g's stream

    def loss_fn(step):
        idx = torch.randint(len(tokens), (B.batch,), generator=g).to(dev)           # the global batch
        shown = P.drop_prompts(prompts[idx], B.p_null, g)                            # (batch, 4)
        shard = distributed.shard                                                    # torchrun: this rank's rows
        return gpt.loss(model, shard(tokens[idx]), shard(shown), p_null=0.0, generator=spare)

    steps = B.steps if steps is None else checks.positive_int(steps, "steps")
    return train.train(model, loss_fn, steps, lr=B.lr, weight_decay=0.01, schedule="cosine",
                       warmup=min(100, steps // 10), desc="token GPT" + (" (place open)" if open_place else ""),
                       progress=progress)


def cache_name(open_place: bool = False) -> str:
    """The GPT's name in the model cache and in data/weights: "token-gpt", or "token-gpt-open" for the
    GPT trained with the place left open."""
    return "token-gpt-open" if open_place else "token-gpt"


def cache_config(B: Budget, open_place: bool = False):
    """The GPT's cache key: the budget itself for whole prompts (the key notebook 04's shipped weights
    were made with), the budget and ``open_place`` for the open GPT."""
    return dict(budget=B, open_place=True) if open_place else B


@functools.lru_cache(maxsize=None)
def _trained(mode: str, device: str, open_place: bool = False) -> gpt.TokenGPT:
    B = budget(mode)
    return train.cached(cache_name(open_place), cache_config(B, open_place), build=lambda: build(B),
                        fit=lambda m: fit(m, B, open_place=open_place)).requires_grad_(False)


def trained_gpt(mode: str | None = None, open_place: bool = False) -> gpt.TokenGPT:
    """The GPT of notebook 04 for this mode: from memory, the shipped weights, the disk cache, or
    trained now. ``open_place``: the same budget trained on the same tokens with prompts whose place
    is left open (:func:`train_data`; cache name "token-gpt-open"), for notebook 11's open prompts."""
    return _trained(budget(mode).mode, str(runtime.device()), bool(open_place))


@torch.no_grad()
def held_out_loss(model: gpt.TokenGPT, n: int = 1024, seed: int = 1, mode: str | None = None,
                  open_place: bool = False) -> float:
    """Mean next-token cross-entropy (nats) on ``n`` held-out images with their prompts (with
    ``open_place`` the place left open in each)."""
    tokens, prompts = shape_tokens.token_data(n, seed=seed, mode=mode)
    if open_place:
        prompts = shapes_task.leave_place_open(prompts)
    dev = runtime.device()
    logits = model(tokens.to(dev), prompts.to(dev))                           # (n, 16, K)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens.to(dev).reshape(-1)).item()


def sample(model: gpt.TokenGPT, prompts: torch.Tensor, seed: int = 0, mode: str | None = None,
           **kw) -> tuple[torch.Tensor, torch.Tensor]:
    """(images (N, 3, 16, 16), tokens (N, 16)) for ``prompts`` (N, 4), an attribute given as its null
    id left open (:func:`course_lib.orders.prompt.check_prompts` allows it; guidance still runs
    against the whole null prompt); other keywords go to :func:`course_lib.orders.gpt.generate`
    (cfg_scale, temperature, top_k, kv_cache, force)."""
    prompts = P.check_prompts(prompts)                                        # a Python list gets a clear error
    tokens = gpt.generate(model, prompts.to(runtime.device()), generator=torch.Generator().manual_seed(seed), **kw)
    return shape_tokens.decode(tokens, mode), tokens


def kv_cache_comparison(model: gpt.TokenGPT, n: int, seed: int = 0, cfg_scale: float = CFG_SCALE) -> dict:
    """Sample the same ``n`` prompts at the same seed with and without the KV cache. Returns
    identical (bool), seconds_cached, seconds_uncached, speedup (uncached / cached)."""
    prompts = evaluator.reference(n, seed).prompts.to(runtime.device())
    kw = dict(cfg_scale=cfg_scale, top_k=TOP_K)
    gpt.generate(model, prompts[:2], kv_cache=True, **kw)                    # warm up
    cached, t_c = runtime.timed(lambda: gpt.generate(model, prompts, kv_cache=True,
                                              generator=torch.Generator().manual_seed(seed), **kw))
    plain, t_p = runtime.timed(lambda: gpt.generate(model, prompts, kv_cache=False,
                                             generator=torch.Generator().manual_seed(seed), **kw))
    return dict(identical=bool(torch.equal(cached, plain)), seconds_cached=t_c, seconds_uncached=t_p,
                speedup=t_p / t_c, n=n)


def diversity(images: torch.Tensor, groups: int) -> float:
    """Mean pairwise distance of evaluator features between images drawn for the SAME prompt:
    ``images`` holds ``groups`` consecutive blocks of equally many samples (at least 2), one block per prompt."""
    evaluator.check_images(images)
    groups = checks.positive_int(groups, "groups")
    if len(images) % groups or len(images) // groups < 2:
        raise ValueError(f"groups: expected a divisor of the {len(images)} images leaving at least 2 per group "
                         f"(consecutive blocks, one per prompt), got {groups}")
    feats = evaluator.shapes_evaluator().features(images)                     # (N, F)
    feats = feats.reshape(groups, -1, feats.shape[1])                         # (groups, per, F)
    d = torch.cdist(feats, feats)                                             # (groups, per, per)
    per = feats.shape[1]
    return (d.sum() / (groups * per * (per - 1))).item()


def cfg_sweep(model: gpt.TokenGPT, scales=CFG_SCALES, n: int | None = None, seed: int = 0,
              mode: str | None = None) -> list[dict]:
    """Per guidance scale: prompt accuracy and Fréchet distance on ``n`` held-out prompts, and the
    diversity of 8 samples for each of B.n_div prompts (:func:`diversity`)."""
    B = budget(mode)
    ref = evaluator.reference(n or B.n_eval, seed)
    div_prompts = evaluator.reference(B.n_div, seed + 1).prompts.repeat_interleave(8, 0)   # (8 n_div, 4)
    out = []
    for w in scales:
        images, _ = sample(model, ref.prompts, seed, B.mode, cfg_scale=w, top_k=TOP_K)
        div_images, _ = sample(model, div_prompts, seed + 1, B.mode, cfg_scale=w, top_k=TOP_K)
        out.append(dict(scale=w, prompt_accuracy=evaluator.prompt_accuracy(images, ref.prompts),
                        frechet=evaluator.frechet(images, ref.images),
                        diversity=diversity(div_images, B.n_div)))
    return out


def _other_colour_start(prompts: torch.Tensor, n_forced: int, seed: int, mode: str | None):
    """For each prompt, the first ``n_forced`` tokens of a real image with the same shape, position
    and size but another colour (the tokenized training pool); and that colour."""
    B = budget(mode)
    tokens, pool = shape_tokens.token_data(B.n_train, seed=shape_tokens.TRAIN_SEED, mode=B.mode)
    g = torch.Generator().manual_seed(seed)
    starts, colours = [], []
    for p in prompts.cpu():
        same = (pool[:, [0, 2, 3]] == p[[0, 2, 3]]).all(1) & (pool[:, 1] != p[1])
        idx = same.nonzero()[:, 0]
        pick = idx[torch.randint(len(idx), (1,), generator=g)].item()
        starts.append(tokens[pick, :n_forced])
        colours.append(int(pool[pick, 1]))
    return torch.stack(starts), torch.tensor(colours)


def forced_start(model: gpt.TokenGPT, n: int | None = None, n_forced: int = 4, seed: int = 0,
                 cfg_scale: float = CFG_SCALE, mode: str | None = None) -> dict:
    """Errors cannot be taken back. Prompts with the shape in the top row (positions "top left",
    "top", "top right": the first row of 4 tokens holds its upper half); the model samples freely,
    then again with its first ``n_forced`` tokens imposed from a real image of ANOTHER colour.
    Returns the images and, for both runs, the share whose colour (by the evaluator) is the
    prompt's, the share with the forced colour, and the prompt accuracy."""
    B = budget(mode)
    ref = evaluator.reference(4 * (n or B.n_eval), seed)
    top = ref.prompts[:, 2] < 3                                                # top-row positions
    prompts = ref.prompts[top][: (n or B.n_eval)]
    start, wrong_colour = _other_colour_start(prompts, n_forced, seed, B.mode)
    force = torch.full((len(prompts), shape_tokens.N_TOKENS), -1, dtype=torch.long)
    force[:, :n_forced] = start
    free, _ = sample(model, prompts, seed, B.mode, cfg_scale=cfg_scale, top_k=TOP_K)
    forced, _ = sample(model, prompts, seed, B.mode, cfg_scale=cfg_scale, top_k=TOP_K, force=force.to(runtime.device()))
    res = {"prompts": prompts, "wrong_colour": wrong_colour, "free_images": free, "forced_images": forced}
    for name, images in (("free", free), ("forced", forced)):
        colour = evaluator.shapes_evaluator().predict(images)[:, 1]
        res[name] = dict(prompt_colour=(colour == prompts[:, 1]).float().mean().item(),
                         forced_colour=(colour == wrong_colour).float().mean().item(),
                         prompt_accuracy=evaluator.prompt_accuracy(images, prompts))
    return res


@functools.lru_cache(maxsize=None)
def _results(mode: str, device: str, cfg_scale: float) -> dict:
    B = budget(mode)
    model = trained_gpt(B.mode)
    ref = evaluator.reference(B.n_eval)
    gpt.generate(model, ref.prompts[:2].to(runtime.device()), cfg_scale=cfg_scale)      # warm up
    (images, _), seconds = runtime.timed(lambda: sample(model, ref.prompts, 0, B.mode, cfg_scale=cfg_scale, top_k=TOP_K))
    return dict(prompt_accuracy=evaluator.prompt_accuracy(images, ref.prompts),
                frechet=evaluator.frechet(images, ref.images), frechet_floor=evaluator.frechet_floor(B.n_eval),
                nfe=shape_tokens.N_TOKENS, seconds_per_image=seconds / B.n_eval, params=count_parameters(model),
                n=B.n_eval, cfg_scale=cfg_scale)


def gpt_results(mode: str | None = None, cfg_scale: float = CFG_SCALE) -> dict:
    """The benchmark's figures of the GPT (KV cache on, CFG at ``cfg_scale``) on the n_eval held-out
    prompts of :func:`course_lib.evaluator.reference`: prompt_accuracy, frechet, frechet_floor, nfe
    (forward passes per image: one per token), seconds_per_image (sampling only, decoding
    included), params, n. Memoised per mode."""
    return dict(_results(budget(mode).mode, str(runtime.device()), float(cfg_scale)))


def log_k() -> float:
    """The loss of a uniform guess over the codebook, log K nats."""
    return math.log(shape_tokens.CODEBOOK)


PRETRAINED = (Pretrained("token-gpt", ("04", "05", "06", "07"), trained_gpt,      # 05: beside MaskGIT
                         figures=lambda mode: {"held_out_loss_nats": held_out_loss(trained_gpt(mode), mode=mode)}),
              Pretrained("token-gpt-open", ("11",), lambda mode: trained_gpt(mode, open_place=True),
                         figures=lambda mode: {"held_out_loss_nats": held_out_loss(
                             trained_gpt(mode, open_place=True), mode=mode, open_place=True)}))
