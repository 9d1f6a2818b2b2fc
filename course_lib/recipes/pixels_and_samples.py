"""Recipe of notebook 01_pixels_and_samples: PixelCNN on digits, WaveNet on mu-law audio.

Its budgets per mode; the notebook and its benchmark both read them from here.
"""
from __future__ import annotations

from types import SimpleNamespace

from course_lib import runtime

BUDGETS = {
    "quick": dict(channels=32, layers=4, dropout=0.5, batch=64, lr=3e-3, steps=60, cond_steps=30,
                  n_samples=16, wave_channels=16, wave_skip=32, wave_dilations=(1, 2, 4, 8, 16, 32),
                  wave_clips=16, wave_steps=30, wave_batch=8, wave_crop=256, gen_seconds=0.05,
                  gen_clips=4),
    "lecture": dict(channels=64, layers=7, dropout=0.5, batch=64, lr=3e-3, steps=1100, cond_steps=250,
                    n_samples=64, wave_channels=32, wave_skip=64,
                    wave_dilations=(1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8),
                    wave_clips=96, wave_steps=450, wave_batch=8, wave_crop=768, gen_seconds=0.5,
                    gen_clips=4),
    "full": dict(channels=128, layers=12, dropout=0.5, batch=128, lr=2e-3, steps=6000, cond_steps=4000,
                 n_samples=100, wave_channels=64, wave_skip=128,
                 wave_dilations=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512) * 3,
                 wave_clips=512, wave_steps=5000, wave_batch=16, wave_crop=4000, gen_seconds=2.0,
                 gen_clips=8),
}


def budget(mode: str | None = None) -> SimpleNamespace:
    """This notebook's budget in the current (or given) mode: ``budget().steps``."""
    return runtime.pick(BUDGETS, mode)
