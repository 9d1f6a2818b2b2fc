"""Drawing one value from a categorical distribution given by logits, with temperature and top-k.

Every chaining model of the course ends each step the same way: a vector of V logits per position,
turned into one drawn index. PixelCNN (notebook 01) draws a pixel level, WaveNet (notebook 01) a
mu-law level, the token GPT (notebook 04) a token id. This module is that last step, written once::

    p_i = softmax(l / T)_i  over the k largest logits l_i (the others get probability 0)

* **temperature** T > 0 divides the logits: T < 1 sharpens the distribution (as T -> 0 it becomes
  the argmax), T > 1 flattens it (as T -> inf it becomes uniform);
* **top-k** keeps only the k most likely values, so a rare, broken value is never drawn
  (the "top-k random sampling" of Fan et al. 2018, "Hierarchical Neural Story Generation"; the
  filter of Karpathy's nanoGPT ``model.py`` ``generate``, except that exactly k values survive
  even when logits tie). ``top_k=1`` is greedy decoding.

The draw is ``torch.multinomial`` on the device of ``generator`` (the CPU when none is given), so a
seeded CPU generator gives the same values whichever device the model runs on.

Usage::

    logits = model(x)[:, :, i, j]                            # (N, V)
    idx = sample_logits(logits, temperature=0.8, top_k=5, generator=g)   # (N,) int64
"""
from __future__ import annotations

import numbers

import torch

from course_lib import checks


def top_k_filter(logits: torch.Tensor, k: int | None) -> torch.Tensor:
    """Keep the ``k`` largest logits along the last dimension, set the others to -inf.

    logits: (..., V) float. ``k=None`` or ``k >= V`` returns ``logits`` unchanged. Exactly ``k``
    values survive per row (ties broken by :func:`torch.topk`). Returns (..., V)."""
    if k is None:
        return logits
    k = checks.positive_int(k, "top_k")
    if k >= logits.shape[-1]:
        return logits
    vals, idx = torch.topk(logits, k, dim=-1)                       # (..., k) each
    return torch.full_like(logits, float("-inf")).scatter(-1, idx, vals)   # (..., V)


def _temperature(temperature, batch_shape: torch.Size, device: torch.device):
    """A float, or a tensor (..., 1) that broadcasts against logits (..., V); every value > 0."""
    if isinstance(temperature, torch.Tensor):
        if temperature.shape != batch_shape:                        # one per row: the common case, fast
            fits = temperature.dim() <= len(batch_shape)
            if fits and temperature.numel() != 1:
                try:
                    torch.broadcast_shapes(temperature.shape, batch_shape)
                except RuntimeError:
                    fits = False
            if not fits:
                raise ValueError(f"temperature: a tensor must broadcast to the logits' leading shape "
                                 f"{tuple(batch_shape)} (one per row), got shape {tuple(temperature.shape)}")
        if temperature.numel() and not float(temperature.min()) > 0:
            raise ValueError(f"temperature: expected every value > 0, got {temperature.tolist()}")
        return temperature.to(device, torch.float32).unsqueeze(-1)  # (..., 1)
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real):
        raise TypeError(f"temperature: expected a number > 0 or a tensor, got "
                        f"{type(temperature).__name__} {temperature!r}")
    if not 0 < temperature < float("inf"):
        raise ValueError(f"temperature: expected a number > 0 (use top_k=1 for greedy), got {temperature}")
    return float(temperature)


def sample_logits(logits: torch.Tensor, temperature: float | torch.Tensor = 1.0, top_k: int | None = None,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one index per row of ``logits`` from softmax(top_k_filter(logits) / temperature).

    Args:
        logits: (..., V) float, unnormalised scores over V values.
        temperature: a number > 0, or a tensor of values > 0 that broadcasts to the leading shape
            ``(...)`` (e.g. (N,): one temperature per clip).
        top_k: keep only the k most likely values (None: all V).
        generator: a seeded ``torch.Generator``; the draw happens on its device (CPU by default).

    Returns:
        (...) int64 indices in 0..V-1, on the device of ``logits``.
    """
    checks.tensor(logits, "logits", floating=True, shape="(..., V)")
    if logits.dim() == 0 or logits.shape[-1] == 0:
        raise ValueError(f"logits: expected shape (..., V) with V >= 1, got {tuple(logits.shape)}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator: expected a torch.Generator or None, got {type(generator).__name__}")
    if logits.device.type != "meta" and bool(torch.isnan(logits).any()):   # -inf is a filtered value; NaN is not
        raise ValueError(f"logits: expected numbers, got {int(torch.isnan(logits).sum())} NaN (a NaN model output?)")
    draw_on = generator.device if generator is not None else torch.device("cpu")
    *batch, v = logits.shape
    temp = _temperature(temperature, torch.Size(batch), draw_on)
    z = top_k_filter(logits.float().to(draw_on), top_k) / temp        # (..., V)
    probs = torch.softmax(z, dim=-1).reshape(-1, v)                  # (rows, V)
    idx = torch.multinomial(probs, 1, generator=generator)[:, 0]     # (rows,)
    return idx.reshape(batch).to(logits.device)                      # (...)
