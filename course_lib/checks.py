"""Argument checks shared by every module: bad input gets a clear error that names the argument,
what was expected and what came.

Each function returns its (possibly converted) argument, so a check reads as one line::

    x = checks.tensor(x, "x1", ndim=2, floating=True)          # (N, D) float tensor
    n = checks.positive_int(n, "steps")
    checks.same_device(model, x, "x1")

TypeError for a wrong type, ValueError for a wrong value or shape, as Python's own functions do.
"""
from __future__ import annotations

import numbers

import torch
from torch import nn


def _shape(x) -> str:
    return str(tuple(x.shape))


def tensor(x, name: str, *, ndim: int | tuple[int, ...] | None = None, dim: int | None = None,
           floating: bool | None = None, dtype: torch.dtype | None = None, shape: str = "") -> torch.Tensor:
    """``x`` must be a tensor; optionally with ``ndim`` dimensions (an int or a tuple of allowed
    counts), last dimension ``dim``, a floating (``floating=True``) or integer (``False``) dtype, or
    exactly ``dtype``. ``shape`` is a description for the message, e.g. ``"(N, 2)"``."""
    want = f" of shape {shape}" if shape else ""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor{want}, got {type(x).__name__}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.dim() not in allowed:
            dims = " or ".join(str(a) for a in allowed)
            raise ValueError(f"{name}: expected a {dims}-D tensor{want}, got shape {_shape(x)}")
    if dim is not None and (x.dim() == 0 or x.shape[-1] != dim):
        raise ValueError(f"{name}: expected last dimension {dim}{want}, got shape {_shape(x)}")
    if dtype is not None and x.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {dtype}, got {x.dtype}")
    if floating is True and not x.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor{want}, got dtype {x.dtype}")
    if floating is False and (x.is_floating_point() or x.is_complex() or x.dtype == torch.bool):
        raise TypeError(f"{name}: expected an integer tensor{want}, got dtype {x.dtype}")
    return x


def index_range(x: torch.Tensor, name: str, high: int, low: int = 0) -> torch.Tensor:
    """Integer tensor ``x`` with every value in ``[low, high)`` (token ids, pixel levels, labels)."""
    tensor(x, name, floating=False)
    if x.numel() and x.device.type != "meta" and (int(x.min()) < low or int(x.max()) >= high):
        raise ValueError(f"{name}: expected values in [{low}, {high - 1}], got values in "
                         f"[{int(x.min())}, {int(x.max())}]")
    return x


def positive_int(value, name: str, minimum: int = 1) -> int:
    """An int (not a bool, a float or a string) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an int >= {minimum}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")
    return int(value)


def number(value, name: str, low: float | None = None, high: float | None = None) -> float:
    """A real number (not a bool or a string), optionally within ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__} {value!r}")
    if value != value:                                       # NaN: every comparison below would pass it
        raise ValueError(f"{name}: expected a number, got NaN")
    if (low is not None and value < low) or (high is not None and value > high):
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise ValueError(f"{name}: expected a number in [{lo}, {hi}], got {value}")
    return float(value)


def rows(x, name: str, minimum: int = 1) -> torch.Tensor:
    """A tensor with at least ``minimum`` rows (its first dimension): a batch of 0 images is a
    mistake to name here, not a ``max()`` of an empty sequence further on."""
    if x.dim() == 0 or x.shape[0] < minimum:
        raise ValueError(f"{name}: expected at least {minimum} row{'s' * (minimum != 1)}, got shape {_shape(x)}")
    return x


def same_rows(x, name: str, n: int, other: str) -> torch.Tensor:
    """``x`` must have ``n`` rows, one per row of ``other`` (ValueError naming both)."""
    if x.dim() == 0 or x.shape[0] != n:
        raise ValueError(f"{name}: expected {n} rows, one per row of {other}, got shape {_shape(x)}")
    return x


def finite(x: torch.Tensor, name: str) -> torch.Tensor:
    """No NaN or infinity in ``x``: where one would flow on silently (a NaN rounds to code 0, a NaN
    image scores as some class), refuse it here, with where it is."""
    if x.device.type == "meta":                              # no values to read (a check's stand-in device)
        return x
    if x.is_floating_point() or x.is_complex():
        bad = ~torch.isfinite(x)
        if bool(bad.any()):
            first = tuple(int(i) for i in bad.nonzero()[0])
            raise ValueError(f"{name}: expected finite values, got {int(bad.sum())} NaN or infinite "
                             f"(the first at index {first}: {x[first].item()})")
    return x


def value_range(x: torch.Tensor, name: str, low: float, high: float, tol: float = 0.0) -> torch.Tensor:
    """A finite floating tensor with every value in ``[low - tol, high + tol]`` (images in [0, 1])."""
    finite(x, name)
    if x.numel() and x.device.type != "meta" and (float(x.min()) < low - tol or float(x.max()) > high + tol):
        raise ValueError(f"{name}: expected values in [{low}, {high}], got values in "
                         f"[{float(x.min()):.4g}, {float(x.max()):.4g}]")
    return x


