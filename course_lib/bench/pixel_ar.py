"""Benchmark of notebook 01: PixelCNN bits/dim against the histogram and uniform baselines, and
WaveNet training time, bits per sample and generation speed against real time.

    python -m course_lib.bench pixel_ar --json [--mode lecture] [--skip-wavenet] [--seed 0]

Bar (issue 3): PixelCNN test bits/dim <= 0.75 x the per-pixel histogram's, in lecture mode.
"""
from __future__ import annotations

import argparse
import time

import torch

from course_lib import data, runtime
from course_lib.recipes import pixels_and_samples as recipe
from course_lib.pixels import pixel_ar as P
from course_lib.pixels import wavenet as W


def _pixelcnn(B, seed: int) -> dict:
    tr, te = data.digits("train"), data.digits("test")
    hist = P.histogram_bpd(P.histogram_probs(tr.images), te.images)
    runtime.seed_everything(seed)
    model = P.PixelCNN(channels=B.channels, n_layers=B.layers, dropout=B.dropout).to(runtime.device())
    h = P.fit(model, tr.images, B.steps, batch=B.batch, lr=B.lr, seed=seed, progress=False,
              schedule="cosine")
    bpd = P.evaluate_bpd(model, te.images)
    t0 = time.perf_counter()
    P.sample(model, 64, generator=torch.Generator().manual_seed(seed))
    sample_s = time.perf_counter() - t0
    return {"pixelcnn_test_bpd": bpd, "pixelcnn_train_bpd": P.evaluate_bpd(model, tr.images),
            "histogram_test_bpd": hist, "uniform_test_bpd": P.uniform_bpd(17),
            "pixelcnn_over_histogram": bpd / hist, "meets_bar": bool(bpd <= 0.75 * hist),
            "train_seconds": h.seconds, "train_steps": len(h.losses),
            "train_steps_per_second": h.steps_per_second, "sample_64_digits_seconds": sample_s,
            "pixelcnn_seconds_per_forward_step": sample_s / 64,
            "pixelcnn_parameters": sum(p.numel() for p in model.parameters())}


def _wavenet(B, seed: int) -> dict:
    sr = 8000
    clips = data.audio_clips(B.wave_clips, sample_rate=sr, seconds=1.0, seed=seed).waves
    test = data.audio_clips(max(4, B.wave_clips // 8), sample_rate=sr, seconds=1.0, seed=seed + 1000).waves
    q, q_test = W.mu_law_encode(clips), W.mu_law_encode(test)
    runtime.seed_everything(seed)
    model = W.WaveNet(channels=B.wave_channels, skip_channels=B.wave_skip,
                      dilations=B.wave_dilations).to(runtime.device())
    h = W.fit(model, q, B.wave_steps, batch=B.wave_batch, crop=B.wave_crop, seed=seed, progress=False,
              schedule="cosine")
    bits = W.evaluate_bits(model, q_test)
    n_new = int(B.gen_seconds * sr)
    prime = q_test[:B.gen_clips, :model.receptive_field]
    t0 = time.perf_counter()
    model.generate(n_new, prime, generator=torch.Generator().manual_seed(seed))
    gen_s = time.perf_counter() - t0
    steps = prime.shape[1] + n_new - 1                            # forward steps, prime included
    sps = steps / gen_s
    with torch.no_grad():                                         # the naive way: a full pass per sample
        window = q_test[:B.gen_clips, :model.receptive_field]
        t0 = time.perf_counter()
        for _ in range(20):
            model(window)
        naive_step = (time.perf_counter() - t0) / 20
    return {"wavenet_train_seconds": h.seconds, "wavenet_train_steps": len(h.losses),
            "wavenet_test_bits_per_sample": bits, "wavenet_marginal_bits_per_sample": W.marginal_bits(q_test, q),
            "wavenet_receptive_field": model.receptive_field,
            "wavenet_samples_per_second": sps, "wavenet_realtime_factor": sps / sr,
            "wavenet_clips_in_parallel": B.gen_clips,
            "wavenet_naive_samples_per_second": 1.0 / naive_step,
            "wavenet_parameters": sum(p.numel() for p in model.parameters())}


def run(args: list[str]) -> dict:
    p = argparse.ArgumentParser(prog="python -m course_lib.bench pixel_ar")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-wavenet", action="store_true")
    a = p.parse_args(args)
    B = recipe.budget()
    out = {"mode": B.mode, "device": str(runtime.device()), "threads": torch.get_num_threads()}
    t0 = time.perf_counter()
    out.update(_pixelcnn(B, a.seed))
    if not a.skip_wavenet:
        out.update(_wavenet(B, a.seed))
    out["total_seconds"] = time.perf_counter() - t0
    return out
