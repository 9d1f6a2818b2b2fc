"""Benchmark of notebooks 02-03: the quality bars of the tokens issue, measured.

``python -m course_lib.bench tokens --json [--mode lecture]`` prints:

* ``vq_perplexity_plain``, ``vq_psnr_plain``: a VQ-VAE on 16x16 shapes (4x4 patches, 64 codes) with
  a learned codebook from a random start and no restarts;
* ``vq_perplexity_ema_restart``, ``vq_psnr_ema_restart``: the same with EMA updates (0.99),
  k-means initialisation and dead-code restart;
* ``rvq_snr_db``: a tiny 8 kHz audio codec (residual VQ, 8 levels x 16 codes, quantizer dropout,
  Mimi's no-quantization rate 0.5, MSE divided by the data variance plus 0.01 x the
  multi-resolution STFT loss) decoded with 1..N quantizers, SNR in dB on held-out clips; ``rvq_snr_gain_first4_db`` the mean gain per added quantizer over
  the first 4, ``rvq_snr_strictly_increasing`` whether every added quantizer raised it;
  ``rvq_snr_continuous_db`` the same decoder fed the unquantized latent (the decoder's ceiling);
* ``rvq_rel_error_ours`` / ``rvq_rel_error_vqpytorch``: |z - z_hat| / |z| of course_lib's ResidualVQ
  and of vector-quantize-pytorch's ResidualVQ (decay 0.99, k-means init, dead-code threshold 2,
  rotation trick off, i.e. paper settings) fitted the same number of steps on the same latent
  vectors (the codec encoder's outputs); ``rvq_seconds_per_step_*`` their time per training step.

Needs the dev extra (``pip install -e .[dev]``) for vector-quantize-pytorch.
"""
from __future__ import annotations

import math
import time

import torch

from course_lib import data, metrics, runtime
from course_lib.recipes import tokens as recipe
from course_lib.tokens import vq as quantize
from course_lib.tokens import tokenizers


def _require_vqpytorch():
    try:
        import vector_quantize_pytorch  # noqa: F401
    except ImportError as e:
        raise SystemExit("the tokens benchmark compares with vector-quantize-pytorch, which is not "
                         "installed: pip install -e '.[dev]' (or pip install 'vector-quantize-pytorch>=1.20')") from e
    return vector_quantize_pytorch


def _vq_run(B, ema_restart: bool, steps: int, dev) -> dict:
    shapes = data.shapes(B.n_train, size=16, seed=0)
    test = data.shapes(512, size=16, seed=1)
    torch.manual_seed(0)
    kw = dict(ema=True, kmeans_init=True, dead_threshold=0.1 * B.batch * 16 / 64) if ema_restart else {}
    model = tokenizers.ImageTokenizer(3, B.hidden, 8, 2, quantizer=quantize.VectorQuantizer(64, 8, **kw)).to(dev)
    tokenizers.fit(model, tokenizers.sample_batch(shapes.images, B.batch), steps, lr=2e-3, progress=False)
    return tokenizers.evaluate(model, test.images)


def _fit_rvq(rvq, call, z: torch.Tensor, steps: int, batch: int) -> float:
    g = torch.Generator().manual_seed(0)
    rvq.train()
    t0 = time.perf_counter()
    for _ in range(steps):
        idx = torch.randint(z.shape[0], (batch,), generator=g).to(z.device)
        with torch.no_grad():
            call(rvq, z[idx][None])                                             # (1, batch, D)
    return (time.perf_counter() - t0) / steps


