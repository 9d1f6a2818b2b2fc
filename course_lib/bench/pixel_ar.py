"""Benchmark of notebook 01: PixelCNN bits/dim against the histogram and uniform baselines (and the
class-conditional fine-tune), and WaveNet training time, bits per sample and generation speed
against real time. It runs the notebook's own experiments, from
:mod:`course_lib.recipes.pixels_and_samples`, and only adds timing. The models come from the model
cache like the notebook's (shipped weights in lecture mode unless ``COURSE_WEIGHTS=train``): the
training seconds are those of the run that made them (``*_weights_loaded`` says which).

    python -m course_lib.bench pixel_ar --json [--mode lecture] [--skip-wavenet] [--seed 0]

Bar (issue 3): PixelCNN test bits/dim <= 0.75 x the per-pixel histogram's, in lecture mode
(``bars.pixelcnn_le_0.75x_histogram``).
"""
from __future__ import annotations

import argparse

from course_lib.bench import at_most
from course_lib.nets import count_parameters
from course_lib.pixels import pixel_ar as P
from course_lib.pixels import wavenet as W
from course_lib.recipes import pixels_and_samples as recipe

BAR = 0.75              # PixelCNN test bits/dim over the histogram's, at most
N_TIMED = 64            # digits sampled for the timing


def _pixelcnn(B, seed: int) -> dict:
    train, test = recipe.digits()
    base = recipe.baselines(train, test)
    model = recipe.trained_pixelcnn(B, seed=seed, progress=False)      # shipped, cached or trained now
    h = model.history                                                  # the run that made the weights
    bpd = P.evaluate_bpd(model, test.images)
    _, sample_s = recipe.sample_digits(model, N_TIMED, seed=seed)
    cond = recipe.trained_conditional(B, model, seed=seed, progress=False)
    h_cond = cond.history
    return {"pixelcnn_test_bpd": bpd, "pixelcnn_train_bpd": P.evaluate_bpd(model, train.images),
            "histogram_test_bpd": base.histogram_bpd, "uniform_test_bpd": base.uniform_bpd,
            "pixelcnn_over_histogram": bpd / base.histogram_bpd,
            "bars": {"pixelcnn_le_0.75x_histogram": at_most(bpd / base.histogram_bpd, BAR)},
            "train_seconds": h.seconds, "train_steps": len(h.losses),
            "train_steps_per_second": h.steps_per_second, "sample_64_digits_seconds": sample_s,
            "pixelcnn_seconds_per_forward_step": sample_s / 64,
            "pixelcnn_parameters": count_parameters(model),
            "conditional_test_bpd": P.evaluate_bpd(cond, test.images, test.labels),
            "conditional_finetune_seconds": h_cond.seconds, "conditional_finetune_steps": len(h_cond.losses),
            "pixelcnn_weights_loaded": model.from_cache, "conditional_weights_loaded": cond.from_cache}


def _wavenet(B, seed: int) -> dict:
    clips, test_clips = recipe.audio(B, seed=seed)
    q, q_test = W.mu_law_encode(clips.waves), W.mu_law_encode(test_clips.waves)
    model = recipe.trained_wavenet(B, seed=seed, progress=False)
    h = model.history
    gen = recipe.generate_audio(model, q_test, B, seed=seed, progress=False)
    return {"wavenet_train_seconds": h.seconds, "wavenet_train_steps": len(h.losses),
            "wavenet_test_bits_per_sample": W.evaluate_bits(model, q_test),
            "wavenet_marginal_bits_per_sample": W.marginal_bits(q_test, q),
            "wavenet_receptive_field": model.receptive_field,
            "wavenet_samples_per_second": gen.samples_per_second,
            "wavenet_realtime_factor": gen.samples_per_second / recipe.SAMPLE_RATE,
            "wavenet_clips_in_parallel": B.wave.gen_clips,
            "wavenet_naive_samples_per_second": recipe.naive_samples_per_second(model, q_test, B),
            "wavenet_parameters": count_parameters(model), "wavenet_weights_loaded": model.from_cache}


def run(args: list[str]) -> dict:
    p = argparse.ArgumentParser(prog="python -m course_lib.bench pixel_ar")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-wavenet", action="store_true")
    a = p.parse_args(args)
    B = recipe.budget()
    out = _pixelcnn(B, a.seed)
    if not a.skip_wavenet:
        out.update(_wavenet(B, a.seed))
    return out
