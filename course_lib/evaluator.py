"""The judge of the prompted-shapes task: a small classifier of the four attributes of a shape.

Notebooks 04-06 (and the capstone) generate 16x16 shapes from a prompt (shape, colour, position,
size; :attr:`course_lib.data.Shapes.prompts`). To say how good a generator is, the course trains
one classifier on real images, once, and measures everything with it:

* **prompt accuracy** (:func:`prompt_accuracy`): the share of generated images whose four
  predicted attributes all match their prompt (the idea of the "CLIP score" or of GenEval's
  object/colour/position checks, with a classifier that knows exactly these attributes);
* a **Fréchet distance** (:func:`frechet`) between generated and real images in the classifier's
  feature space (FID's formula, Heusel et al. 2017, :func:`course_lib.metrics.frechet_distance`,
  with this small CNN instead of Inception-v3). It is biased upwards at small sample sizes, so it
  is always printed next to :func:`frechet_floor`, two draws of real images at the same size.

The classifier (:class:`ShapesEvaluator`) is trained on freshly rendered images, the same in every
mode and with a fixed seed, in a few seconds on a CPU; it is kept in the disk cache
(:func:`course_lib.train.cached`) and reaches >= 98% accuracy per attribute on held-out images
(tests/test_evaluator.py). Usage::

    from course_lib import evaluator
    ref = evaluator.reference(512)                      # held-out real shapes and their prompts
    images = my_generator(ref.prompts)                  # (512, 3, 16, 16) in [0, 1] (refused otherwise)
    evaluator.prompt_accuracy(images, ref.prompts)      # share with all 4 attributes right
    evaluator.frechet(images, ref.images), evaluator.frechet_floor(512)
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from course_lib import checks, data, metrics, runtime, train

VERSION = 1                          # bump when the architecture or training changes
CONFIG = dict(version=VERSION, size=16, width=32, features=64, n_train=16384, steps=1200, batch=128,
              lr=2e-3, seed=0)
TRAIN_SEED = 7_000                   # the training images; evaluation draws use metrics.HELD_OUT_SEED
RANGE_TOLERANCE = 1e-3               # images may leave [0, 1] by this much (rounding), not more


def check_images(images, name: str = "images") -> torch.Tensor:
    """The evaluator's contract: (N, 3, 16, 16) floating images, N >= 1, every value finite and in
    [0, 1] (up to ``RANGE_TOLERANCE``). It was trained on such images; on [0, 255] or [-1, 1] it
    answers with confident nonsense, and a NaN image is "some class", so both are refused."""
    checks.tensor(images, name, ndim=4, floating=True, shape="(N, 3, 16, 16) in [0, 1]")
    if tuple(images.shape[1:]) != (3, 16, 16):
        raise ValueError(f"{name}: expected shape (N, 3, 16, 16), got {tuple(images.shape)}")
    checks.rows(images, name)
    return checks.value_range(images, name, 0.0, 1.0, tol=RANGE_TOLERANCE)


class ShapesEvaluator(nn.Module):
    """A CNN (3 conv layers, 16 -> 8 -> 4) -> ``features`` numbers -> four linear heads (4, 6, 9 and
    2 classes: shape, colour, position, size)."""

    def __init__(self, width: int = 32, features: int = 64):
        super().__init__()
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(3, w, 3, padding=1), nn.SiLU(),                        # (B, w, 16, 16)
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.SiLU(),          # (B, 2w, 8, 8)
            nn.Conv2d(2 * w, 2 * w, 3, stride=2, padding=1), nn.SiLU(),      # (B, 2w, 4, 4)
            nn.Flatten(), nn.Linear(2 * w * 16, features), nn.SiLU())         # (B, features)
        self.heads = nn.ModuleList(nn.Linear(features, n) for n in data.N_VALUES)

    def _check(self, images) -> torch.Tensor:
        return check_images(images).to(checks.model_device(self), torch.float32)

    def logits(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Four logit tensors (N, 4), (N, 6), (N, 9), (N, 2) for images (N, 3, 16, 16)."""
        h = self.body(self._check(images))                                    # (N, features)
        return [head(h) for head in self.heads]

    @torch.no_grad()
    def features(self, images: torch.Tensor, batch: int = 1024) -> torch.Tensor:
        """(N, features) penultimate activations, the space of :func:`frechet` (on the CPU)."""
        self._check(images)
        with runtime.evaluating(self):
            return torch.cat([self.body(self._check(images[i:i + batch])).cpu() for i in range(0, len(images), batch)])

    @torch.no_grad()
    def predict(self, images: torch.Tensor, batch: int = 1024) -> torch.Tensor:
        """(N, 4) int64 predicted (shape, color, position, size), on the CPU."""
        self._check(images)
        with runtime.evaluating(self):
            return torch.cat([torch.stack([lg.argmax(-1) for lg in self.logits(images[i:i + batch])], 1).cpu()
                              for i in range(0, len(images), batch)])


