"""One training loop for the whole course.

Usage::

    def loss_fn(step):                      # draws its own batch, returns a scalar loss
        x1 = data.toy_2d("spirals", 1024, seed=step)
        return flow.loss(model, x1)
    hist = train(model, loss_fn, steps=recipe.budget().steps, lr=1e-3)
    hist.losses                             # one float per step

The loop shows a tqdm progress bar with the running loss (in a live notebook or a terminal; in an
executed notebook or a log, one line with the final state), clips gradients, keeps an optional EMA of
the weights, runs under bf16 autocast on a CUDA GPU, and stops with the step number if the loss is
NaN or infinite. ``loss_fn`` may also return a dict with a ``"loss"`` entry and other scalars to log.

A GAN's second player is explicit: pass an :class:`Adversary` (the discriminator, its loss and its
optimizer) and each step is two steps, the model's and then the adversary's, on the same batch
(the order of taming-transformers' VQGAN, Esser et al. 2021)::

    adv = Adversary(disc, lambda step: hinge_d_loss(disc(x_real), disc(x_fake.detach())), d_opt)
    train(model, loss_fn, steps, adversary=adv)

A model that several notebooks (or a notebook and its benchmark) share is trained once and kept on
disk with :func:`cached` (:mod:`course_lib.cache`, re-exported here)::

    gpt = cached("gpt", B, build=lambda: GPT(cfg), fit=lambda m: train(m, loss_fn, B.steps))
    # B: the recipe's budget, a frozen dataclass (mode, sizes, steps): its fields are the cache key
"""
from __future__ import annotations

import copy
import math
import sys
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from course_lib import checks, distributed, runtime, weights
from course_lib.cache import cache_path, cached  # noqa: F401  (the disk cache, re-exported)
from course_lib.record import History  # noqa: F401  (what train() returns, re-exported)


class EMA:
    """Exponential moving average of a model's weights: ema = decay * ema + (1 - decay) * w."""

    def __init__(self, model: nn.Module, decay: float = 0.999):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay!r}")
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for e, p in zip(self.model.parameters(), model.parameters()):
            e.lerp_(p.detach(), 1.0 - self.decay)
        for e, b in zip(self.model.buffers(), model.buffers()):
            e.copy_(b)


@dataclass
class Adversary:
    """The second player of an adversarial game, trained by :func:`train` right after each of the
    model's steps.

    model: the discriminator; loss_fn(step) -> its scalar loss (e.g. the hinge loss on the real
    batch and the model's detached output of that step; ``loss_fn`` of the model may leave them
    where this one finds them); optimizer: the discriminator's own; start: the first step at which
    it trains (the model trains alone before). Its loss is logged as ``"adversary_loss"``.
    """
    model: nn.Module
    loss_fn: Callable[[int], torch.Tensor]
    optimizer: torch.optim.Optimizer
    start: int = 0


