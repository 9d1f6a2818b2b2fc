"""Recipe of notebooks 02_tokens, 03_residual_and_bitwise_tokens: 02 tokens and 03 residual and bitwise tokens (VQ-VAE, RVQ codec, bitwise, TiTok, video).

Its budgets per mode; the notebook and its benchmark both read them from here.
"""
from __future__ import annotations

from types import SimpleNamespace

from course_lib import runtime

BUDGETS = {
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
}


def budget(mode: str | None = None) -> SimpleNamespace:
    """This notebook's budget in the current (or given) mode: ``budget().steps``."""
    return runtime.pick(BUDGETS, mode)
