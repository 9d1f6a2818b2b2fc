"""Notebook 11's audio thread: a note as codec tokens chained by a GPT, against the same note as
continuous codec latents under a transformer with a flow head, judged by the pitch of the audio.

* **Route A, chained tokens** (AudioLM, Borsos et al. 2022, §4; VALL-E, Wang et al. 2023, §4;
  MusicGen's "flattening" pattern, Copet et al. 2023, §2.2): a residual-VQ codec (SoundStream,
  Zeghidour et al. 2021, Algorithm 1; EnCodec, Défossez et al. 2022, §3.2) turns a note into T
  frames of Q codes, flattened frame by frame (frame 1 levels 1..Q, frame 2 ...), and notebook 04's
  GPT (:mod:`course_lib.orders.gpt`) chains them: T x Q passes per note, then the codec's decoder.
* **Route B, continuous latents** (MAR, Li et al. 2024, §3; SLED, Ma et al. 2025, which chains the
  sum of EnCodec's RVQ embeddings per frame with an energy head, ictnlp/SLED-TTS sled/sled.py):
  notebook 07/09's causal transformer (:class:`~course_lib.orders.continuous.ContinuousAR`) over the
  T latent vectors of the same codec, taken BEFORE quantisation, with a flow head
  (:class:`~course_lib.heads.FlowHead`) per frame: T transformer passes and T x head_steps head
  passes, then the same decoder, which reads unquantised latents too (Mimi's no-quantisation rate).

The condition is the pitch CLASS (C, C#, ..., B) of a note of C3..C6 (notebook 09's notes, 1024
samples here so that the hop divides them): three or four right answers per prompt, its octaves.
The judge is neither model's loss: :func:`estimate_midi` finds the fundamental of the decoded
waveform, and :func:`audio_comparison` reports how often its pitch class is the one asked and how
many of the class's octaves the samples cover, with the same judge on real notes (the ceiling) and
on real notes through the codec (the codec's ceiling), next to the costs.

Simplifications: the codec is notebook 03's classes (``AudioTokenizer`` + ``ResidualVQ``) trained
here on notes (notebook 03's codec, mixed 0.5 s clips at 250 frames x 8 levels per second, gives
2000 tokens per second, too many for a CPU GPT); no semantic tokens (AudioLM), no delay pattern
(MusicGen); one vocabulary for every level, the learned position tells the level. The prompt is the
course's four-slot prompt with the pitch class in its first two slots (:func:`pitch_prompts`), so
both routes reuse their notebooks' models unchanged.
"""
from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass

import torch
from torch import nn

from course_lib import checks, data, heads, runtime, train
from course_lib.heads import backbone
from course_lib.nets import count_parameters
from course_lib.orders import gpt
from course_lib.orders import prompt as P
from course_lib.orders.continuous import ContinuousAR, ContinuousConfig
from course_lib.recipes.head_toys import closest_note
from course_lib.recipes.registry import Pretrained
from course_lib.tokens import tokenizers, vq

SAMPLE_RATE = 8000               # Hz, as notebook 09's notes
NOTE_LEN = 1024                  # samples per note (0.128 s): a multiple of the hop
STRIDES = (4, 4, 4)              # the codec's hop: 64 samples, 125 frames per second
LATENT_DIM = 8                   # numbers per frame (the continuous token)
FRAMES = NOTE_LEN // math.prod(STRIDES)      # 16 frames per note
LOW_MIDI, HIGH_MIDI = 48, 84     # C3 .. C6, the notes of data.audio_clips
SEED = 0
ROUTES = ("real notes", "codec reconstruction (tokens)", "codec reconstruction (latents)",
          "GPT over RVQ tokens", "flow head on latents")


@dataclass(frozen=True)
class CodecBudget:
    """The notes codec: notebook 03's AudioTokenizer + ResidualVQ, trained on notes."""
    n_train: int              # training notes
    steps: int                # optimizer steps
    batch: int                # notes per step
    hidden: int               # channels of the first conv (doubled at each stride)
    codes: int                # codes per level
    levels: int               # residual levels Q
    crop: int                 # samples of a training crop (the codec is convolutional: crops are cheaper)


