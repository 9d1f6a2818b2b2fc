"""Recipe of notebook 01_pixels_and_samples: PixelCNN on digits, WaveNet on mu-law audio.

Its budgets per mode and its experiments. Notebook 01 and ``python -m course_lib.bench pixel_ar``
both call these functions, so a benchmark figure is the figure the notebook shows::

    B = budget()
    train, test = digits()
    model = trained_pixelcnn(B)                          # train_pixelcnn through the model cache
    model.history                                        # its training run (loss curve, seconds)
    P.evaluate_bpd(model, test.images)                   # against baselines(train, test)
    cond = trained_conditional(B, model)                 # + class vectors, fine-tuned on the labels

    clips, test_clips = audio(B)
    net = trained_wavenet(B)                             # train_wavenet on W.mu_law_encode(clips.waves)
    gen = generate_audio(net, W.mu_law_encode(test_clips.waves), B)   # gen.samples_per_second

The ``trained_*`` functions build and train through :func:`course_lib.train.cached`: in lecture mode
they load the weights the course ships (``data/weights/``, made by ``python -m course_lib.pretrain``
from :data:`PRETRAINED`, which calls these same functions); ``WEIGHTS = "train"`` trains them.
The notebook passes the learner's own ``bits_per_dim`` (``bpd=``), ``mu_law_encode`` (``encode=``)
and ``raster_sample`` (``sampler=``); a model trained with a learner's function is kept nowhere
(``share=False``), and the shipped weights are the course's (``bpd=None``: :func:`P.bits_per_dim`),
which the homework checks hold equal to a correct answer. The benchmark uses the library's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from course_lib import data, runtime
from course_lib import train as training
from course_lib.pixels import pixel_ar as P
from course_lib.pixels import wavenet as W
from course_lib.recipes.registry import Pretrained
from course_lib.train import History


@dataclass(frozen=True)
class Wave:
    """Section 5's budget: the WaveNet on one-second synthetic clips, and its generation."""
    channels: int             # residual channels
    skip: int                 # skip channels
    dilations: tuple          # dilations, layer by layer
    clips: int                # one-second training clips
    steps: int                # training steps
    batch: int                # windows per step
    crop: int                 # scored samples per window
    gen_seconds: float        # seconds of audio generated per clip
    gen_clips: int            # clips generated


@dataclass(frozen=True)
class Budget:
    """Notebook 01's budget in one mode."""
    mode: str                 # the course mode this budget is for
    channels: int             # the PixelCNN's channels
    layers: int               # its masked conv layers
    dropout: float            # its dropout
    batch: int                # digits per step
    lr: float                 # peak learning rate (cosine decay)
    steps: int                # the PixelCNN's training steps
    cond_steps: int           # fine-tuning steps of the class-conditional PixelCNN
    n_samples: int            # digits sampled per temperature
    wave: Wave                # the WaveNet of section 5


BUDGETS = {
    "quick": Budget("quick", channels=32, layers=4, dropout=0.5, batch=64, lr=3e-3, steps=60, cond_steps=30,
                    n_samples=16, wave=Wave(channels=16, skip=32, dilations=(1, 2, 4, 8, 16, 32), clips=16,
                                            steps=30, batch=8, crop=256, gen_seconds=0.05, gen_clips=4)),
    "lecture": Budget("lecture", channels=64, layers=7, dropout=0.5, batch=64, lr=3e-3, steps=1100, cond_steps=250,
                      n_samples=64, wave=Wave(channels=32, skip=64,
                                              dilations=(1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8),
                                              clips=96, steps=450, batch=8, crop=768, gen_seconds=0.5, gen_clips=4)),
    "full": Budget("full", channels=128, layers=12, dropout=0.5, batch=128, lr=2e-3, steps=6000, cond_steps=4000,
                   n_samples=100, wave=Wave(channels=64, skip=128, dilations=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512) * 3,
                                            clips=512, steps=5000, batch=16, crop=4000, gen_seconds=2.0, gen_clips=8)),
}

LEVELS = 17             # the 8x8 digits take the values 0..16
N_CLASSES = 10
SAMPLE_RATE = 8000      # Hz, the WaveNet's audio
BitsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def budget(mode: str | None = None) -> Budget:
    """This notebook's budget in the current (or given) mode: ``budget().steps``."""
    return runtime.pick(BUDGETS, mode)


# ----------------------------------------------------------------------------- PixelCNN on digits

