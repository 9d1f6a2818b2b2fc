"""Recipe of notebook 02_tokens: VQ-VAE on shapes, codebook collapse and its fixes, codebook and
patch size, what "similar" means (MSE, perceptual, adversarial), a photo through a tokenizer.

Its budgets per mode and its experiments: :func:`train_vq` builds, trains and evaluates one image
tokenizer; :func:`collapse_runs` (section 3, and ``course_lib.bench tokens``), :func:`sweep`
(section 4) and :func:`train_photo` (section 6) are built on it. Every run seeds its weights and
draws its own batches, so a figure does not depend on which cells ran before.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import torch

from course_lib import data, runtime
from course_lib.tokens import tokenizers, vq


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


def train_vq(B: Budget, K: int, steps: int, *, fixed: bool = True, n_down: int = 2,
             shapes=None, **fit_kw) -> tokenizers.Run:
    """Build a VQ tokenizer (K codes, patch 2^n_down), train it ``steps`` steps on batches of
    B.batch shapes (lr 2e-3), evaluate it on the held-out shapes. ``shapes``: the
    (train, test) pair of :func:`shapes_data` (made here if not given); other keywords go to
    :func:`course_lib.tokens.tokenizers.fit` (perceptual, discriminator, desc, ...)."""
    train, test = shapes or shapes_data(B)
    model = image_tokenizer(B, quantizer(B, K, n_down, fixed), n_down)
    fit_kw.setdefault("lr", 2e-3)
    return tokenizers.train_and_evaluate(model, tokenizers.sample_batch(train.images, B.batch), test.images,
                                         steps, **fit_kw)


def collapse_runs(B: Budget, steps: int | None = None, shapes=None,
                  progress: bool = True) -> dict[str, tokenizers.Run]:
    """Section 3: 64 codes, 4x4 patches, plain vs EMA + k-means + restart, ``steps`` (default
    B.vq_steps) each. Returns {name: Run}; each Run's result has "psnr", "perplexity", "usage"."""
    shapes = shapes or shapes_data(B)
    return {name: train_vq(B, 64, steps or B.vq_steps, fixed=fixed, shapes=shapes, desc=name, progress=progress)
            for name, fixed in COLLAPSE.items()}


def sweep(B: Budget, configs=SWEEP, shapes=None) -> list[dict]:
    """Section 4: one fixed-VQ tokenizer per (patch, K), B.sweep_steps each. Returns one dict per
    configuration: patch, K, tokens per image, bits per image, PSNR."""
    shapes = shapes or shapes_data(B)
    out = []
    for patch, K in configs:
        n_down = patch.bit_length() - 1                                   # log2(patch)
        run = train_vq(B, K, B.sweep_steps, n_down=n_down, shapes=shapes, desc=f"patch {patch}, K {K}")
        tokens = (SIZE // patch) ** 2
        out.append(dict(patch=patch, K=K, tokens=tokens, bits=tokenizers.bits_per_item(tokens, K),
                        psnr=run.result["psnr"]))
    return out


def train_photo(B: Budget, image: torch.Tensor, q, **fit_kw) -> tokenizers.Run:
    """Section 6: the 4x4-patch tokenizer around quantizer ``q`` (e.g. ``quantizer(B, 256)``, or
    None: continuous tokens), trained B.photo.steps steps on random 16x16 crops of one (3, H, W)
    photo, evaluated on the whole photo (the Run's result["recon"] is (1, 3, H, W))."""
    model = image_tokenizer(B, q)
    fit_kw.setdefault("lr", 2e-3)
    return tokenizers.train_and_evaluate(model, tokenizers.sample_crops(image, SIZE, B.batch), image[None],
                                         B.photo.steps, **fit_kw)
