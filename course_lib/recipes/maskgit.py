"""Recipe of notebook 05_maskgit: MaskGIT on the prompted shapes, the order in which a picture
appears, and decoding steps against quality and time, beside the raster-order GPT of notebook 04.

Budgets per mode and the experiments the notebook and ``course_lib.bench orders`` both call:

* :func:`train_maskgit`: build and train the MaskGIT (:mod:`course_lib.orders.maskgit`) on the shared
  tokenizer's tokens (:mod:`course_lib.recipes.shape_tokens`), B.steps steps;
* :func:`partial_images`: the picture after each decoding step (decided cells shown, the others
  greyed out), for the strip of the order;
* :func:`evaluate_maskgit` / :func:`evaluate_gpt`: prompt accuracy, Fréchet distance (with the
  evaluator of :mod:`course_lib.evaluator`), forward passes and seconds per image, on the same
  held-out prompts; :func:`steps_sweep` runs them for 1, 2, 4, 8, 16 steps;
* :func:`bench_results`: the ``maskgit_<steps>`` entries of the orders benchmark;
* :func:`trained_maskgit` with ``open_place``: the same MaskGIT trained on prompts that leave the
  place open (:func:`train_data`), for notebook 11's open prompts.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from course_lib import checks, evaluator, runtime, train
from course_lib.nets import count_parameters
from course_lib.orders import maskgit
from course_lib.orders import prompt as prompt_lib
from course_lib.recipes import shape_tokens, shapes_task
from course_lib.recipes.registry import Pretrained


@dataclass(frozen=True)
class Budget(shapes_task.TransformerBudget):
    """Notebook 05's budget in one mode (MaskGIT's, over shape_tokens' tokens)."""
    cfg_scale: float          # guidance scale of MaskGIT and the GPT


BUDGETS = {
    "quick": Budget("quick", shape_tokens.BUDGETS["quick"], n_train=4096, batch=64, d_model=64, n_layer=2,
                    n_head=4, steps=300, lr=2e-3, n_eval=128, cfg_scale=2.0),
    "lecture": Budget("lecture", shape_tokens.BUDGETS["lecture"], n_train=8192, batch=64, d_model=128,
                      n_layer=4, n_head=4, steps=1500, lr=1e-3, n_eval=512, cfg_scale=2.0),
    "full": Budget("full", shape_tokens.BUDGETS["full"], n_train=32768, batch=128, d_model=256, n_layer=6,
                   n_head=8, steps=12000, lr=5e-4, n_eval=2048, cfg_scale=2.0),
}
STEPS = (1, 2, 4, 8, 16)          # decoding steps compared (16 = one token per step)
SEED = 0
LATENCY_PROMPTS = 9              # images decoded one at a time to measure the latency


def budget(mode: str | None = None) -> Budget:
    """This notebook's budget in the current (or given) mode: ``budget().steps``."""
    return runtime.pick(BUDGETS, mode)


def build(B: Budget) -> maskgit.MaskGIT:
    """A MaskGIT over the shared tokenizer's codebook and 4x4 grid, weights seeded, on the course device."""
    torch.manual_seed(SEED)
    cfg = maskgit.MaskGITConfig(codebook_size=shape_tokens.CODEBOOK, n_tokens=shape_tokens.N_TOKENS,
                                d_model=B.d_model, n_layer=B.n_layer, n_head=B.n_head)
    return maskgit.MaskGIT(cfg).to(runtime.device())