def digits():
    """The 8x8 digits: (train, test) splits, images (N, 1, 8, 8) int64 in 0..16 and labels (N,)."""
    return data.digits("train"), data.digits("test")


@dataclass
class Baselines:
    """The two models a PixelCNN must beat on the test split, in bits/dim."""
    probs: torch.Tensor         # (levels, H, W) per-pixel histogram of the training split
    histogram_bpd: float        # independent pixels, each from its histogram
    uniform_bpd: float          # log2(levels): no learning at all


def baselines(train, test) -> Baselines:
    """Per-pixel histogram (add-one smoothing) and uniform baselines, scored on ``test``."""
    probs = P.histogram_probs(train.images, LEVELS)
    return Baselines(probs, P.histogram_bpd(probs, test.images), P.uniform_bpd(LEVELS))


def pixelcnn(B, n_classes: int | None = None, seed: int = 0) -> P.PixelCNN:
    """The notebook's PixelCNN (sizes from the budget), built after seeding, on the course device."""
    runtime.seed_everything(seed)
    return P.PixelCNN(levels=LEVELS, channels=B.channels, n_layers=B.layers, dropout=B.dropout,
                      n_classes=n_classes).to(runtime.device())


def train_pixelcnn(model: P.PixelCNN, train, B, *, seed: int = 0, bpd: BitsFn = P.bits_per_dim,
                   progress: bool = True) -> History:
    """:func:`~course_lib.pixels.pixel_ar.fit` for ``B.steps`` steps with a cosine learning rate."""
    return P.fit(model, train.images, B.steps, batch=B.batch, lr=B.lr, seed=seed, progress=progress,
                 bpd=bpd, schedule="cosine")


def _loss(bpd: BitsFn | None) -> BitsFn:
    return P.bits_per_dim if bpd is None else bpd


def trained_pixelcnn(B, *, seed: int = 0, bpd: BitsFn | None = None, progress: bool = True) -> P.PixelCNN:
    """:func:`pixelcnn` trained on the training digits by :func:`train_pixelcnn`, through the model
    cache (:func:`course_lib.train.cached`, name ``"pixelcnn-digits"``, key: the budget ``B`` and
    ``seed``): the course's shipped weights in lecture mode, else the disk cache, else trained now.
    ``model.history`` is the training run's History.

    ``bpd``: the loss; None is the course's :func:`P.bits_per_dim` (what the shipped weights were made
    with). A learner's own function trains a model kept nowhere (``share=False``); with shipped weights
    switched on, the course's weights are loaded instead."""
    return training.cached("pixelcnn-digits", dict(budget=B, seed=seed), build=lambda: pixelcnn(B, seed=seed),
                           fit=lambda m: train_pixelcnn(m, digits()[0], B, seed=seed, bpd=_loss(bpd),
                                                        progress=progress),
                           share=bpd is None)


def training_line(model, steps: str = "steps") -> str:
    """``"N steps in S s here (R steps/s)"`` from ``model.history``, the run that trained ``model``: "when
    the weights were made" instead of "here" when it was loaded (shipped weights or the cache)."""
    h = model.history
    where = "when the weights were made" if model.from_cache else "here"
    return f"{len(h.losses)} {steps} in {h.seconds:.1f} s {where} ({h.steps_per_second:.1f} steps/s)"


def note_loaded(model, yours: str) -> None:
    """Print, when ``model`` was loaded rather than trained here, that the course's own functions made
    it, not the learner's ``yours`` (which ``WEIGHTS = "train"`` trains with)."""
    if model.from_cache:
        print(f"(the course's weights, made with the course's own {yours}; WEIGHTS = \"train\" in the first "
              f"cell trains this model here with your {yours})")


def trained_conditional(B, unconditional: P.PixelCNN | None = None, *, seed: int = 0,
                        bpd: BitsFn | None = None, progress: bool = True) -> P.PixelCNN:
    """:func:`conditional_pixelcnn` of ``unconditional`` (the :func:`trained_pixelcnn` of the same
    ``B``, ``seed`` and ``bpd``; None: asked for when the model is built) fine-tuned by
    :func:`finetune_conditional`, through the model cache (name ``"pixelcnn-digits-conditional"``,
    key: ``B`` and ``seed``); ``bpd`` as in :func:`trained_pixelcnn`."""
    def build():
        base = trained_pixelcnn(B, seed=seed, bpd=bpd, progress=progress) if unconditional is None else unconditional
        return conditional_pixelcnn(B, base, seed=seed)
    return training.cached("pixelcnn-digits-conditional", dict(budget=B, seed=seed), build=build,
                           fit=lambda m: finetune_conditional(m, digits()[0], B, seed=seed, bpd=_loss(bpd),
                                                              progress=progress),
                           share=bpd is None)