@dataclass(frozen=True)
class PriorBudget:
    """One generator over the codec's frames (the GPT of route A or transformer + head of route B)."""
    steps: int                # optimizer steps
    batch: int                # notes per step
    lr: float                 # AdamW's peak learning rate (cosine schedule)
    d_model: int              # transformer width
    n_layer: int              # transformer blocks
    n_head: int               # attention heads
    head_width: int           # the flow head's width (route B only)
    head_depth: int           # the flow head's residual blocks (route B only)
    head_steps: int           # Euler steps of the flow head per frame when sampling (route B only)


@dataclass(frozen=True)
class Budget:
    """The audio thread's budget in one mode."""
    mode: str                 # the course mode this budget is for
    n_per_class: int          # samples per pitch class that audio_comparison judges
    codec: CodecBudget
    tokens: PriorBudget       # route A
    latents: PriorBudget      # route B


PRIORS = {     # per mode, the same sizes for both routes (route A's GPT has no head: it ignores the head_*)
    "quick": PriorBudget(steps=500, batch=16, lr=5e-3, d_model=48, n_layer=2, n_head=4,
                         head_width=64, head_depth=2, head_steps=8),
    "lecture": PriorBudget(steps=2000, batch=32, lr=2e-3, d_model=96, n_layer=3, n_head=4,
                           head_width=128, head_depth=3, head_steps=8),
    "full": PriorBudget(steps=8000, batch=128, lr=1e-3, d_model=256, n_layer=6, n_head=8,
                        head_width=256, head_depth=4, head_steps=16),
}
BUDGETS = {
    "quick": Budget("quick", n_per_class=8,
                    codec=CodecBudget(n_train=512, steps=250, batch=16, hidden=16, codes=32, levels=4, crop=576),
                    tokens=PRIORS["quick"], latents=PRIORS["quick"]),
    "lecture": Budget("lecture", n_per_class=16,
                      codec=CodecBudget(n_train=4096, steps=1500, batch=32, hidden=16, codes=32, levels=4, crop=576),
                      tokens=PRIORS["lecture"], latents=PRIORS["lecture"]),
    "full": Budget("full", n_per_class=64,
                   codec=CodecBudget(n_train=16384, steps=8000, batch=64, hidden=32, codes=64, levels=4, crop=1024),
                   tokens=PRIORS["full"], latents=PRIORS["full"]),
}


def budget(mode: str | None = None) -> Budget:
    """This section's budget in the current (or given) mode."""
    return runtime.pick(BUDGETS, mode)


# ----------------------------------------------------------------------------- data and prompts