def run(args: list[str]) -> dict:
    vqp = _require_vqpytorch()
    B = recipe.budget()
    dev = runtime.device()
    runtime.seed_everything(0)
    res: dict = {"mode": B.mode}

    plain = _vq_run(B, False, B.bench_vq_steps, dev)
    fixed = _vq_run(B, True, B.bench_vq_steps, dev)
    res.update(vq_perplexity_plain=plain["perplexity"], vq_perplexity_ema_restart=fixed["perplexity"],
               vq_psnr_plain=plain["psnr"], vq_psnr_ema_restart=fixed["psnr"],
               vq_perplexity_ratio=fixed["perplexity"] / plain["perplexity"])

    # the residual-VQ audio codec of notebook 03
    clips = data.audio_clips(B.n_clips, sample_rate=8000, seconds=B.seconds, seed=0)
    test = data.audio_clips(32, sample_rate=8000, seconds=B.seconds, seed=1)
    torch.manual_seed(0)
    N, K, D = B.n_quantizers, B.codec_codes, 8
    rvq = quantize.ResidualVQ(N, K, D, quantizer_dropout=True, no_quantization_rate=0.5, ema=True,
                              kmeans_init=True, dead_threshold=1.0)
    codec = tokenizers.AudioTokenizer(hidden=16, latent_dim=D, strides=(4, 4, 2), quantizer=rvq).to(dev)
    hist = tokenizers.fit(codec, tokenizers.sample_batch(clips.waves, 16), B.bench_codec_steps, lr=2e-3,
                          schedule="cosine", data_variance=clips.waves.var().item(), stft_weight=0.01,
                          progress=False)
    snrs = [tokenizers.evaluate(codec, test.waves, n_q=n)["snr_db"] for n in range(1, N + 1)]
    codec.eval()
    with torch.no_grad():
        cont = codec.decode(codec.encoder(test.waves[:, None]), like=test.waves)
    res.update(rvq_snr_db=snrs, rvq_snr_gain_first4_db=(snrs[min(3, N - 1)] - snrs[0]) / max(1, min(3, N - 1)),
               rvq_snr_strictly_increasing=all(b > a for a, b in zip(snrs, snrs[1:])),
               rvq_snr_continuous_db=metrics.snr_db(test.waves, cont), rvq_codebook_size=K,
               rvq_codec_steps_per_second=hist.steps_per_second,
               rvq_bitrate_kbps=[codec.frame_rate(8000) * n * math.log2(K) / 1000 for n in range(1, N + 1)])

    # course_lib's ResidualVQ vs vector-quantize-pytorch's on the same latent vectors
    codec.eval()
    with torch.no_grad():
        z = torch.cat([codec.encoder(clips.waves[i:i + 64, None]) for i in range(0, len(clips), 64)])
        z = z.movedim(1, -1).reshape(-1, D)                                       # (frames, D)
    steps, batch = max(50, B.bench_vq_steps // 2), 2048
    ours = quantize.ResidualVQ(N, K, D, ema=True, decay=0.99, kmeans_init=True, kmeans_iters=10,
                               dead_threshold=2.0).to(dev)
    theirs = vqp.ResidualVQ(dim=D, num_quantizers=N, codebook_size=K, decay=0.99, kmeans_init=True,
                            kmeans_iters=10, threshold_ema_dead_code=2, rotation_trick=False).to(dev)
    t_ours = _fit_rvq(ours, lambda m, x: m(x), z, steps, batch)
    t_theirs = _fit_rvq(theirs, lambda m, x: m(x), z, steps, batch)
    ours.eval()
    theirs.eval()
    with torch.no_grad():
        zq_ours = ours(z[None]).z_q[0]
        zq_theirs = theirs(z[None])[0][0]
    norm = z.norm().item()
    res.update(rvq_rel_error_ours=(zq_ours - z).norm().item() / norm,
               rvq_rel_error_vqpytorch=(zq_theirs - z).norm().item() / norm,
               rvq_seconds_per_step_ours=t_ours, rvq_seconds_per_step_vqpytorch=t_theirs,
               rvq_compare_steps=steps, rvq_compare_vectors=int(z.shape[0]),
               vqpytorch_version=getattr(vqp, "__version__", None) or _version("vector-quantize-pytorch"))
    res["rvq_rel_error_ratio"] = res["rvq_rel_error_ours"] / res["rvq_rel_error_vqpytorch"]
    return res


def _version(dist: str):
    try:
        from importlib.metadata import version
        return version(dist)
    except Exception:
        return None
