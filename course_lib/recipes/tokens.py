"""Recipe of notebook 02_tokens: VQ-VAE on shapes, codebook collapse and its fixes, codebook and
patch size, what "similar" means (MSE, perceptual, adversarial), a photo through a tokenizer.

Its budgets per mode and its experiments: :func:`train_vq` builds, trains and evaluates one image
tokenizer; :func:`collapse_runs` (section 3, and ``course_lib.bench tokens``), :func:`sweep`
(section 4) and :func:`similarity_runs` (section 5) are built on it, :func:`train_photo` (section 6)
is its twin on crops of a photo. Every run seeds its weights and draws its own batches, so a figure
does not depend on which cells ran before. Every tokenizer (and section 5's perceptual network,
:func:`feature_net`) goes through the model cache (``train.cached``): in lecture mode the course's
trained weights (``data/weights/``, made by ``python -m course_lib.pretrain`` from :data:`PRETRAINED`)
load instead of training, with the training run's history (loss, perplexity and usage per step).
"""
from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import torch

from course_lib import checks, data, runtime, train
from course_lib.recipes.registry import Pretrained
from course_lib.tokens import losses, tokenizers, vq


@dataclass(frozen=True)
class Photo:
    """Section 6's budget: one photo tokenized."""
    size: int                 # its side in pixels
    steps: int                # training steps on random crops of it


@dataclass(frozen=True)
class Budget:
    """Notebook 02's budget in one mode."""
    mode: str                 # the course mode this budget is for
    n_train: int              # training shapes (seed 0)
    batch: int                # images per step
    hidden: int               # the tokenizer's channels
    toy_steps: int            # steps of the 2-D codebook toy
    vq_steps: int             # steps of each collapse run (section 3)
    sweep_steps: int          # steps per (patch, K) of the sweep
    clf_steps: int            # steps of the shapes feature network
    loss_steps: int           # steps per loss of the loss comparison
    bench_vq_steps: int       # steps of the bench's tokenizers
    photo: Photo              # section 6


BUDGETS = {
    "quick": Budget("quick", n_train=1024, batch=32, hidden=32, toy_steps=100, vq_steps=60, sweep_steps=30,
                    clf_steps=60, loss_steps=40, bench_vq_steps=100, photo=Photo(size=64, steps=50)),
    "lecture": Budget("lecture", n_train=4096, batch=64, hidden=48, toy_steps=300, vq_steps=600, sweep_steps=300,
                      clf_steps=300, loss_steps=400, bench_vq_steps=800, photo=Photo(size=96, steps=400)),
    "full": Budget("full", n_train=16384, batch=128, hidden=96, toy_steps=1000, vq_steps=4000, sweep_steps=2000,
                   clf_steps=1000, loss_steps=3000, bench_vq_steps=4000, photo=Photo(size=160, steps=3000)),
}

SIZE = 16                     # the shapes images are 16 x 16
LATENT_DIM = 8                # numbers per token before quantization
COLLAPSE = {"plain": False, "EMA + k-means + restart": True}        # section 3: name -> fixed
SWEEP = [(2, 64), (4, 16), (4, 64), (4, 512), (8, 64), (8, 512)]    # section 4: (patch, K)
SIMILAR = {"MSE": "mse", "MSE + perceptual": "perceptual", "MSE + perceptual + GAN": "gan"}   # section 5
PHOTO = "china"                                                     # section 6: the photo
PHOTO_TOKENS = {"discrete (VQ, 256 codes)": 256, "continuous (no quantizer)": None}   # section 6: name -> K


def budget(mode: str | None = None) -> Budget:
    """This notebook's budget in the current (or given) mode: ``budget().vq_steps``."""
    return runtime.pick(BUDGETS, mode)


def shapes_data(B: Budget) -> tuple[SimpleNamespace, SimpleNamespace]:
    """(training set of B.n_train captioned 16x16 shapes, 512 held-out ones)."""
    return data.shapes(B.n_train, size=SIZE, seed=0), data.shapes(512, size=SIZE, seed=1)


