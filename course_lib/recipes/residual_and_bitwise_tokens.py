"""Recipe of notebook 03_residual_and_bitwise_tokens: a residual-VQ audio codec, bitwise tokens
(FSQ, LFQ, BSQ) against VQ at equal bits, 1-D tokens (TiTok) and video tokens.

Its budgets per mode and its experiments: :func:`train_codec` and :func:`codec_report` (section 2,
and ``course_lib.bench tokens``), :func:`equal_bits_quantizers` and :func:`train_image` (section 3),
:func:`train_titok` (section 4), :func:`train_video` (section 5). Every run seeds its weights and
draws its own batches, so a figure does not depend on which cells ran before.

Every model goes through the model cache (:func:`course_lib.train.cached`), keyed by the whole budget
and the model's variant (quantizer, steps): in lecture mode the notebook loads the weights the course
ships (``PRETRAINED``, ``make pretrain``); the loss curve comes back as ``model.history`` and the
figures are measured again on the loaded model.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import torch

from course_lib import checks, data, metrics, runtime, train
from course_lib.recipes.registry import Pretrained
from course_lib.tokens import bitwise, tokenizers, vq
from course_lib.tokens.titok import TiTok


@dataclass(frozen=True)
class Codec:
    """Section 2's budget: the tiny residual-VQ audio codec."""
    clips: int                # training clips
    seconds: float            # length of each clip
    steps: int                # training steps
    codes: int                # codes per level
    n_quantizers: int         # levels
    bench_steps: int          # the bench's training steps
    bench_compare_steps: int  # the bench's steps per residual quantizer compared


@dataclass(frozen=True)
class TiTokBudget:
    """Section 4's budget: 1-D tokens (TiTok)."""
    steps: int                # training steps
    tokens: tuple             # token counts it is decoded from


@dataclass(frozen=True)
class Budget:
    """Notebook 03's budget in one mode."""
    mode: str                 # the course mode this budget is for
    n_train: int              # training shapes / video clips (seed 0)
    batch: int                # images per step
    hidden: int               # the tokenizers' channels
    bits_steps: int           # steps per quantizer of the equal-bits comparison
    video_steps: int          # the video tokenizer's steps
    codec: Codec              # section 2
    titok: TiTokBudget        # section 4


BUDGETS = {
    "quick": Budget("quick", n_train=1024, batch=32, hidden=32, bits_steps=50, video_steps=30,
                    codec=Codec(clips=64, seconds=0.5, steps=60, codes=16, n_quantizers=8, bench_steps=100,
                                bench_compare_steps=50),
                    titok=TiTokBudget(steps=30, tokens=(1, 4, 16))),
    "lecture": Budget("lecture", n_train=4096, batch=64, hidden=48, bits_steps=300, video_steps=300,
                      codec=Codec(clips=512, seconds=0.5, steps=800, codes=16, n_quantizers=8, bench_steps=1500,
                                  bench_compare_steps=400),
                      titok=TiTokBudget(steps=900, tokens=(1, 2, 4, 8, 16))),
    "full": Budget("full", n_train=16384, batch=128, hidden=96, bits_steps=3000, video_steps=2000,
                   codec=Codec(clips=2048, seconds=1.0, steps=8000, codes=16, n_quantizers=8, bench_steps=8000,
                               bench_compare_steps=2000),
                   titok=TiTokBudget(steps=3000, tokens=(1, 2, 4, 8, 16, 32))),
}

SAMPLE_RATE = 8000            # the codec's synthetic clips
CODEC_DIM = 8                 # numbers per audio frame
SIZE = 16                     # shapes images and video frames are 16 x 16


def budget(mode: str | None = None) -> Budget:
    """This notebook's budget in the current (or given) mode: ``budget().codec_steps``."""
    return runtime.pick(BUDGETS, mode)


# ----------------------------------------------------------------------------- 2. the audio codec

def audio_data(B: Budget) -> tuple[SimpleNamespace, SimpleNamespace]:
    """(B.codec.clips training clips, 32 held-out clips) of B.codec.seconds at 8 kHz: notes, chords, chirps."""
    return (data.audio_clips(B.codec.clips, sample_rate=SAMPLE_RATE, seconds=B.codec.seconds, seed=0),
            data.audio_clips(32, sample_rate=SAMPLE_RATE, seconds=B.codec.seconds, seed=1))