def conditional_pixelcnn(B, unconditional: P.PixelCNN, seed: int = 0) -> P.PixelCNN:
    """A class-conditional PixelCNN that starts as ``unconditional``: the same weights, plus one
    vector per class initialised at zero (so at first it ignores the label)."""
    model = pixelcnn(B, n_classes=N_CLASSES, seed=seed)
    missing, unexpected = model.load_state_dict(unconditional.state_dict(), strict=False)
    if missing != ["cond.embed.weight"] or unexpected:
        raise ValueError(f"unconditional: expected the same PixelCNN without class vectors, got missing "
                         f"{missing}, unexpected {unexpected}")
    torch.nn.init.zeros_(model.cond.embed.weight)
    return model


def finetune_conditional(model: P.PixelCNN, train, B, *, seed: int = 0, bpd: BitsFn = P.bits_per_dim,
                         progress: bool = True) -> History:
    """Fine-tune a :func:`conditional_pixelcnn` on (image, label) pairs: ``B.cond_steps`` steps at
    a third of the learning rate, cosine schedule."""
    return P.fit(model, train.images, B.cond_steps, batch=B.batch, lr=B.lr / 3, labels=train.labels,
                 seed=seed, progress=progress, bpd=bpd, schedule="cosine")


def sample_digits(model: P.PixelCNN, n: int, temperature: float = 1.0, seed: int = 0,
                  labels: torch.Tensor | None = None, sampler=P.raster_sample) -> tuple[torch.Tensor, float]:
    """Draw ``n`` 8x8 digits with ``sampler`` (64 forward passes) from a generator seeded by ``seed``.

    Returns the digits (n, 1, 8, 8) int64 and the wall-clock seconds the sampling took."""
    model.eval()
    fn = model if labels is None else (lambda x: model(x, labels))
    return runtime.timed(lambda: sampler(fn, n, 8, 8, temperature=temperature,
                                         generator=torch.Generator().manual_seed(seed), device=runtime.device()))


# ----------------------------------------------------------------------------- WaveNet on audio

