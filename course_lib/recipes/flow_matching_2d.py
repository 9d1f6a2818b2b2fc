"""Recipe of notebook 08_flow_matching_2d: 08 flow matching in 2-D.

Its budgets per mode; the notebook and its benchmark both read them from here.
"""
from __future__ import annotations

from types import SimpleNamespace

from course_lib import runtime

BUDGETS = {
    "quick": dict(hidden=128, depth=3, batch=512, steps=800, lr=3e-3, n_eval=2048,
                  reflow_pairs=4096, reflow_teacher_steps=8, reflow_steps=300, ot_steps=400, ot_block=128,
                  cond_steps=600, guidance=3.0, digits_hidden=256, digits_steps=800, digits_batch=128,
                  regress_steps=150, n_frames=6, eval_seeds=1),
    "lecture": dict(hidden=256, depth=4, batch=1024, steps=5000, lr=2e-3, n_eval=8192,
                    reflow_pairs=20000, reflow_teacher_steps=32, reflow_steps=1500, ot_steps=1000, ot_block=128,
                    cond_steps=1200, guidance=3.0, digits_hidden=512, digits_steps=2000, digits_batch=256,
                    regress_steps=400, n_frames=11, eval_seeds=1),
    "full": dict(hidden=512, depth=5, batch=4096, steps=20000, lr=1e-3, n_eval=16384,
                 reflow_pairs=100000, reflow_teacher_steps=64, reflow_steps=10000, ot_steps=20000, ot_block=256,
                 cond_steps=10000, guidance=3.0, digits_hidden=1024, digits_steps=20000, digits_batch=512,
                 regress_steps=1000, n_frames=21, eval_seeds=3),
}


def budget(mode: str | None = None) -> SimpleNamespace:
    """This notebook's budget in the current (or given) mode: ``budget().steps``."""
    return runtime.pick(BUDGETS, mode)