def train_codec(B: Budget, clips, steps: int | None = None,
                progress: bool = True) -> tuple[tokenizers.AudioTokenizer, tokenizers.History]:
    """The tiny residual-VQ codec of section 2, trained ``steps`` (default B.codec.steps) steps on
    batches of 16 of ``clips.waves`` (B, L) (``audio_data(B)[0]``: the cache key is the budget, not
    the clips), or loaded (model cache, shipped weights). Returns (codec, the History of its run).

    Encoder strides 4 x 4 x 2 (250 frames/s of 8 numbers); B.codec.n_quantizers levels of B.codec.codes
    codes, EMA, k-means init, restart under an EMA count of 1; quantizer dropout (SoundStream) and
    Mimi's no-quantization rate 0.5; loss = MSE / Var(data) + 0.01 x multi-resolution STFT loss,
    cosine schedule from lr 2e-3.
    """
    steps = B.codec.steps if steps is None else checks.positive_int(steps, "steps")

    def build():
        torch.manual_seed(0)
        rvq = vq.ResidualVQ(B.codec.n_quantizers, B.codec.codes, CODEC_DIM, quantizer_dropout=True,
                            no_quantization_rate=0.5, ema=True, kmeans_init=True, dead_threshold=1.0)
        return tokenizers.AudioTokenizer(hidden=16, latent_dim=CODEC_DIM, strides=(4, 4, 2),
                                         quantizer=rvq).to(runtime.device())

    def fit(codec):
        return tokenizers.fit(codec, tokenizers.sample_batch(clips.waves, 16), steps, lr=2e-3, schedule="cosine",
                              data_variance=clips.waves.var().item(), stft_weight=0.01, desc="audio codec",
                              progress=progress)

    codec = train.cached("audio-rvq-codec", dict(budget=B, steps=steps), build, fit, verbose=progress)
    return codec, codec.history


@torch.no_grad()
def codec_report(codec: tokenizers.AudioTokenizer, waves: torch.Tensor) -> dict:
    """The codec decoded with 1..N quantizers on held-out ``waves`` (B, L).

    Returns {"snr_db": waveform SNR per number of levels, "latent_snr_db": the quantizer's own SNR
    on the encoder's latent vectors, "ceiling_db": the decoder fed the unquantized latent,
    "kbps": bitrate per number of levels}.
    """
    levels = range(1, codec.quantizer.n_quantizers + 1)
    snr = [tokenizers.evaluate(codec, waves, n_levels=n)["snr_db"] for n in levels]
    with runtime.evaluating(codec):
        z = codec.encode(waves)                                                 # (clips, frames, D)
        latent = [metrics.snr_db(z, codec.quantize(z, n_levels=n).z_q) for n in levels]
        ceiling = metrics.snr_db(waves, codec.decode(z))
    fps = codec.frame_rate(SAMPLE_RATE)
    return {"snr_db": snr, "latent_snr_db": latent, "ceiling_db": ceiling,
            "kbps": [fps * codec.quantizer.bits_per_vector(n) / 1000 for n in levels]}


# ----------------------------------------------------------------------------- 3-5. images and clips

def shapes_data(B: Budget) -> tuple[SimpleNamespace, SimpleNamespace]:
    """(training set of B.n_train captioned 16x16 shapes, 512 held-out ones), as in notebook 02."""
    return data.shapes(B.n_train, size=SIZE, seed=0), data.shapes(512, size=SIZE, seed=1)


def equal_bits_quantizers(B: Budget) -> dict:
    """Section 3: name -> factory of an 8-bit token quantizer (VQ with 256 codes; FSQ (8, 6, 5);
    LFQ and BSQ with 8 bits; BSQ with the per-bit entropy). The VQ restarts are sized for the
    B.batch x 16 tokens of a batch of 4x4-patch tokenizers."""
    return {
        "VQ, 256 codes": lambda: vq.ema_vq(256, 8, vectors_per_batch=B.batch * 16),
        "FSQ (8, 6, 5)": lambda: bitwise.FSQ([8, 6, 5]),
        "LFQ, 8 bits": lambda: bitwise.LFQ(8),
        "BSQ, 8 bits": lambda: bitwise.BSQ(8),
        "BSQ, per-bit entropy": lambda: bitwise.BSQ(8, group_size=1),
    }


def train_image(B: Budget, quantizer: str, shapes, progress: bool = True) -> tokenizers.Run:
    """The 4x4-patch image tokenizer around the quantizer named ``quantizer`` (a key of
    :func:`equal_bits_quantizers`; weights seeded), trained B.bits_steps steps on ``shapes`` =
    (train, test) with the MSE divided by the data variance (or loaded), evaluated on test."""
    kinds = equal_bits_quantizers(B)
    if quantizer not in kinds:
        raise ValueError(f"quantizer: expected one of {', '.join(map(repr, kinds))}, got {quantizer!r}")
    train_set, test = shapes

    def build():
        torch.manual_seed(0)
        q = kinds[quantizer]()
        return tokenizers.ImageTokenizer(3, B.hidden, q.dim, 2, quantizer=q).to(runtime.device())

    def fit(model):
        return tokenizers.fit(model, tokenizers.sample_batch(train_set.images, B.batch), B.bits_steps, lr=2e-3,
                              data_variance=train_set.images.var().item(), desc=quantizer, progress=progress)

    model = train.cached("equal-bits-tokenizer", dict(budget=B, quantizer=quantizer), build, fit, verbose=progress)
    return tokenizers.Run(model, model.history, tokenizers.evaluate(model, test.images))


