"""Recipe of notebook 00_welcome: the data tour and one exercise, no training.

Its budgets per mode; the notebook and its benchmark both read them from here.
"""
from __future__ import annotations

from types import SimpleNamespace

from course_lib import runtime

BUDGETS = {
    "quick": dict(n_points=2000, n_audio=2),
    "lecture": dict(n_points=5000, n_audio=4),
    "full": dict(n_points=20000, n_audio=8),
}


def budget(mode: str | None = None) -> SimpleNamespace:
    """This notebook's budget in the current (or given) mode: ``budget().steps``."""
    return runtime.pick(BUDGETS, mode)