def note_data(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` synthetic notes of C3..C6 (:func:`course_lib.data.audio_clips`, as notebook 09's
    ``note_data``, 1024 samples at 8 kHz). Returns (waves (n, 1024) on the CPU, pitch class (n,),
    MIDI number (n,))."""
    clips = data.audio_clips(checks.positive_int(n, "n"), kind="note", sample_rate=SAMPLE_RATE,
                             seconds=NOTE_LEN / SAMPLE_RATE, seed=seed)
    midi = torch.tensor([m[0] for m in clips.notes])
    return clips.waves.cpu(), midi % 12, midi


def check_pitch_class(pitch_class, name: str = "pitch_class") -> torch.Tensor:
    """An int or a (B,) integer tensor of pitch classes in 0..11 (0 = C) -> (B,) int64."""
    if isinstance(pitch_class, bool) or not isinstance(pitch_class, (int, torch.Tensor)):
        raise TypeError(f"{name}: expected an int in 0..11 or a (B,) int64 tensor, got {type(pitch_class).__name__}")
    if isinstance(pitch_class, int):
        pitch_class = torch.tensor([pitch_class])
    checks.tensor(pitch_class, name, ndim=1, floating=False, shape="(B,) int64 in 0..11")
    return checks.index_range(pitch_class, name, 12).long()


def pitch_prompts(pitch_class) -> torch.Tensor:
    """The course's (B, 4) prompt carrying a pitch class pc: slots 0 and 1 hold (pc // 6, pc % 6)
    (12 = 2 x 6 values of the shape and colour tables), slots 2 and 3 their null ids. The
    transformer learns what the two embeddings mean together; the null prompt (all four null ids,
    :func:`course_lib.orders.prompt.drop_prompts`) is still "no condition"."""
    pc = check_pitch_class(pitch_class)
    null = P.NULL.expand(len(pc), P.N_PROMPT).clone()                         # (B, 4)
    null[:, 0], null[:, 1] = pc // 6, pc % 6
    return null


# ----------------------------------------------------------------------------- the judge

def estimate_midi(waves: torch.Tensor, sample_rate: int = SAMPLE_RATE, low_hz: float = 100.0,
                  high_hz: float = 1400.0) -> torch.Tensor:
    """The fundamental of each wave (B, L) as a (fractional) MIDI number (B,): the peak of the
    Hann-windowed magnitude spectrum (zero-padded 8x) between ``low_hz`` and ``high_hz``, refined by
    a parabola through the peak bin and its neighbours. The notes' fundamental is their strongest
    partial (harmonics at 0.6^k), so a real note's peak is its pitch; a sample whose second
    harmonic is stronger is heard an octave up, and the judge says so too."""
    checks.tensor(waves, "waves", ndim=2, floating=True, shape="(B, L)")
    checks.rows(waves, "waves"), checks.finite(waves, "waves")
    sample_rate = checks.positive_int(sample_rate, "sample_rate")
    low_hz = checks.number(low_hz, "low_hz", 0.0)
    high_hz = checks.number(high_hz, "high_hz", low_hz, sample_rate / 2)        # up to Nyquist
    L = waves.shape[1]
    n_fft = 8 * 2 ** math.ceil(math.log2(L))
    spec = torch.fft.rfft(waves.float().cpu() * torch.hann_window(L, periodic=False), n=n_fft).abs()   # (B, F)
    freqs = torch.arange(spec.shape[1]) * sample_rate / n_fft
    band = (freqs >= low_hz) & (freqs <= high_hz)
    spec = torch.where(band, spec, torch.zeros(())).clamp_min(1e-12).log()
    k = spec.argmax(1).clamp(1, spec.shape[1] - 2)                            # (B,) peak bins
    a, b, c = (spec.gather(1, (k + d)[:, None])[:, 0] for d in (-1, 0, 1))
    shift = 0.5 * (a - c) / (a - 2 * b + c).clamp(max=-1e-12)                  # parabola's vertex, in bins
    hz = (k + shift.clamp(-0.5, 0.5)) * sample_rate / n_fft
    return 69 + 12 * torch.log2(hz / 440.0)


def judge(waves: torch.Tensor, sample_rate: int = SAMPLE_RATE) -> tuple[torch.Tensor, torch.Tensor]:
    """(pitch class (B,), octave (B,)) of each wave: :func:`estimate_midi` rounded to a semitone;
    octave in scientific pitch notation (MIDI 60 = C4)."""
    midi = estimate_midi(waves, sample_rate).round().long()
    return midi % 12, midi.div(12, rounding_mode="floor") - 1


def real_octaves(pitch_class: int) -> int:
    """How many octaves of C3..C6 hold the pitch class (4 for C, 3 for the others)."""
    pc = check_pitch_class(pitch_class)
    if pc.numel() != 1:
        raise ValueError(f"pitch_class: expected one pitch class, got {pc.numel()}")
    pitch_class = int(pc)
    return sum(1 for m in range(LOW_MIDI, HIGH_MIDI + 1) if m % 12 == pitch_class)


@functools.lru_cache(maxsize=1)
def _bank() -> tuple[list, torch.Tensor]:
    """Every note of C3..C6 once, (MIDI numbers, waves (37, 1024)): a note of the data is fixed by its
    MIDI number, so the first of each among 2000 notes of :func:`note_data` is that note."""
    waves, _, midi = note_data(2000, seed=0)
    first = {m: i for i, m in reversed(list(enumerate(midi.tolist())))}
    keys = sorted(first)
    return keys, waves[[first[m] for m in keys]]


def judge_samples(waves: torch.Tensor, asked: torch.Tensor) -> dict:
    """The judge on samples asked for pitch classes ``asked`` (B,): pitch_class_accuracy (share
    whose estimated pitch class is the asked one), octave_spread (per pitch class, the number of
    distinct octaves among its correct samples, divided by the octaves real notes of that class
    cover; mean over classes: 1 = every octave appears), octave_entropy (bits, mean over classes,
    of the correct samples' octaves) and similarity (notebook 09's :func:`closest_note`: cosine
    similarity to the closest real note of the asked class, one per MIDI number; 1 = that note exactly)."""
    pc, octave = judge(waves)
    asked = check_pitch_class(asked, "asked")
    checks.same_rows(asked, "asked", len(pc), "waves")
    right = pc == asked
    spread, entropy = [], []
    for c in asked.unique().tolist():
        octs = octave[(asked == c) & right]
        spread.append(len(octs.unique()) / real_octaves(c))
        p = torch.bincount(octs - octs.min()).float() / len(octs) if len(octs) else torch.ones(1)
        entropy.append(-(p[p > 0] * p[p > 0].log2()).sum().item())
    bank_midi, bank = _bank()
    return dict(pitch_class_accuracy=right.float().mean().item(), octave_spread=sum(spread) / len(spread),
                octave_entropy=sum(entropy) / len(entropy),
                similarity=closest_note(waves.float().cpu(), asked, bank, bank_midi).mean().item())


# ----------------------------------------------------------------------------- tokens: flattening

def flatten_codes(codes: torch.Tensor) -> torch.Tensor:
    """(B, T, Q) residual codes -> (B, T * Q) tokens, frame by frame: frame 1 levels 1..Q, then
    frame 2, ... (MusicGen's "flattening" pattern, §2.2): position t * Q + q holds level q of frame t."""
    checks.tensor(codes, "codes", ndim=3, floating=False, shape="(B, T, Q) int64")
    return codes.reshape(codes.shape[0], -1)                                  # (B, T * Q)


def unflatten_codes(tokens: torch.Tensor, levels: int) -> torch.Tensor:
    """(B, T * Q) tokens -> (B, T, Q) codes, the inverse of :func:`flatten_codes`."""
    checks.tensor(tokens, "tokens", ndim=2, floating=False, shape="(B, T * Q) int64")
    Q = checks.positive_int(levels, "levels")
    if tokens.shape[1] % Q:
        raise ValueError(f"tokens: expected a length divisible by levels = {Q}, got {tuple(tokens.shape)}")
    return tokens.reshape(tokens.shape[0], -1, Q)                             # (B, T, Q)


# ----------------------------------------------------------------------------- the codec

def train_codec(B: Budget, progress: bool = False) -> tokenizers.AudioTokenizer:
    """The notes codec (notebook 03's classes: strides 4 x 4 x 4, LATENT_DIM numbers per frame,
    B.codec.levels levels of B.codec.codes codes, EMA, k-means init, restarts; quantizer dropout as
    SoundStream and Mimi's no-quantisation rate 0.5; loss MSE / Var(data) + 0.01 x multi-resolution
    STFT loss, cosine schedule from lr 3e-3), trained on B.codec.n_train notes of :func:`note_data`
    (seed 0), or loaded (shipped weights, model cache)."""
    C = B.codec
    waves = note_data(C.n_train, seed=0)[0].to(runtime.device())

    def build():
        torch.manual_seed(SEED)
        rvq = vq.ResidualVQ(C.levels, C.codes, LATENT_DIM, quantizer_dropout=True, no_quantization_rate=0.5,
                            ema=True, kmeans_init=True, dead_threshold=1.0)
        return tokenizers.AudioTokenizer(hidden=C.hidden, latent_dim=LATENT_DIM, strides=STRIDES,
                                         quantizer=rvq).to(runtime.device())

    def fit(codec):
        return tokenizers.fit(codec, _crops(waves, C.batch, C.crop), C.steps, lr=3e-3, schedule="cosine",
                              data_variance=waves.var().item(), stft_weight=0.01, desc="notes codec",
                              progress=progress)

    return train.cached("audio-notes-codec", dict(mode=B.mode, codec=C, seed=SEED), build, fit, verbose=progress)


def _crops(waves: torch.Tensor, batch: int, crop: int):
    """A ``batch_fn`` of ``batch`` random crops (batch, crop) of random notes, starting on a frame
    boundary (fixed seed: reproducible runs)."""
    g = torch.Generator().manual_seed(SEED)
    hop = math.prod(STRIDES)
    if crop % hop or not hop <= crop <= waves.shape[1]:
        raise ValueError(f"crop: expected a multiple of the hop {hop} up to {waves.shape[1]}, got {crop}")
    span = torch.arange(crop)

    def batch_fn(step):
        rows = torch.randint(len(waves), (batch,), generator=g)
        start = torch.randint((waves.shape[1] - crop) // hop + 1, (batch,), generator=g) * hop
        return waves[rows[:, None].to(waves.device), (start[:, None] + span).to(waves.device)]   # (batch, crop)
    return batch_fn


@torch.no_grad()
def encode_notes(codec: tokenizers.AudioTokenizer, waves: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """waves (B, 1024) -> (codes (B, T, Q) int64, continuous latents (B, T, D)), the latents taken
    before the quantiser (what route B models)."""
    with runtime.evaluating(codec):
        z = codec.encode(waves.to(runtime.device()))                          # (B, T, D)
        return codec.quantize(z).codes, z


@torch.no_grad()
def decode_codes(codec: tokenizers.AudioTokenizer, codes: torch.Tensor) -> torch.Tensor:
    """(B, T, Q) codes -> waves (B, 1024): sum of the levels' code vectors, then the decoder."""
    with runtime.evaluating(codec):
        return codec.decode(codec.quantizer.decode_codes(codes)).cpu()


@torch.no_grad()
def decode_latents(codec: tokenizers.AudioTokenizer, latents: torch.Tensor) -> torch.Tensor:
    """(B, T, D) continuous latents -> waves (B, 1024), the decoder alone."""
    with runtime.evaluating(codec):
        return codec.decode(latents).cpu()


# ----------------------------------------------------------------------------- the two generators

class LatentPrior(nn.Module):
    """Route B's model, saved as one: the causal transformer, its flow head, and the scale the
    latents are divided by (a generative head starts from N(0, I) noise; notebook 09's notes)."""

    def __init__(self, pb: PriorBudget):
        super().__init__()
        cfg = ContinuousConfig(latent_dim=LATENT_DIM, n_tokens=FRAMES, d_model=pb.d_model, n_layer=pb.n_layer,
                               n_head=pb.n_head)
        self.backbone = ContinuousAR(cfg)
        self.head = heads.FlowHead(LATENT_DIM, pb.d_model, width=pb.head_width, depth=pb.head_depth,
                                   default_steps=pb.head_steps)
        self.register_buffer("scale", torch.ones(()))


def _prior_data(B: Budget, codec) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The codec's codes (N, T, Q), latents (N, T, D) and prompts (N, 4) of the B.codec.n_train
    training notes (the codec's own training set)."""
    waves, pc, _ = note_data(B.codec.n_train, seed=0)
    codes, latents = encode_notes(codec, waves)
    return codes, latents, pitch_prompts(pc).to(codes.device)


def _batches(n: int, batch: int):
    g = torch.Generator().manual_seed(SEED)
    return g, lambda: torch.randint(n, (batch,), generator=g)


def train_token_gpt(B: Budget, codec=None, progress: bool = False) -> gpt.TokenGPT:
    """Route A: notebook 04's :class:`~course_lib.orders.gpt.TokenGPT` over the flattened codes
    (T x Q = 64 tokens, vocabulary B.codec.codes), prompted by the pitch class, trained with
    :func:`course_lib.orders.gpt.loss` (10% null prompts) for B.tokens.steps steps, or loaded."""
    T = B.tokens

    def build():
        torch.manual_seed(SEED)
        cfg = gpt.GPTConfig(vocab_size=B.codec.codes, n_tokens=FRAMES * B.codec.levels, d_model=T.d_model,
                            n_layer=T.n_layer, n_head=T.n_head)
        return gpt.TokenGPT(cfg).to(runtime.device())

    def fit(model):                                                           # the codec only if training
        codes, _, prompts = _prior_data(B, codec or train_codec(B))
        tokens = flatten_codes(codes)                                         # (N, T * Q)
        g, draw = _batches(len(tokens), T.batch)

        def loss_fn(step):
            idx = draw().to(tokens.device)
            return gpt.loss(model, tokens[idx], prompts[idx], generator=g)
        return train.train(model, loss_fn, T.steps, lr=T.lr, schedule="cosine", warmup=min(100, T.steps // 10),
                           progress=progress, desc="GPT over RVQ tokens")

    config = dict(mode=B.mode, codec=B.codec, tokens=T, seed=SEED)
    return train.cached("audio-token-gpt", config, build, fit, verbose=progress)


def train_latent_prior(B: Budget, codec=None, progress: bool = False) -> LatentPrior:
    """Route B: :class:`LatentPrior` (transformer + flow head) trained together with
    :func:`course_lib.heads.backbone.loss` (raster order, 10% null prompts) on the codec's
    continuous latents divided by their standard deviation, for B.latents.steps steps, or loaded."""
    L = B.latents

    def build():
        torch.manual_seed(SEED)
        return LatentPrior(L).to(runtime.device())

    def fit(prior):                                                           # the codec only if training
        _, latents, prompts = _prior_data(B, codec or train_codec(B))
        prior.scale.fill_(latents.std().item())
        x = latents / prior.scale                                             # (N, T, D), about unit scale
        g, draw = _batches(len(x), L.batch)

        def loss_fn(step):
            idx = draw().to(x.device)
            return backbone.loss(prior.backbone, prior.head, x[idx], prompts[idx], generator=g)
        return train.train(prior, loss_fn, L.steps, lr=L.lr, schedule="cosine", warmup=min(100, L.steps // 10),
                           progress=progress, desc="transformer + flow head on latents")

    config = dict(mode=B.mode, codec=B.codec, latents=L, seed=SEED)
    return train.cached("audio-flow-latents", config, build, fit, verbose=progress)


@dataclass
class Models:
    """The codec and the two generators of one budget."""
    B: Budget
    codec: tokenizers.AudioTokenizer
    token_gpt: gpt.TokenGPT
    latent_prior: LatentPrior


def models(mode: str | None = None, progress: bool = False) -> Models:
    """The codec, route A's GPT and route B's transformer + head of ``mode`` (trained or loaded)."""
    B = budget(mode)
    codec = train_codec(B, progress)
    return Models(B, codec, train_token_gpt(B, codec, progress), train_latent_prior(B, codec, progress))


@torch.no_grad()
def generate(M: Models, route: str, pitch_class, seed: int = SEED) -> tuple[torch.Tensor, dict]:
    """Waves (B, 1024) of ``route`` ("GPT over RVQ tokens" or "flow head on latents") for pitch
    classes (B,), and the costs: sequential_evaluations (the GPT's T x Q passes; the transformer's
    T passes plus T x head_steps head passes) and seconds (generation and decoding, all B together)."""
    checks.one_of(route, "route", ROUTES[3:])
    prompts = pitch_prompts(pitch_class).to(runtime.device())
    g = torch.Generator().manual_seed(seed)
    runtime.sync()
    t0 = time.perf_counter()
    if route == ROUTES[3]:
        tokens = gpt.generate(M.token_gpt, prompts, generator=g)             # (B, T * Q)
        waves = decode_codes(M.codec, unflatten_codes(tokens, M.B.codec.levels))
        passes = M.token_gpt.cfg.n_tokens
    else:
        prior = M.latent_prior
        out = backbone.generate(prior.backbone, prior.head, prompts, generator=g)
        waves = decode_latents(M.codec, out.latents * prior.scale)           # (B, 1024)
        passes = out.passes * (1 + out.head_nfe)
    runtime.sync()
    return waves, dict(sequential_evaluations=passes, seconds=time.perf_counter() - t0)


def audio_comparison(mode: str | None = None, seed: int = SEED, n: int | None = None) -> dict:
    """Every route judged on ``n`` notes per pitch class (default B.n_per_class; held-out real notes
    of seed 1000 + seed for the first three rows, samples of seed ``seed`` for the two generators).

    Returns {route: row} in the order of :data:`ROUTES`, each row {pitch_class_accuracy,
    octave_spread, octave_entropy, similarity (:func:`judge_samples`), tokens_per_second (of audio:
    frames x Q for tokens, frames for latents; real notes: the samples WaveNet would chain),
    sequential_evaluations (network passes one after another per note; the codec rows: the
    decoder's one), seconds_per_audio_second (wall time, all notes in one batch, divided by the
    audio's length; the codec rows: encode and decode), params (the generator's, or the codec's)}."""
    M = models(mode)
    B = M.B
    n = B.n_per_class if n is None else checks.positive_int(n, "n")
    fps = M.codec.frame_rate(SAMPLE_RATE)
    audio_seconds = 12 * n * NOTE_LEN / SAMPLE_RATE
    waves, pc, _ = _real_per_class(n, 1000 + seed)
    rows = {ROUTES[0]: dict(judge_samples(waves, pc), tokens_per_second=float(SAMPLE_RATE),
                            sequential_evaluations=None, seconds_per_audio_second=None, params=None)}
    t0 = time.perf_counter()
    codes, latents = encode_notes(M.codec, waves)
    encode_seconds = time.perf_counter() - t0
    for name, rec, per_frame in ((ROUTES[1], lambda: decode_codes(M.codec, codes), B.codec.levels),
                                 (ROUTES[2], lambda: decode_latents(M.codec, latents), 1)):
        t0 = time.perf_counter()
        out = rec()
        secs = encode_seconds + time.perf_counter() - t0
        rows[name] = dict(judge_samples(out, pc), tokens_per_second=fps * per_frame, sequential_evaluations=1,
                          seconds_per_audio_second=secs / audio_seconds, params=count_parameters(M.codec))
    for name, model, per_frame in ((ROUTES[3], M.token_gpt, B.codec.levels), (ROUTES[4], M.latent_prior, 1)):
        out, cost = generate(M, name, pc, seed)
        rows[name] = dict(judge_samples(out, pc), tokens_per_second=fps * per_frame,
                          sequential_evaluations=cost["sequential_evaluations"],
                          seconds_per_audio_second=cost["seconds"] / audio_seconds, params=count_parameters(model))
    return rows


def _real_per_class(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """n real notes per pitch class (12 n: classes 0..11, then 0..11 again, ...), the first of each
    class among notes of :func:`note_data` (``seed``): each class's octaves as often as the data has them."""
    waves, pc, midi = note_data(40 * n + 200, seed=seed)                       # about 3.2 n + 16 per class
    idx = [(pc == c).nonzero()[:n, 0] for c in range(12)]
    if min(len(i) for i in idx) < n:                                           # never seen; a clear stop if so
        raise RuntimeError(f"fewer than {n} notes of some pitch class among {len(pc)} (seed {seed})")
    order = torch.stack(idx, 1).reshape(-1)                                    # (12 n,)
    return waves[order], pc[order], midi[order]


def audio_examples(mode: str | None = None, pitch_class: int = 0, n: int = 4, seed: int = SEED) -> dict:
    """Waveforms to listen to for one pitch class: {"real", "GPT over RVQ tokens", "flow head on
    latents": (n, 1024) each, "midi": {the same keys: the judge's estimated MIDI numbers (n,)},
    "sample_rate": 8000}. The real notes are held-out notes of that class (seed 1000 + seed)."""
    pc = int(check_pitch_class(pitch_class)[0])
    n = checks.positive_int(n, "n")
    M = models(mode)
    waves, pcs, _ = _real_per_class(n, 1000 + seed)
    out = {"real": waves[pcs == pc]}
    asked = torch.full((n,), pc)
    for route in ROUTES[3:]:
        out[route] = generate(M, route, asked, seed)[0]
    out["midi"] = {k: estimate_midi(v) for k, v in out.items()}
    out["sample_rate"] = SAMPLE_RATE
    return out


# the models notebook 11 loads in lecture mode, made by the functions it calls (``make pretrain``)
PRETRAINED = (
    Pretrained("audio-notes-codec", ("11",), lambda mode: train_codec(budget(mode), progress=True)),
    Pretrained("audio-token-gpt", ("11",), lambda mode: train_token_gpt(budget(mode), progress=True)),
    Pretrained("audio-flow-latents", ("11",), lambda mode: train_latent_prior(budget(mode), progress=True)),
)