def train_titok(B: Budget, shapes, progress: bool = True) -> tuple[TiTok, tokenizers.History, dict]:
    """Section 4: one TiTok with K = max(B.titok.tokens) latents of 8 numbers (VQ, 256 codes) and
    tail drop, trained B.titok.steps steps (warm-up 30, cosine, MSE / Var(data)) or loaded. Returns
    (model, history, {k: evaluate(...) decoding from the first k tokens}) for k in B.titok.tokens."""
    train_set, test = shapes
    K_max = max(B.titok.tokens)

    def build():
        torch.manual_seed(0)
        q = vq.ema_vq(256, 8, vectors_per_batch=B.batch * K_max)
        return TiTok(image_size=SIZE, patch=4, n_tokens=K_max, token_dim=8, d_model=64, n_layer=2, quantizer=q,
                     tail_drop=True).to(runtime.device())

    def fit(titok):
        return tokenizers.fit(titok, tokenizers.sample_batch(train_set.images, B.batch), B.titok.steps, lr=2e-3,
                              warmup=30, schedule="cosine", data_variance=train_set.images.var().item(),
                              desc=f"TiTok, up to {K_max} tokens", progress=progress)

    titok = train.cached("titok-shapes", B, build, fit, verbose=progress)
    return titok, titok.history, {k: tokenizers.evaluate(titok, test.images, n_tokens=k) for k in B.titok.tokens}


def video_data(B: Budget) -> tuple[torch.Tensor, torch.Tensor]:
    """(B.n_train training clips, 64 held-out ones) of 2 frames of 16x16 moving shapes (B, T, C, H, W)."""
    return (data.moving_shapes(B.n_train, frames=2, size=SIZE, seed=0),
            data.moving_shapes(64, frames=2, size=SIZE, seed=1))


def train_video(B: Budget, clips, test, progress: bool = True) -> tokenizers.Run:
    """Section 5: tube tokens of 2 frames x 4 x 4 pixels (VQ, 256 codes), trained B.video_steps
    steps on batches of ``clips`` (``video_data(B)[0]``) or loaded, evaluated on ``test``."""
    def build():
        torch.manual_seed(0)
        q = vq.ema_vq(256, 8, vectors_per_batch=B.batch * (SIZE // 4) ** 2)
        return tokenizers.VideoTokenizer(3, B.hidden, 8, t=2, p=4, quantizer=q).to(runtime.device())

    def fit(vtok):
        return tokenizers.fit(vtok, tokenizers.sample_batch(clips, B.batch), B.video_steps, lr=2e-3,
                              desc="video tokens", progress=progress)

    vtok = train.cached("video-tube-tokenizer", B, build, fit, verbose=progress)
    return tokenizers.Run(vtok, vtok.history, tokenizers.evaluate(vtok, test))


def colour_accuracy(recon: torch.Tensor, shapes) -> float:
    """Does a reconstruction keep the shape's colour? For each image, the mean colour of ``recon``
    (N, 3, S, S) over the pixels the shape covers in the original (``shapes``: a data.Shapes), then
    the nearest of data.COLORS; returns the fraction that match the caption's colour (chance: 1/6)."""
    palette = torch.tensor(list(data.COLORS.values()), device=recon.device)          # (6, 3)
    covered = (shapes.images.to(recon.device).amax(1, keepdim=True) > 0.3).float()   # (N, 1, S, S)
    mean_rgb = (recon.clamp(0, 1) * covered).sum((2, 3)) / covered.sum((2, 3)).clamp_min(1)   # (N, 3)
    nearest = torch.cdist(mean_rgb, palette).argmin(1)                                # (N,)
    return (nearest == shapes.color.to(recon.device)).float().mean().item()


# ----------------------------------------------------------------------------- shipped weights

def _make_all_images(mode: str) -> None:
    B = budget(mode)
    shapes = shapes_data(B)
    for name in equal_bits_quantizers(B):
        train_image(B, name, shapes, progress=False)


# the models notebook 03 loads in lecture mode, made by the functions it calls (``make pretrain``)
PRETRAINED = (
    Pretrained("audio-rvq-codec", ("03",), lambda mode: train_codec(budget(mode), audio_data(budget(mode))[0])),
    Pretrained("equal-bits-tokenizer", ("03",), _make_all_images),
    Pretrained("titok-shapes", ("03",), lambda mode: train_titok(budget(mode), shapes_data(budget(mode)))),
    Pretrained("video-tube-tokenizer", ("03",), lambda mode: train_video(budget(mode), *video_data(budget(mode)))),
)