def _lr_factor(schedule: str, step: int, steps: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.5 * (1 + math.cos(math.pi * progress))  # cosine


def _adversary_step(adv: Adversary, step: int, amp: bool) -> float:
    """One optimizer step of the adversary on ``adv.loss_fn(step)``; returns its loss."""
    adv.model.train()
    with runtime.autocast(amp):
        loss = adv.loss_fn(step)
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
        raise TypeError(f"adversary.loss_fn must return a scalar tensor, got {type(loss).__name__}"
                        f"{tuple(getattr(loss, 'shape', ()))}")
    adv.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    distributed.average_gradients(adv.model.parameters())      # no-op in one process
    adv.optimizer.step()
    return loss.item()


def _device_mismatch(error: RuntimeError, model: nn.Module, step: int) -> ValueError | None:
    """torch's "tensors on different devices" error inside ``loss_fn``, said in the course's words:
    which device the model is on and what torch found (None for any other error)."""
    dev = checks.model_device(model)
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    low = text.lower()
    mismatch = ("same device" in low or "expected device" in low          # matmul, linear, cat, ...
                or ("should be the same" in low and ".cuda." in low))      # conv: "Input type ... weight type"
    if dev is None or not mismatch or isinstance(error, torch.cuda.OutOfMemoryError):
        return None
    return ValueError(f"loss_fn(step={step}): the model is on {dev} but its batch is not (torch says: "
                      f"{text}): make the batch on the model's device, e.g. x.to({str(dev)!r})")


class _FinalLine:
    """The progress bar of a run nobody watches (an executed notebook, a log): nothing while training,
    then one line with the final state, so a saved notebook shows "1100/1100 steps", not "0%"."""

    def __init__(self, total: int, desc: str, stream):
        self.total, self.desc, self.stream, self.n, self.postfix = total, desc, stream, 0, {}
        self.t0 = time.perf_counter()

    def update(self, n: int = 1):
        self.n += n

    def set_postfix(self, **kw):
        self.postfix = kw

    def close(self):
        seconds = time.perf_counter() - self.t0
        rate = f" ({self.n / seconds:.1f} steps/s)" if seconds > 0 and self.n else ""
        extra = "".join(f", {k} {v}" for k, v in self.postfix.items())
        head = f"{self.desc}: " if self.desc else ""
        print(f"{head}{self.n}/{self.total} steps in {seconds:.1f} s{rate}{extra}", file=self.stream, flush=True)


def _progress_bar(steps: int, desc: str):
    """tqdm's widget in a live notebook, its text bar in a terminal, else (an executed notebook under
    ``COURSE_STATIC=1`` or nbclient, a script piped to a file) one line at the end (:class:`_FinalLine`)."""
    from course_lib.viz import live_frontend           # lazily: viz pulls in matplotlib
    if live_frontend():
        from tqdm.auto import tqdm
        return tqdm(total=steps, desc=desc, leave=False, mininterval=0.5)
    if sys.stderr is not None and sys.stderr.isatty():
        from tqdm.std import tqdm
        return tqdm(total=steps, desc=desc, leave=False, mininterval=0.5)
    try:                                                # inside a kernel: the cell's output, not stderr
        from IPython import get_ipython
        in_kernel = getattr(get_ipython(), "kernel", None) is not None
    except ImportError:
        in_kernel = False
    return _FinalLine(steps, desc, sys.stdout if in_kernel else sys.stderr)


def progress_bar(total: int, desc: str = ""):
    """The course's progress bar for any loop of ``total`` steps (a training, a generation): tqdm's
    widget in a live notebook, its text bar in a terminal, one final line in an executed notebook.
    Use ``bar.update()``, ``bar.set_postfix(...)``, ``bar.close()``."""
    return _progress_bar(total, desc)


def train(model: nn.Module, loss_fn: Callable[[int], torch.Tensor | dict], steps: int, *,
          lr: float = 1e-3, optimizer: torch.optim.Optimizer | None = None, weight_decay: float = 0.0,
          schedule: str = "constant", warmup: int = 0, grad_clip: float | None = 1.0,
          ema_decay: float | None = None, amp: bool = True, progress: bool = True,
          desc: str = "training", history: History | None = None,
          adversary: Adversary | None = None) -> History:
    """Train ``model`` for ``steps`` steps of ``loss_fn(step)``; returns a :class:`History`.

    Pass ``history`` from an earlier call to continue it (same EMA, losses appended). With an
    ``adversary``, every step from ``adversary.start`` on is followed by one step of the adversary.
    A batch on another device than the model (torch's "same device" error inside ``loss_fn``) is
    re-raised as a ValueError that names ``loss_fn`` and the model's device.

    Under torchrun (:mod:`course_lib.distributed`) every rank runs this same loop: rank 0's weights
    and buffers are broadcast, each step's gradients are averaged over the ranks after ``backward()``
    (also those of a ``torch.func.jvp`` target), the logged loss is the ranks' mean, and only rank 0
    shows progress. In one process none of this does anything.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps!r}")
    if schedule not in ("constant", "cosine"):
        raise ValueError(f"unknown schedule {schedule!r}: expected 'constant' or 'cosine'")
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer is None:
        if not params:
            raise ValueError("the model has no trainable parameters")
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    hist = history or History()
    if ema_decay is not None and hist.ema is None:
        hist.ema = EMA(model, ema_decay)
    start = len(hist.losses)
    model.train()
    distributed.broadcast_module(model)                     # torchrun: rank 0's start everywhere
    bar = _progress_bar(steps, desc) if progress and distributed.is_main() else None
    t0 = time.perf_counter()
    try:
        for step in range(steps):
            factor = _lr_factor(schedule, step, steps, warmup)
            for g, base in zip(optimizer.param_groups, base_lrs):
                g["lr"] = base * factor
            distributed.broadcast_module(model, parameters=False)   # rank 0's buffers, as DDP
            with runtime.autocast(amp):
                try:
                    out = loss_fn(start + step)
                except RuntimeError as e:
                    clearer = _device_mismatch(e, model, start + step)
                    if clearer is None:
                        raise
                    raise clearer from e
            loss = out["loss"] if isinstance(out, dict) else out
            if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
                raise TypeError(f"loss_fn must return a scalar tensor (or a dict with 'loss'), got "
                                f"{type(loss).__name__}{tuple(getattr(loss, 'shape', ()))}")
            value = distributed.mean(loss.item())           # over the ranks (itself in one process)
            if not math.isfinite(value):
                raise FloatingPointError(f"loss is {value} at step {start + step}: lower the learning "
                                         "rate, check the inputs for NaNs, or clip gradients")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            distributed.average_gradients(params or model.parameters())   # torchrun: DDP's all-reduce
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params or model.parameters(), grad_clip)
            optimizer.step()
            if hist.ema is not None:
                hist.ema.update(model)
            if adversary is not None and start + step >= adversary.start:
                hist.logs.setdefault("adversary_loss", []).append(_adversary_step(adversary, start + step, amp))
            hist.losses.append(value)
            if isinstance(out, dict):
                for k, v in out.items():
                    if k != "loss":
                        hist.logs.setdefault(k, []).append(float(v))
            if bar is not None:
                bar.update(1)
                if step % 25 == 0 or step == steps - 1:
                    bar.set_postfix(loss=f"{sum(hist.losses[-25:]) / len(hist.losses[-25:]):.4f}")
    finally:
        if bar is not None:
            bar.close()
        for g, base in zip(optimizer.param_groups, base_lrs):
            g["lr"] = base
        hist.seconds += time.perf_counter() - t0
        weights.count_steps(len(hist.losses) - start)       # for the manifest of pretrained weights
        model.eval()
    distributed.broadcast_module(model, parameters=False)   # every rank ends with rank 0's buffers
    return hist
