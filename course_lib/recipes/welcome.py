"""Recipe of notebook 00 (welcome): the data tour and one exercise, no training.

Its budgets per mode, and the one picture it computes: an image "being chained" pixel by pixel.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from course_lib import checks, runtime


@dataclass(frozen=True)
class Budget:
    """Notebook 00's budget in one mode."""
    mode: str                 # the course mode this budget is for
    n_points: int             # points of each 2-D data set shown
    n_audio: int              # audio clips played


BUDGETS = {
    "quick": Budget("quick", n_points=2000, n_audio=2),
    "lecture": Budget("lecture", n_points=5000, n_audio=4),
    "full": Budget("full", n_points=20000, n_audio=8),
}

NOT_YET = -4     # the value of a pixel not generated yet (drawn darker than black, 0)


def budget(mode: str | None = None) -> Budget:
    """This notebook's budget in the current (or given) mode: ``budget().n_points``."""
    return runtime.pick(BUDGETS, mode)


def raster_frames(image: torch.Tensor, counts) -> list[torch.Tensor]:
    """An (H, W) image as raster-order generation would show it after each number of pixels in
    ``counts``: the first k pixels (left to right, top to bottom) kept, the rest :data:`NOT_YET`.
    Returns one (H, W) long tensor per count."""
    checks.tensor(image, "image", ndim=2, shape="(H, W)")
    flat = image.flatten().long()                                               # (H*W,)
    frames = []
    for k in counts:
        shown = torch.full_like(flat, NOT_YET)                                  # (H*W,)
        shown[:k] = flat[:k]
        frames.append(shown.view_as(image))                                     # (H, W)
    return frames
