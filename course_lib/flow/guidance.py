"""Classifier-free guidance for a conditional velocity field (Ho & Salimans 2022, "Classifier-Free
Diffusion Guidance"), and the label dropout that trains the unconditional field alongside.

One network learns both v_theta(x, t, y) and v_theta(x, t, null): during training a fraction of the
labels (10% in DiT, MAR and MeanFlow) is replaced by a null class (:func:`drop_labels`, Ho & Salimans
2022 §3.2). At sampling time the two velocities are mixed (:func:`guided_velocity`, eq. 6 written for
a velocity), and :func:`field` wraps a model, labels and a scale into a plain ``v(x, t)`` for the
solvers. Usage::

    v = field(model, y, w=3.0)                      # v(x, t) -> (N, D)
    x1 = integrate(v, x0, steps=50)
"""
from __future__ import annotations

from typing import Callable

import torch

from course_lib import checks


def drop_labels(y: torch.Tensor, p: float, null_class: int, generator: torch.Generator | None = None):
    """Replace each label by ``null_class`` with probability p (label dropout, Ho & Salimans 2022
    §3.2, Algorithm 1). y (N,) int64 labels in [0, null_class] -> (N,) int64."""
    checks.number(p, "label-drop probability p", 0.0, 1.0)
    null_class = checks.positive_int(null_class, "null_class", 0)
    checks.tensor(y, "y", ndim=1, floating=False, shape="(N,) int64 labels")
    checks.index_range(y, "y", null_class + 1)                 # a label past the null class is no class
    checks.generator(generator)
    if p == 0.0:
        return y
    u = torch.rand(y.shape[0], generator=generator) if generator is not None else torch.rand(y.shape[0], device=y.device)
    drop = u.to(y.device) < p                                                    # (N,)
    return torch.where(drop, torch.full_like(y, null_class), y)


def guided_velocity(model: Callable, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor, w: float) -> torch.Tensor:
    """Classifier-free guidance on the velocity (Ho & Salimans 2022, eq. 6, in the parameterisation
    of DiT and MAR):

        v_w = v_u + w (v_c - v_u),   v_c = model(x, t, y),  v_u = model(x, t, None) (the null class).

    w = 1 is the plain conditional model, w = 0 the unconditional one, w > 1 pushes past the
    conditional velocity, away from the unconditional one. (facebookresearch/flow_matching writes
    the same thing as (1 + w') v_c - w' v_u with w' = w - 1.)

    A model with a ``null_class`` attribute gets one batched call of 2N rows (labels y, then the
    null class), as DiT's ``forward_with_cfg`` does (facebookresearch/DiT, ``models.py``); any other
    model two calls. x (N, D), t (N,), y (N,) int64 -> (N, D). A model whose ``null_class`` is None
    (an unconditional :class:`~course_lib.nets.VelocityMLP`) cannot be guided: ValueError naming ``w``.
    """
    checks.number(w, "w")
    if isinstance(y, torch.Tensor) and isinstance(x, torch.Tensor) and x.dim():
        checks.same_rows(y, "y", x.shape[0], "x")             # a (1,) label would broadcast over x
    if w == 1.0:
        return model(x, t, y)
    _check_guidable(model, w)
    null = getattr(model, "null_class", None)
    if null is None:
        v_c, v_u = model(x, t, y), model(x, t, None)                             # (N, D) each
    else:
        both = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, torch.full_like(y, null)]))  # (2N, D)
        v_c, v_u = both.chunk(2)                                                 # (N, D) each
    return v_u + w * (v_c - v_u)


def field(model: Callable, y: torch.Tensor | int | None = None, w: float = 1.0) -> Callable:
    """A velocity field v(x, t) for the solvers and plots: ``model`` with labels ``y`` (a (N,)
    tensor, an int for every point, or None: unconditional) guided with scale ``w`` by
    :func:`guided_velocity`.

    The returned ``v`` carries ``v.model = model``, so that the solvers find the model's device and
    dtype through it (:func:`course_lib.checks.model_device`). ``w != 1`` with labels on a model
    without a null class is a ValueError naming ``w``, raised here rather than at the first step."""
    checks.number(w, "w")
    if isinstance(y, torch.Tensor):
        checks.tensor(y, "y", ndim=1, floating=False, shape="(N,) int64 labels")
    elif y is not None and (isinstance(y, bool) or not isinstance(y, int)):
        raise TypeError(f"y: expected a (N,) int64 tensor of labels, an int or None, got {type(y).__name__} {y!r}")
    null = getattr(model, "null_class", None)
    if isinstance(y, int) and isinstance(null, int) and not 0 <= y <= null:
        raise ValueError(f"y: expected a label in [0, {null}] ({null} = the null class), got {y}")
    if y is not None and w != 1.0:
        _check_guidable(model, w)

    def v(x, t):
        if y is None:
            return model(x, t)
        yy = torch.full((x.shape[0],), int(y), dtype=torch.long, device=x.device) if isinstance(y, int) else y
        if yy.shape[0] != x.shape[0]:
            raise ValueError(f"labels y have {yy.shape[0]} entries but x has {x.shape[0]} points")
        return guided_velocity(model, x, t, yy, w)
    v.model = model
    return v


def _check_guidable(model, w: float) -> None:
    """Guidance with w != 1 mixes in the unconditional velocity: the model needs a null class.
    A model that says it has none (``null_class`` is None) is refused; a plain function without the
    attribute is called with ``y=None`` instead."""
    if hasattr(model, "null_class") and getattr(model, "null_class") is None:
        raise ValueError(f"w: classifier-free guidance with w = {w:g} needs a conditional model with a "
                         f"null class (e.g. MLPConfig(n_classes=...)), but this {type(model).__name__} is "
                         "unconditional: use w=1 (no guidance) or train a conditional model")