def train_data(B: Budget, open_place: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """MaskGIT's training set on the CPU: B.n_train token maps (n_train, 16) of the shared tokenizer
    and their prompts (n_train, 4); with ``open_place`` each prompt has its place replaced by the null
    id (:func:`course_lib.recipes.shapes_task.leave_place_open`), the tokens unchanged."""
    tokens, prompts = shape_tokens.token_data(B.n_train, mode=B.mode)            # (n, 16), (n, 4)
    if open_place:
        prompts = shapes_task.leave_place_open(prompts)                          # (n, 4), place null
    return tokens, prompts


def fit(model: maskgit.MaskGIT, B: Budget, criterion=None, progress: bool = True,
        open_place: bool = False) -> train.History:
    """Train ``model`` B.steps steps (AdamW, cosine learning rate) on batches of B.batch token maps of
    the shared tokenizer (:func:`train_data`; with ``open_place`` the place left open in every
    prompt), with :func:`course_lib.orders.maskgit.loss` (random cosine masking, 10% null
    prompts) and ``criterion(logits, targets, mask, label_smoothing)`` (default
    :func:`course_lib.orders.maskgit.masked_loss`: masked tokens only, label smoothing 0.1)."""
    tokens, prompts = train_data(B, open_place)
    dev = runtime.device()
    tokens, prompts = tokens.to(dev), prompts.to(dev)
    g = torch.Generator().manual_seed(SEED)

    def loss_fn(step):
        idx = torch.randint(len(tokens), (B.batch,), generator=g).to(dev)
        return maskgit.loss(model, tokens[idx], prompts[idx], generator=g, criterion=criterion)
    return train.train(model, loss_fn, B.steps, lr=B.lr, schedule="cosine", warmup=min(100, B.steps // 10),
                       progress=progress, desc="MaskGIT" + (" (place open)" if open_place else ""))


def train_maskgit(B: Budget, criterion=None, progress: bool = True):
    """The MaskGIT of notebook 05, through the cache of :func:`trained_maskgit` (same name and key):
    built and :func:`fit` with ``criterion`` (as there) unless its weights are shipped or cached.
    Returns (model in eval mode, the History of the run that made it: ``model.history``, None only
    for a file written without one).

    With the library's loss (``criterion=None``) the model is shared: shipped weights, else the disk
    cache, else trained now and cached, so notebook 06 and the benchmark reuse it. A model trained
    with another criterion (notebook 05's exercise: one mean over the batch's masked tokens, where
    MaskGIT averages per image) is not shared (``share=False``): what notebook 06 and the benchmark
    measure must not depend on a learner's answer. With ``runtime.weights() == "load"`` the course's
    shipped MaskGIT (trained with the library's loss) is loaded instead, and a line says so; with
    "train" the model trains with ``criterion`` and is written nowhere."""
    model = _cached(B, fit=lambda m: fit(m, B, criterion, progress), share=criterion is None)
    if criterion is not None and model.from_cache:
        print("MaskGIT: these are the course's weights, trained with the library's maskgit.masked_loss; "
              'WEIGHTS = "train" trains it here with your loss')
    return model, model.history


def cache_name(open_place: bool = False) -> str:
    """MaskGIT's name in the model cache and in data/weights: "maskgit", or "maskgit-open"."""
    return "maskgit-open" if open_place else "maskgit"


def cache_config(B: Budget, open_place: bool = False) -> dict:
    """MaskGIT's cache key: the budget and the seed (the key of notebook 05's shipped weights), and
    ``open_place`` only for the open model."""
    return dict(budget=B, seed=SEED, **({"open_place": True} if open_place else {}))


def _cached(B: Budget, fit, verbose: bool = True, share: bool = True, open_place: bool = False) -> maskgit.MaskGIT:
    return train.cached(cache_name(open_place), cache_config(B, open_place), build=lambda: build(B), fit=fit,
                        verbose=verbose, share=share)


def trained_maskgit(mode: str | None = None, open_place: bool = False) -> maskgit.MaskGIT:
    """The MaskGIT of this mode (masked loss of :func:`fit`; its History kept with the weights),
    shipped, else from the disk cache (where notebook 05 or an earlier call left it), else built and
    :func:`fit` now: the benchmark and notebook 06's table of the four orders reuse one model.
    ``open_place``: the same budget trained on the same tokens with prompts whose place is left open
    (:func:`train_data`; cache name "maskgit-open"), for notebook 11's open prompts."""
    B = budget(mode)
    if open_place:
        return _cached(B, fit=lambda model: fit(model, B, progress=False, open_place=True), open_place=True)
    return _cached(B, fit=lambda model: fit(model, B, progress=False))       # the call notebook 05 has always made


# ----------------------------------------------------------------------------- the order of decoding

def cell_mask(decided: torch.Tensor) -> torch.Tensor:
    """(B, 16) bool over the 4x4 token grid -> (B, 1, 16, 16) float, 1 on the 4x4-pixel cells of
    decided tokens."""
    g = shape_tokens.GRID
    checks.tensor(decided, "decided", ndim=2, dtype=torch.bool, shape=f"(B, {g * g}) bool")
    checks.tensor(decided, "decided", dim=g * g, shape=f"(B, {g * g}) bool")
    cells = decided.float().view(-1, 1, g, g)                                          # (B, 1, 4, 4)
    return torch.nn.functional.interpolate(cells, scale_factor=shape_tokens.SIZE // g, mode="nearest")


def partial_images(decoded: maskgit.Decoded, step: int, mode: str | None = None) -> torch.Tensor:
    """The picture after decoding step ``step``: the model's samples of that step decoded to images
    (B, 3, 16, 16), with the cells not decided yet dimmed to grey. ``step`` in 0 .. steps - 1 (no
    negative index: -1 would silently mean the last step)."""
    n = len(decoded.guesses)
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step < n:
        raise ValueError(f"step: expected an int in [0, {n - 1}] (this decoding ran {n} steps), got {step!r}")
    img = shape_tokens.decode(decoded.guesses[step], mode)                             # (B, 3, 16, 16)
    keep = cell_mask(decoded.order <= step).to(img.device)                             # (B, 1, 16, 16)
    return keep * img + (1 - keep) * (0.35 + 0.15 * img)


def order_by_content(decoded: maskgit.Decoded, images: torch.Tensor, threshold: float = 0.15) -> dict:
    """Mean decoding step of the token cells that hold part of the shape (a pixel of the final image
    brighter than ``threshold``) and of the empty background cells, over all images; and the share of
    images whose first decided cell is on the shape."""
    g, p = shape_tokens.GRID, shape_tokens.SIZE // shape_tokens.GRID
    evaluator.check_images(images)
    checks.same_rows(images, "images", decoded.order.shape[0], "decoded.order (one image per decoded row)")
    checks.number(threshold, "threshold", 0.0, 1.0)
    bright = images.amax(1).view(-1, g, p, g, p).amax((2, 4)).reshape(-1, g * g) > threshold   # (B, 16)
    order = decoded.order.to(bright.device).float()                                             # (B, 16)
    first_on_shape = (order.masked_fill(~bright, float("inf")).amin(1) == order.amin(1)).float()
    return dict(shape_step=order[bright].mean().item(), background_step=order[~bright].mean().item(),
                first_on_shape=first_on_shape.mean().item(), shape_cells=bright.float().sum(1).mean().item())


# ----------------------------------------------------------------------------- measuring



def score(images: torch.Tensor, ref) -> dict:
    """Prompt accuracy against ``ref.prompts`` and Fréchet distance to ``ref.images``."""
    return dict(prompt_accuracy=evaluator.prompt_accuracy(images, ref.prompts),
                frechet=evaluator.frechet(images, ref.images))


def evaluate_maskgit(model, steps: int, B: Budget, ref=None, seed: int = SEED) -> dict:
    """Decode one image per held-out prompt (B.n_eval of :func:`course_lib.evaluator.reference`) in
    ``steps`` steps with guidance B.cfg_scale; returns steps, prompt_accuracy, frechet, nfe
    (transformer passes per image), seconds_per_image (all prompts in one batch, tokens and then
    pixels, as the GPT's recipe times it), latency (median seconds for ONE image alone, over
    LATENCY_PROMPTS prompts) and params."""
    ref = ref or evaluator.reference(B.n_eval)
    prompts = ref.prompts.to(runtime.device())
    g = torch.Generator().manual_seed(seed)

    def generate(p):                                                   # tokens, then pixels
        out = maskgit.generate(model, p, steps=steps, cfg_scale=B.cfg_scale, generator=g)
        return out, shape_tokens.decode(out.tokens, B.mode)
    generate(prompts[:2])                                              # warm up
    (out, images), seconds = runtime.timed(lambda: generate(prompts))
    return dict(steps=steps, **score(images, ref), nfe=out.nfe, seconds_per_image=seconds / len(prompts),
                latency=latency(generate, prompts), params=count_parameters(model))


def sample(model, prompts: torch.Tensor, steps: int = 8, seed: int = SEED, mode: str | None = None,
           cfg_scale: float | None = None, **kw) -> tuple[torch.Tensor, maskgit.Decoded]:
    """(images (N, 3, 16, 16), the :class:`~course_lib.orders.maskgit.Decoded` record) for ``prompts``
    (N, 4) decoded in ``steps`` steps at guidance ``cfg_scale`` (default the budget's); an attribute
    given as its null id is left open (:func:`course_lib.orders.prompt.check_prompts` allows it, as
    a prompt with the place open). Other keywords go to :func:`course_lib.orders.maskgit.generate`."""
    B = budget(mode)
    prompts = prompt_lib.check_prompts(prompts)                                 # a Python list gets a clear error
    out = maskgit.generate(model, prompts.to(runtime.device()), steps=steps,
                           cfg_scale=B.cfg_scale if cfg_scale is None else cfg_scale,
                           generator=torch.Generator().manual_seed(seed), **kw)
    return shape_tokens.decode(out.tokens, B.mode), out


def latency(generate, prompts: torch.Tensor, n: int | None = None) -> float:
    """Median seconds of ``generate(prompts[i:i+1])``: one image alone, over the first n prompts."""
    n = LATENCY_PROMPTS if n is None else checks.positive_int(n, "n")
    times = [runtime.timed(lambda: generate(prompts[i:i + 1]))[1] for i in range(n)]
    return sorted(times)[len(times) // 2]


def evaluate_gpt(B: Budget) -> dict:
    """The raster-order GPT of notebook 04 (trained there and kept in the cache; trained now if not),
    scored by its own recipe on ``evaluator.reference(n)`` with the same guidance scale:
    prompt_accuracy, frechet, frechet_floor, nfe, seconds_per_image, params, n; plus its latency
    (one image alone, KV cache on, as :func:`latency` measures MaskGIT's)."""
    from course_lib.recipes import chaining_tokens
    res = dict(chaining_tokens.gpt_results(B.mode, cfg_scale=B.cfg_scale))
    model = chaining_tokens.trained_gpt(B.mode)
    prompts = evaluator.reference(int(res.get("n", B.n_eval))).prompts.to(runtime.device())
    res["latency"] = latency(lambda p: chaining_tokens.sample(model, p, SEED, B.mode, cfg_scale=B.cfg_scale), prompts)
    return res


def steps_sweep(model, B: Budget, steps=STEPS, ref=None) -> list[dict]:
    """:func:`evaluate_maskgit` for every number of steps in ``steps`` on the same prompts."""
    ref = ref or evaluator.reference(B.n_eval)
    return [evaluate_maskgit(model, s, B, ref) for s in steps]


def comparison(model, B: Budget, steps=STEPS) -> tuple[list[dict], dict, float]:
    """Section 5 of the notebook and the benchmark: the GPT's results (:func:`evaluate_gpt`), then the
    MaskGIT sweep over ``steps`` on the same held-out prompts (the GPT's n), and the Fréchet floor at
    that n. Returns (MaskGIT rows, GPT dict, floor)."""
    gpt = evaluate_gpt(B)
    n = int(gpt.get("n", B.n_eval))
    rows = steps_sweep(model, B, steps, evaluator.reference(n))
    return rows, gpt, evaluator.frechet_floor(n)


def bench_results(mode: str | None = None) -> dict:
    """The MaskGIT entries of ``python -m course_lib.bench orders``: {"maskgit_<steps>": {prompt_accuracy,
    frechet, nfe, seconds_per_image, params, latency, frechet_floor, n}} for steps 1, 2, 4, 8, 16,
    computed with the notebook's functions (:func:`trained_maskgit`, :func:`comparison`)."""
    B = budget(mode)
    model = trained_maskgit(B.mode)
    rows, gpt, floor = comparison(model, B)
    n = int(gpt.get("n", B.n_eval))
    keys = ("prompt_accuracy", "frechet", "nfe", "seconds_per_image", "params", "latency")
    return {f"maskgit_{r['steps']}": {**{k: r[k] for k in keys}, "frechet_floor": floor, "n": n} for r in rows}


PRETRAINED = (Pretrained("maskgit", ("05", "06"), trained_maskgit),
              Pretrained("maskgit-open", ("11",), lambda mode: trained_maskgit(mode, open_place=True)))
