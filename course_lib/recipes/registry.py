"""The models a recipe trains and the course ships as weights (``data/weights/``, ``make pretrain``).

A recipe module lists them in ``PRETRAINED``, a tuple of :class:`Pretrained`; ``course_lib.pretrain``
collects the lists of every recipe (:data:`RECIPES`). ``make(mode)`` calls the same recipe function the
notebook calls; inside ``pretrain`` the model cache (:func:`course_lib.cache.cached`) then trains each
model that is not shipped yet and writes it with its manifest entry. A model trained with a learner's
function (``cached(..., share=False)``) is made here with the course's own function.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Pretrained:
    """One model (or family of variants: seeds, settings) a recipe makes, by its cache name."""
    name: str                       # its name in the cache (cached(name, ...)); variants share it
    notebooks: tuple                # the notebooks that use it (their number, "04")
    make: Callable[[str], object]   # mode -> calls the recipe function(s) that build, train and cache it
    fp16: bool = True               # stored in float16 (False where the notebooks' figures would move)
    figures: Callable[[str], dict] | None = None   # mode -> figures the weights reach (into the manifest)


# the recipe modules whose PRETRAINED lists pretrain collects, in the notebooks' order
RECIPES = ("pixels_and_samples", "tokens", "residual_and_bitwise_tokens", "shape_tokens", "chaining_tokens",
           "maskgit", "next_scale", "shape_latents", "limit_of_tokens", "flow_matching_2d", "generation_heads",
           "meanflow", "meanflow_routes", "audio_tokens", "capstone", "capstone_projects")