def audio(B, seed: int = 0):
    """One-second synthetic clips at :data:`SAMPLE_RATE`: (train, test), ``B.wave.clips`` and an
    eighth of that (at least 4) clips, waves (N, 8000) float in [-1, 1]."""
    train = data.audio_clips(B.wave.clips, sample_rate=SAMPLE_RATE, seconds=1.0, seed=seed)
    test = data.audio_clips(max(4, B.wave.clips // 8), sample_rate=SAMPLE_RATE, seconds=1.0, seed=seed + 1000)
    return train, test


def wavenet(B, seed: int = 0) -> W.WaveNet:
    """The notebook's WaveNet (sizes from the budget), built after seeding, on the course device."""
    runtime.seed_everything(seed)
    return W.WaveNet(levels=256, channels=B.wave.channels, skip_channels=B.wave.skip,
                     dilations=B.wave.dilations).to(runtime.device())


def train_wavenet(model: W.WaveNet, levels: torch.Tensor, B, *, seed: int = 0, bpd: BitsFn = P.bits_per_dim,
                  progress: bool = True) -> History:
    """:func:`~course_lib.pixels.wavenet.fit` on mu-law levels (N, L) for ``B.wave.steps`` steps of
    ``B.wave.batch`` windows (``B.wave.crop`` scored samples each), cosine learning rate."""
    return W.fit(model, levels, B.wave.steps, batch=B.wave.batch, crop=B.wave.crop, seed=seed,
                 progress=progress, bpd=bpd, schedule="cosine")


def trained_wavenet(B, *, seed: int = 0, bpd: BitsFn | None = None, encode: Callable | None = None,
                    progress: bool = True) -> W.WaveNet:
    """:func:`wavenet` trained by :func:`train_wavenet` on the training clips of :func:`audio` (``seed``)
    encoded by ``encode`` (None: :func:`W.mu_law_encode`), through the model cache (name
    ``"wavenet-audio"``, key: ``B.wave``, the mode and ``seed``); ``model.history`` is the training run.
    ``bpd`` as in :func:`trained_pixelcnn`; with a learner's ``bpd`` or ``encode`` the model is kept
    nowhere (``share=False``)."""
    def fit(model):
        levels = (W.mu_law_encode if encode is None else encode)(audio(B, seed=seed)[0].waves)   # (N, 8000)
        return train_wavenet(model, levels, B, seed=seed, bpd=_loss(bpd), progress=progress)
    return training.cached("wavenet-audio", dict(wave=B.wave, mode=B.mode, seed=seed),
                           build=lambda: wavenet(B, seed=seed), fit=fit, share=bpd is None and encode is None)


@dataclass
class Generation:
    """What :func:`generate_audio` made and how fast."""
    levels: torch.Tensor        # (clips, P + new) mu-law levels, the prime included
    source: torch.Tensor        # (clips,) which test clip primed each
    temperatures: torch.Tensor  # (clips,)
    steps: int                  # forward steps per clip, through the prime and the new samples
    seconds: float

    @property
    def samples_per_second(self) -> float:
        """Forward steps per second (every clip of the batch advances one sample per step)."""
        return self.steps / self.seconds


def generate_audio(model: W.WaveNet, test_levels: torch.Tensor, B, seed: int = 0,
                   progress: bool = True) -> Generation:
    """Continue ``B.wave.gen_clips`` primes of one receptive field from ``test_levels`` (N, L) by
    ``B.wave.gen_seconds`` of audio with the cached :meth:`~course_lib.pixels.wavenet.WaveNet.generate`.

    Each of the first ``B.wave.gen_clips // 2`` test clips primes two clips: one at temperature 1, one
    at 0.7; all of them in one batch."""
    half = max(1, B.wave.gen_clips // 2)
    source = torch.arange(B.wave.gen_clips) % half                       # (clips,)
    prime = test_levels[source.to(test_levels.device), :model.receptive_field]   # (clips, rf)
    temps = torch.tensor([1.0] * half + [0.7] * (B.wave.gen_clips - half))
    n_new = int(B.wave.gen_seconds * SAMPLE_RATE)
    out, seconds = runtime.timed(lambda: model.generate(n_new, prime, temperature=temps, progress=progress,
                                                        generator=torch.Generator().manual_seed(seed)))
    return Generation(out, source, temps, prime.shape[1] + n_new - 1, seconds)


@torch.no_grad()
def naive_samples_per_second(model: W.WaveNet, test_levels: torch.Tensor, B, repeats: int = 20) -> float:
    """Generation speed without the cache: one full forward pass over a receptive-field window of
    ``B.wave.gen_clips`` clips per generated sample, timed over ``repeats`` passes."""
    model.eval()
    window = test_levels[:B.wave.gen_clips, :model.receptive_field]      # (clips, rf)
    return 1 / runtime.seconds_per_step(lambda k: model(window), repeats)


def digit_classifier(train, seed: int = 0):
    """A judge for the conditional samples: scikit-learn's LogisticRegression on the 64 pixel values
    of the training digits (a second or two on a CPU). Use :func:`class_accuracy` to score it."""
    from sklearn.linear_model import LogisticRegression
    x = train.images.flatten(1).float().cpu().numpy() / 16.0          # (N, 64) in [0, 1]
    return LogisticRegression(max_iter=2000, random_state=seed).fit(x, train.labels.cpu().numpy())


def class_accuracy(classifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of ``images`` (N, 1, 8, 8) int64 0..16 that ``classifier`` reads as their ``labels`` (N,)."""
    x = images.flatten(1).float().cpu().numpy() / 16.0
    return float((classifier.predict(x) == labels.cpu().numpy()).mean())


# ----------------------------------------------------------------------------- shipped weights

def _pixelcnn_figures(mode: str) -> dict:
    return {"test_bpd": P.evaluate_bpd(trained_pixelcnn(budget(mode)), digits()[1].images)}


def _conditional_figures(mode: str) -> dict:
    test = digits()[1]
    return {"test_bpd_given_label": P.evaluate_bpd(trained_conditional(budget(mode)), test.images, test.labels)}


def _wavenet_figures(mode: str) -> dict:
    B = budget(mode)
    return {"test_bits_per_sample": W.evaluate_bits(trained_wavenet(B), W.mu_law_encode(audio(B)[1].waves))}


PRETRAINED = (Pretrained("pixelcnn-digits", ("01",), lambda mode: trained_pixelcnn(budget(mode)),
                         figures=_pixelcnn_figures),
              Pretrained("pixelcnn-digits-conditional", ("01",), lambda mode: trained_conditional(budget(mode)),
                         figures=_conditional_figures),
              Pretrained("wavenet-audio", ("01",), lambda mode: trained_wavenet(budget(mode)),
                         figures=_wavenet_figures))
