"""Where the course runs: device, mode, step budgets, seeding, autocast.

Everything that depends on how much compute a learner has is decided here, in one place:

* the **device**: ``cuda``, then ``mps``, then ``cpu``; override with ``COURSE_DEVICE=cpu`` (or
  :func:`set_device`);
* the **mode**: ``COURSE_MODE`` = ``quick`` (CI, a first skim, well under 90 s a notebook on 2 CPU
  cores), ``lecture`` (default: a laptop CPU, about 5 minutes a notebook, results that look right)
  or ``full`` (a GPU: bigger models, longer training); override with :func:`set_mode`;
* the **budgets**: every step count and model size of every notebook lives in :data:`BUDGETS`
  and is read with :func:`budget`, so a notebook never hard-codes "3000 steps".

Usage::

    from course_lib import runtime
    runtime.describe()                 # device, mode, torch version, threads
    B = runtime.budget("flow2d")       # e.g. B.steps, B.batch for the current mode
"""
from __future__ import annotations

import contextlib
import os
import random
from types import SimpleNamespace

import numpy as np
import torch

MODES = ("quick", "lecture", "full")
DEFAULT_MODE = "lecture"

# Every step/size budget of the course, per notebook, per mode. Keys are free per notebook; a
# notebook reads them as attributes: ``budget("flow2d").steps``. Keep quick mode well under 90 s a
# notebook on 2 CPU cores and lecture mode about 5 minutes (see shared tooling notes for rates).
BUDGETS: dict[str, dict[str, dict]] = {
    # 00 welcome: the data tour and one exercise, no training
    "welcome": {
        "quick": dict(n_points=2000, n_audio=2),
        "lecture": dict(n_points=5000, n_audio=4),
        "full": dict(n_points=20000, n_audio=8),
    },
    # 01 pixels and samples (PixelCNN, WaveNet)
    "pixel_ar": {
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
    },
    # 02 and 03 tokens (VQ-VAE, RVQ codec, bitwise, TiTok, video tokens)
    "tokens": {
        "quick": dict(n_train=1024, batch=32, hidden=32, toy_steps=100, vq_steps=60, sweep_steps=30,
                      clf_steps=60, loss_steps=40, photo_size=64, photo_steps=50, n_clips=64,
                      seconds=0.5, codec_steps=60, codec_codes=16, n_quantizers=8, bits_steps=50, titok_steps=30,
                      titok_tokens=(1, 4, 16), video_steps=30, bench_codec_steps=100, bench_vq_steps=100),
        "lecture": dict(n_train=4096, batch=64, hidden=48, toy_steps=300, vq_steps=600, sweep_steps=300,
                        clf_steps=300, loss_steps=400, photo_size=96, photo_steps=400, n_clips=512,
                        seconds=0.5, codec_steps=800, codec_codes=16, n_quantizers=8, bits_steps=300, titok_steps=900,
                        titok_tokens=(1, 2, 4, 8, 16), video_steps=300, bench_codec_steps=1500,
                        bench_vq_steps=800),
        "full": dict(n_train=16384, batch=128, hidden=96, toy_steps=1000, vq_steps=4000, sweep_steps=2000,
                     clf_steps=1000, loss_steps=3000, photo_size=160, photo_steps=3000, n_clips=2048,
                     seconds=1.0, codec_steps=8000, codec_codes=16, n_quantizers=8, bits_steps=3000, titok_steps=3000,
                     titok_tokens=(1, 2, 4, 8, 16, 32), video_steps=2000, bench_codec_steps=8000,
                     bench_vq_steps=4000),
    },
    # 08 flow matching in 2-D
    "flow2d": {
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
    },
}

_state = {"mode": None, "device": None}


def _check_mode(name: str) -> str:
    if name not in MODES:
        raise ValueError(f"unknown course mode {name!r}: expected one of {', '.join(MODES)}")
    return name


def mode() -> str:
    """The current course mode: set_mode() if called, else $COURSE_MODE, else 'lecture'."""
    if _state["mode"] is not None:
        return _state["mode"]
    return _check_mode(os.environ.get("COURSE_MODE", DEFAULT_MODE).strip().lower() or DEFAULT_MODE)


def set_mode(name: str) -> str:
    """Set the mode for this process (a notebook's first cell may call this)."""
    _state["mode"] = _check_mode(str(name).strip().lower())
    return _state["mode"]


def budget(notebook: str, mode_name: str | None = None) -> SimpleNamespace:
    """The budget of ``notebook`` in the current (or given) mode, as attributes."""
    if notebook not in BUDGETS:
        raise KeyError(f"no budget for {notebook!r}: expected one of {sorted(BUDGETS)}")
    m = _check_mode(mode_name) if mode_name is not None else mode()
    return SimpleNamespace(mode=m, **BUDGETS[notebook][m])


def _auto_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def device() -> torch.device:
    """The device every tensor of the course lives on: set_device(), $COURSE_DEVICE, else auto."""
    if _state["device"] is not None:
        return _state["device"]
    wanted = os.environ.get("COURSE_DEVICE", "").strip()
    return _validate_device(wanted) if wanted else _auto_device()


def _validate_device(name) -> torch.device:
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"unknown device {name!r}: expected 'cpu', 'cuda', 'cuda:N' or 'mps'") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but torch sees no CUDA GPU here")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device {name!r} asked for, but MPS is not available here")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device {name!r}: expected 'cpu', 'cuda' or 'mps', got type {dev.type!r}")
    return dev


def set_device(name: str | torch.device | None) -> torch.device:
    """Force a device (``None`` goes back to automatic choice)."""
    _state["device"] = None if name is None else _validate_device(name)
    return device()


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed python, numpy and torch (all devices); returns a torch.Generator seeded the same."""
    if not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def autocast(enabled: bool = True):
    """bf16 autocast on a CUDA GPU; a no-op elsewhere (bf16 on these CPUs is ~100x slower)."""
    dev = device()
    if enabled and dev.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def describe() -> dict:
    """Print and return where the course runs: device, mode, torch version, CPU threads."""
    dev = device()
    info = {
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else dev.type,
        "mode": mode(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    print(f"device {info['device']} ({info['device_name']}) · mode {info['mode']} · "
          f"torch {info['torch']} · {info['threads']} CPU threads")
    return info