def _fit(model: ShapesEvaluator) -> None:
    c = CONFIG
    torch.manual_seed(c["seed"])
    shapes = data.shapes(c["n_train"], size=c["size"], seed=TRAIN_SEED)
    images, labels = shapes.images, shapes.prompts                           # (N, 3, 16, 16), (N, 4)
    g = torch.Generator().manual_seed(c["seed"])

    def loss_fn(step):
        idx = torch.randint(len(images), (c["batch"],), generator=g).to(images.device)
        x = images[idx]
        # a little noise and contrast change: generated images are never exactly clean renders
        x = (x * (0.85 + 0.3 * torch.rand(len(x), 1, 1, 1, device=x.device))
             + 0.03 * torch.randn_like(x)).clamp(0, 1)
        return sum(F.cross_entropy(lg, labels[idx, a]) for a, lg in enumerate(model.logits(x)))

    train.train(model, loss_fn, c["steps"], lr=c["lr"], schedule="cosine", desc="shapes evaluator")


@functools.lru_cache(maxsize=1)
def _evaluator(device: str) -> ShapesEvaluator:
    c = CONFIG
    return train.cached("shapes-evaluator", c,
                        build=lambda: ShapesEvaluator(c["width"], c["features"]).to(device),
                        fit=_fit, verbose=False).requires_grad_(False)


def shapes_evaluator() -> ShapesEvaluator:
    """The trained evaluator on the course device: from memory, else the disk cache, else trained
    now (about 20 s on 2 CPU cores, once)."""
    return _evaluator(str(runtime.device()))


def reference(n: int, seed: int = 0) -> data.Shapes:
    """``n`` held-out real shapes (seed ``metrics.HELD_OUT_SEED + seed``): generate from their
    ``.prompts`` and compare with their ``.images``, so both sets have the same attributes."""
    return data.shapes(checks.positive_int(n, "n"), size=16, seed=metrics.HELD_OUT_SEED + seed)


def _prompts(prompts, n: int, allow_null: bool = False) -> torch.Tensor:
    checks.tensor(prompts, "prompts", ndim=2, floating=False, shape="(N, 4) int64")
    if tuple(prompts.shape) != (n, 4):
        raise ValueError(f"prompts: expected shape ({n}, 4), one per image, got {tuple(prompts.shape)}")
    for a, (name, k) in enumerate(zip(data.ATTRIBUTES, data.N_VALUES)):
        checks.index_range(prompts[:, a], f"prompts[:, {a}] ({name})", k + int(allow_null))
    return prompts.cpu().long()


def attribute_accuracy(images: torch.Tensor, prompts: torch.Tensor) -> dict[str, float]:
    """Per attribute, the share of images whose predicted value matches the prompt's."""
    _prompts(prompts, len(check_images(images)))
    pred = shapes_evaluator().predict(images)                                 # (N, 4)
    ok = pred == _prompts(prompts, len(images))
    return {name: ok[:, a].float().mean().item() for a, name in enumerate(data.ATTRIBUTES)}


def prompt_accuracy(images: torch.Tensor, prompts: torch.Tensor) -> float:
    """Share of ``images`` (N, 3, 16, 16) whose four predicted attributes all equal ``prompts``
    (N, 4). Chance level is 1/432. An attribute given as its null id (``data.N_VALUES[a]``, "left
    open", as :mod:`course_lib.orders.prompt` writes it) is not judged: any value is right.
    ``images`` must be in [0, 1] (:func:`check_images`)."""
    prompts = _prompts(prompts, len(check_images(images)), allow_null=True)
    pred = shapes_evaluator().predict(images)                                 # (N, 4)
    left_open = prompts == torch.tensor(data.N_VALUES)                        # (N, 4)
    return ((pred == prompts) | left_open).all(1).float().mean().item()


def frechet(images_a: torch.Tensor, images_b: torch.Tensor) -> float:
    """Fréchet distance between two image sets in the evaluator's feature space (FID's formula,
    :func:`course_lib.metrics.frechet_distance`). Compare with :func:`frechet_floor` at the same N."""
    check_images(images_a, "images_a"), check_images(images_b, "images_b")
    checks.rows(images_a, "images_a", 2), checks.rows(images_b, "images_b", 2)     # a covariance needs 2
    ev = shapes_evaluator()
    return metrics.frechet_distance(ev.features(images_a), ev.features(images_b))


def frechet_floor(n: int, seed: int = 0) -> float:
    """The Fréchet distance of real images to :func:`reference` (n, seed) at the same prompts: the
    reference's prompts rendered again with another draw of the placement jitter
    (:func:`course_lib.data.render_prompts`, seed ``FLOOR_SEED + seed``). That is what a perfect
    generator, given the reference's prompts as the notebooks give them, would score at this n."""
    ref = reference(checks.positive_int(n, "n", 2), seed)          # a covariance needs 2 images
    return frechet(data.render_prompts(ref.prompts, seed=metrics.FLOOR_SEED + seed), ref.images)