def binary(x: torch.Tensor, name: str) -> torch.Tensor:
    """Every value of ``x`` is 0 or 1 (bit labels)."""
    if x.numel() and x.device.type != "meta" and not bool(((x == 0) | (x == 1)).all()):
        odd = x[(x != 0) & (x != 1)]
        raise ValueError(f"{name}: expected bits, 0 or 1, got {odd.numel()} other values "
                         f"(e.g. {odd.flatten()[0].item()})")
    return x


def generator(value, name: str = "generator") -> torch.Generator | None:
    """A ``torch.Generator`` or None (an int seed is not one: ``torch.Generator().manual_seed(seed)``)."""
    if value is not None and not isinstance(value, torch.Generator):
        raise TypeError(f"{name}: expected a torch.Generator or None, got {type(value).__name__} {value!r}"
                        + (f" (write torch.Generator().manual_seed({value}))" if isinstance(value, int) else ""))
    return value


_generator = generator                  # the check, under a name the keyword below does not hide


def sampling(*, cfg_scale=1.0, temperature=1.0, steps=None, generator=None) -> tuple:
    """The keywords every ``generate`` and head ``sample`` of the course takes, checked once:
    cfg_scale a number (1 = the plain conditional model), temperature a number >= 0, steps an int
    >= 1 (or None: the sampler's default), generator a ``torch.Generator`` or None. Returns them."""
    return (number(cfg_scale, "cfg_scale"), number(temperature, "temperature", 0.0),
            None if steps is None else positive_int(steps, "steps"), _generator(generator))


def one_of(value, name: str, choices) -> object:
    """``value`` must be one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(repr(c) for c in choices)}, got {value!r}")
    return value


def _module(model) -> nn.Module | None:
    """The module behind ``model``: the module itself, or the ``model`` attribute of a plain
    callable that wraps one (e.g. :func:`course_lib.flow.field`'s ``v(x, t)``); else None."""
    if isinstance(model, nn.Module):
        return model
    inner = getattr(model, "model", None)
    return inner if isinstance(inner, nn.Module) else None


def model_device(model) -> torch.device | None:
    """The device of a module's first parameter or buffer (None for a plain function or an empty
    module). A callable with a ``model`` attribute (:func:`course_lib.flow.field`) counts as that module."""
    module = _module(model)
    if module is not None:
        for t in (*module.parameters(), *module.buffers()):
            return t.device
    return None


def model_dtype(model) -> torch.dtype | None:
    """The dtype of a module's first floating parameter (None for a plain function), with
    ``model`` as in :func:`model_device`."""
    module = _module(model)
    if module is not None:
        for p in module.parameters():
            if p.is_floating_point():
                return p.dtype
    return None


def same_device(model, x: torch.Tensor, name: str) -> torch.Tensor:
    """``x`` must live where ``model`` lives (ValueError otherwise); the message names ``name``
    and both devices. A plain function (no parameters) accepts any device."""
    dev = model_device(model)
    if dev is not None and isinstance(x, torch.Tensor) and x.device != dev:
        raise ValueError(f"{name} is on {x.device} but the model is on {dev}: move one of them "
                         f"(e.g. {name}.to({str(dev)!r}) or model.to({str(x.device)!r}))")
    return x


def _autocast_on(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:                                   # torch < 2.4: no device argument
        return torch.is_autocast_enabled() if device_type == "cuda" else torch.is_autocast_cpu_enabled()


def same_dtype(model, x: torch.Tensor, name: str) -> torch.Tensor:
    """A floating ``x`` must have the model's floating dtype (TypeError otherwise); the message
    names ``name`` and both dtypes. Under ``torch.autocast`` (bf16 activations into fp32 weights
    are its point) any floating dtype passes."""
    dt = model_dtype(model)
    if (dt is not None and isinstance(x, torch.Tensor) and x.is_floating_point() and x.dtype != dt
            and not _autocast_on(x.device.type)):
        raise TypeError(f"{name} has dtype {x.dtype} but the model's weights are {dt}: convert one of "
                        f"them (e.g. {name}.to({dt}) or model.to({x.dtype}))")
    return x


def same_place(model, x: torch.Tensor, name: str) -> torch.Tensor:
    """:func:`same_device` and :func:`same_dtype` in one call: what every model entry point checks
    on its floating input."""
    return same_dtype(model, same_device(model, x, name), name)


def bool_mask(mask, name: str, shape: tuple, described: str = "") -> torch.Tensor:
    """``mask`` must be a bool tensor of exactly ``shape`` (``described`` explains it, e.g.
    ``"z.shape[:-1]"``)."""
    want = f"{tuple(shape)}" + (f" ({described})" if described else "")
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{name}: expected a bool tensor of shape {want}, got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise TypeError(f"{name}: expected a bool tensor of shape {want}, got dtype {mask.dtype}")
    if tuple(mask.shape) != tuple(shape):
        raise ValueError(f"{name}: expected a bool tensor of shape {want}, got shape {_shape(mask)}")
    return mask
