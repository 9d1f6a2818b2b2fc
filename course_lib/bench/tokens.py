"""Benchmark of notebooks 02-03: the quality bars of the tokens issue, measured.

``python -m course_lib.bench tokens --json [--mode lecture]`` prints:

* ``vq_perplexity_plain``, ``vq_psnr_plain``: a VQ-VAE on 16x16 shapes (4x4 patches, 64 codes) with
  a learned codebook from a random start and no restarts;
* ``vq_perplexity_ema_restart``, ``vq_psnr_ema_restart``: the same with EMA updates (0.99),
  k-means initialisation and dead-code restart;
* ``rvq_snr_db``: a tiny 8 kHz audio codec (residual VQ, 8 levels x 16 codes, quantizer dropout,
  Mimi's no-quantization rate 0.5, MSE divided by the data variance plus 0.01 x the
  multi-resolution STFT loss) decoded with 1..N quantizers, SNR in dB on held-out clips;
  ``rvq_snr_gain_first4_db`` the mean gain per added quantizer over the first 4, ``rvq_snr_strictly_increasing`` whether every added quantizer raised it;
  ``rvq_snr_continuous_db`` the same decoder fed the unquantized latent (the decoder's ceiling);
* ``rvq_rel_error_ours`` / ``rvq_rel_error_vqpytorch``: |z - z_hat| / |z| of course_lib's ResidualVQ
  and of vector-quantize-pytorch's ResidualVQ (decay 0.99, k-means init, dead-code threshold 2,
  rotation trick off, i.e. paper settings) fitted the same number of steps on the same latent
  vectors (the codec encoder's outputs); ``rvq_seconds_per_step_*`` their time per training step.

The experiments are the notebooks' own, imported from their recipes
(:mod:`course_lib.recipes.tokens`, :mod:`course_lib.recipes.residual_and_bitwise_tokens`): this
module only adds the comparison with vector-quantize-pytorch, timing and the JSON.

Needs the dev extra (``pip install -e .[dev]``) for vector-quantize-pytorch.
"""
from __future__ import annotations

import torch

from course_lib import runtime
from course_lib.recipes import residual_and_bitwise_tokens as recipe03
from course_lib.recipes import tokens as recipe02
from course_lib.tokens import vq


def _require_vqpytorch():
    try:
        import vector_quantize_pytorch  # noqa: F401
    except ImportError as e:
        raise SystemExit("the tokens benchmark compares with vector-quantize-pytorch, which is not installed: "
                         "pip install -e '.[dev]' (or pip install 'vector-quantize-pytorch>=1.20')") from e
    return vector_quantize_pytorch


def _fit_rvq(rvq, z: torch.Tensor, steps: int, batch: int) -> float:
    """Fit a residual quantizer on random batches of the (N, D) vectors z; seconds per step."""
    g = torch.Generator().manual_seed(0)
    rvq.train()

    @torch.no_grad()
    def step(k):
        idx = torch.randint(z.shape[0], (batch,), generator=g).to(z.device)
        rvq(z[idx][None])                                                       # (1, batch, D)
    return runtime.seconds_per_step(step, steps)


def run(args: list[str]) -> dict:
    vqp = _require_vqpytorch()
    B2, B3 = recipe02.budget(), recipe03.budget()
    runtime.seed_everything(0)
    res: dict = {"bars": {}}

    # notebook 02, section 3: codebook collapse and its fixes
    runs = recipe02.collapse_runs(B2, steps=B2.bench_vq_steps, progress=False)
    plain, fixed = runs["plain"].result, runs["EMA + k-means + restart"].result
    res.update(vq_perplexity_plain=plain["perplexity"], vq_perplexity_ema_restart=fixed["perplexity"],
               vq_psnr_plain=plain["psnr"], vq_psnr_ema_restart=fixed["psnr"],
               vq_perplexity_ratio=fixed["perplexity"] / plain["perplexity"])

    # notebook 03, section 2: the residual-VQ audio codec
    clips, test = recipe03.audio_data(B3)
    codec, hist = recipe03.train_codec(B3, clips, steps=B3.codec.bench_steps, progress=False)
    report = recipe03.codec_report(codec, test.waves)
    snrs = report["snr_db"]
    first4 = min(3, len(snrs) - 1)
    res.update(rvq_snr_db=snrs, rvq_snr_gain_first4_db=(snrs[first4] - snrs[0]) / max(1, first4),
               rvq_snr_strictly_increasing=all(b > a for a, b in zip(snrs, snrs[1:])),
               rvq_snr_continuous_db=report["ceiling_db"], rvq_codebook_size=B3.codec.codes,
               rvq_codec_steps_per_second=hist.steps_per_second, rvq_bitrate_kbps=report["kbps"])

    # course_lib's ResidualVQ vs vector-quantize-pytorch's on the codec's latent vectors
    N, K, D = B3.codec.n_quantizers, B3.codec.codes, recipe03.CODEC_DIM
    codec.eval()
    with torch.no_grad():
        z = torch.cat([codec.encode(clips.waves[i:i + 64]) for i in range(0, len(clips.waves), 64)])
        z = z.reshape(-1, D)                                                    # (frames, D)
    steps, batch = B3.codec.bench_compare_steps, 2048
    ours = vq.ResidualVQ(N, K, D, ema=True, decay=0.99, kmeans_init=True, kmeans_iters=10,
                         dead_threshold=2.0).to(z.device)
    theirs = vqp.ResidualVQ(dim=D, num_quantizers=N, codebook_size=K, decay=0.99, kmeans_init=True,
                            kmeans_iters=10, threshold_ema_dead_code=2, rotation_trick=False).to(z.device)
    t_ours = _fit_rvq(ours, z, steps, batch)
    t_theirs = _fit_rvq(theirs, z, steps, batch)
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