def quantizer(B: Budget, K: int, n_down: int = 2, fixed: bool = True) -> vq.VectorQuantizer:
    """K codes of dimension 8: ``fixed`` = EMA + k-means + dead-code restarts sized for the
    B.batch x (16 / 2^n_down)^2 token vectors of a batch; otherwise a plain learned codebook."""
    if not fixed:
        return vq.VectorQuantizer(K, LATENT_DIM)
    return vq.ema_vq(K, LATENT_DIM, vectors_per_batch=B.batch * (SIZE // 2 ** n_down) ** 2)


def image_tokenizer(B: Budget, q, n_down: int = 2) -> tokenizers.ImageTokenizer:
    """The notebook's conv tokenizer (patch 2^n_down, B.hidden channels) around quantizer ``q``,
    weights seeded, on the course device."""
    torch.manual_seed(0)
    return tokenizers.ImageTokenizer(3, B.hidden, LATENT_DIM, n_down, quantizer=q).to(runtime.device())


def _similarity(B: Budget, similar: str, steps: int) -> dict:
    """:func:`course_lib.tokens.tokenizers.fit`'s keywords for section 5's loss ``similar``: "mse"
    (none), "perceptual" (+ the perceptual loss of :func:`feature_net`), "gan" (+ a PatchGAN
    discriminator, weights seeded, from step steps // 2 on)."""
    if similar == "mse":
        return {}
    kw = dict(perceptual=losses.PerceptualLoss(feature_net(B)))
    if similar == "gan":
        torch.manual_seed(1)
        kw.update(discriminator=losses.PatchDiscriminator(3, 32, 2).to(runtime.device()), disc_start=steps // 2)
    return kw


def feature_net(B: Budget) -> losses.FeatureNet:
    """Section 5's perceptual network: :func:`course_lib.tokens.losses.shapes_feature_net` trained
    B.clf_steps steps, kept by the model cache (and shipped) as "tokens-feature-net"."""
    def fit(net):
        net.load_state_dict(losses.shapes_feature_net(steps=B.clf_steps, size=SIZE).state_dict())
    net = train.cached("tokens-feature-net", dict(mode=B.mode, steps=B.clf_steps, size=SIZE),
                       build=lambda: losses.FeatureNet(n_colors=len(data.COLORS)).to(runtime.device()), fit=fit,
                       verbose=False)
    return net.requires_grad_(False)


def _run(name: str, config: dict, build, batch_fn, test: torch.Tensor, steps: int, extra=dict,
         **fit_kw) -> tokenizers.Run:
    """The tokenizer ``name`` with ``config`` (its cache key) from the course's weights or the model
    cache, else ``build()`` trained ``steps`` steps of ``batch_fn`` by
    :func:`course_lib.tokens.tokenizers.fit` (lr 2e-3, ``fit_kw`` and ``extra()``, built only if it
    trains); then evaluated on ``test``. The Run's history is the training run that made the weights."""
    def fit(model):
        return tokenizers.fit(model, batch_fn, steps, lr=2e-3, **fit_kw, **extra())
    model = train.cached(name, config, build=build, fit=fit, verbose=False)
    return tokenizers.Run(model, model.history, tokenizers.evaluate(model, test))


def train_vq(B: Budget, K: int, steps: int, *, fixed: bool = True, n_down: int = 2, similar: str = "mse",
             shapes=None, desc: str = "tokenizer", progress: bool = True) -> tokenizers.Run:
    """A VQ tokenizer (K codes, patch 2^n_down; ``fixed``: EMA + k-means + restart, see
    :func:`quantizer`) trained ``steps`` steps on batches of B.batch shapes (lr 2e-3) with the loss
    ``similar`` ("mse", "perceptual": + the perceptual loss, "gan": + the adversarial loss too, see
    section 5), evaluated on the held-out shapes. Through the model cache (``train.cached``, name
    "tokens-vq", key: B and these settings): with the course's weights it loads instead of training,
    and the Run's history is the run that made them. ``shapes``: the (train, test) pair of
    :func:`shapes_data` (made here if not given)."""
    checks.positive_int(K, "K"), checks.positive_int(steps, "steps"), checks.positive_int(n_down, "n_down")
    if similar not in SIMILAR.values():
        raise ValueError(f"similar: expected one of {', '.join(map(repr, SIMILAR.values()))}, got {similar!r}")
    train_set, test = shapes or shapes_data(B)
    config = dict(budget=B, K=K, steps=steps, fixed=bool(fixed), n_down=n_down, similar=similar)
    return _run("tokens-vq", config, lambda: image_tokenizer(B, quantizer(B, K, n_down, fixed), n_down),
                tokenizers.sample_batch(train_set.images, B.batch), test.images, steps,
                extra=lambda: _similarity(B, similar, steps), desc=desc, progress=progress)


def collapse_runs(B: Budget, steps: int | None = None, shapes=None,
                  progress: bool = True) -> dict[str, tokenizers.Run]:
    """Section 3: 64 codes, 4x4 patches, plain vs EMA + k-means + restart, ``steps`` (None: B.vq_steps)
    each. Returns {name: Run}; each Run's result has "psnr", "perplexity", "usage", its history the
    per-step "perplexity" and "usage" logs."""
    steps = B.vq_steps if steps is None else steps
    shapes = shapes or shapes_data(B)
    return {name: train_vq(B, 64, steps, fixed=fixed, shapes=shapes, desc=name, progress=progress)
            for name, fixed in COLLAPSE.items()}


def sweep(B: Budget, configs=SWEEP, shapes=None) -> list[dict]:
    """Section 4: one fixed-VQ tokenizer per (patch, K), B.sweep_steps each. Returns one dict per
    configuration: patch, K, tokens per image, bits per image, PSNR, and its Run."""
    shapes = shapes or shapes_data(B)
    out = []
    for patch, K in configs:
        n_down = patch.bit_length() - 1                                   # log2(patch)
        run = train_vq(B, K, B.sweep_steps, n_down=n_down, shapes=shapes, desc=f"patch {patch}, K {K}")
        tokens = (SIZE // patch) ** 2
        out.append(dict(patch=patch, K=K, tokens=tokens, bits=tokenizers.bits_per_item(tokens, K),
                        psnr=run.result["psnr"], run=run))
    return out


def similarity_runs(B: Budget, shapes=None) -> dict[str, tokenizers.Run]:
    """Section 5: the 8x8-patch, 512-code tokenizer trained B.loss_steps steps with each loss of
    :data:`SIMILAR`. Returns {name: Run}."""
    shapes = shapes or shapes_data(B)
    return {name: train_vq(B, 512, B.loss_steps, n_down=3, similar=similar, shapes=shapes, desc=name)
            for name, similar in SIMILAR.items()}


def photo(B: Budget) -> torch.Tensor:
    """Section 6's photo, (3, H, W) with a short side of B.photo.size pixels."""
    return data.photo(PHOTO, size=B.photo.size)


def train_photo(B: Budget, K: int | None, *, desc: str = "tokenizer", progress: bool = True) -> tokenizers.Run:
    """Section 6: the 4x4-patch tokenizer with K codes (:func:`quantizer`; None: continuous tokens),
    trained B.photo.steps steps (lr 2e-3) on random 16x16 crops of :func:`photo`, evaluated on the
    whole photo (the Run's result["recon"] is (1, 3, H, W)). Through the model cache, name
    "tokens-photo", like :func:`train_vq`."""
    if K is not None:
        checks.positive_int(K, "K")
    image = photo(B)
    return _run("tokens-photo", dict(budget=B, K=K, photo=PHOTO),
                lambda: image_tokenizer(B, None if K is None else quantizer(B, K)),
                tokenizers.sample_crops(image, SIZE, B.batch), image[None], B.photo.steps,
                desc=desc, progress=progress)


def photo_runs(B: Budget) -> dict[str, tokenizers.Run]:
    """Section 6: {name: Run} of :data:`PHOTO_TOKENS` (a 256-code VQ, and continuous tokens)."""
    return {name: train_photo(B, K, desc=name) for name, K in PHOTO_TOKENS.items()}


def origin(runs) -> str:
    """Where the models of these Runs came from, in words, for the notebook to print."""
    models = [r.model for r in runs]
    shipped = sum(getattr(m, "shipped", None) is not None for m in models)
    cached = sum(bool(m.from_cache) for m in models) - shipped
    parts = [f"{shipped} loaded from the course's trained weights (data/weights; WEIGHTS = \"train\" trains them here)"
             if shipped else "", f"{cached} loaded from this machine's model cache" if cached else "",
             f"{len(models) - shipped - cached} trained here" if len(models) > shipped + cached else ""]
    return f"{len(models)} tokenizer(s): " + ", ".join(p for p in parts if p)


PRETRAINED = (
    Pretrained("tokens-feature-net", ("02",), lambda mode: feature_net(budget(mode))),
    Pretrained("tokens-vq", ("02",), lambda mode: (collapse_runs(budget(mode)), sweep(budget(mode)),
                                                   similarity_runs(budget(mode)))),
    Pretrained("tokens-photo", ("02",), lambda mode: photo_runs(budget(mode))),
)
