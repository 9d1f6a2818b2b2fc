"""Notebook 09's heads alone, with the condition z given (no transformer): the trap in two
dimensions (a condition with two right answers) and the audio example (a note as one continuous
token, conditioned on its pitch class). :mod:`course_lib.recipes.generation_heads` re-exports
everything here; its notebook and tests/test_heads.py call it through that module.

* :func:`toy_data` / :func:`fit_toy` / :func:`on_modes`: the 2-D trap; :func:`toy_head` trains a
  head on it through the model cache (shipped weights first);
* :func:`note_data` / :func:`closest_note` / :func:`note_head` / :func:`audio_heads`: the notes.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from course_lib import checks, data, heads, train

SEED = 0
KINDS = tuple(heads.KINDS)                 # ("mse", "flow", "energy")


@dataclass(frozen=True)
class HeadFit:
    """What trains a head alone (the cache key of :func:`toy_head` and :func:`note_head`)."""
    mode: str                 # the course mode it is trained for
    steps: int                # optimizer steps
    batch: int                # tokens per step
    lr: float                 # Adam's learning rate
    width: int                # hidden width
    depth: int                # residual blocks (flow and energy heads)


TOY = dict(batch=256, lr=2e-3, width=64, depth=2)          # the toy heads' training and sizes
NOTES = dict(batch=64, lr=1e-3, width=128, depth=2)        # the notes heads'
NOTES_TRAIN = 2048                                         # training notes


def head_kwargs(kind: str, width: int, depth: int) -> dict:
    """The sizes :func:`course_lib.heads.make` takes for ``kind``: the MSE head has no depth."""
    checks.one_of(kind, "kind", KINDS)
    return dict(width=width) if kind == "mse" else dict(width=width, depth=depth)


def _cached_head(name: str, kind: str, fit: HeadFit, settings: dict, dims: tuple, head_class, loss_fn_of,
                 progress: bool) -> heads.Head:
    """A head ``kind`` (or a ``head_class`` of it whose loss a learner wrote) of ``dims`` (token, z),
    trained with ``loss_fn_of(head)`` for ``fit.steps`` steps through :func:`course_lib.train.cached`:
    shipped weights, else the disk cache, else trained now. A learner's class trains with
    ``share=False``: its model is written nowhere; the course's class is what ``pretrain`` ships."""
    checks.one_of(kind, "kind", KINDS)
    if head_class is not None and not (isinstance(head_class, type) and issubclass(head_class, heads.KINDS[kind])):
        raise TypeError(f"head_class: expected a subclass of heads.{heads.KINDS[kind].__name__} (the {kind} head), "
                        f"got {head_class!r}")
    cls = head_class or heads.KINDS[kind]

    def build():
        torch.manual_seed(SEED)
        return cls(*dims, **head_kwargs(kind, fit.width, fit.depth))

    return train.cached(name, dict(budget=fit, kind=kind, seed=SEED, **settings), build,
                        lambda h: train.train(h, loss_fn_of(h), fit.steps, lr=fit.lr, progress=progress,
                                              desc=f"{kind} head, {name}"),
                        share=head_class is None)


# ----------------------------------------------------------------------------- the trap in 2-D

def toy_data(n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Three conditions, two right answers each: c in {0, 1, 2} as a one-hot z (n, 3); the token x
    (n, 2) is centre(c) = (c - 1, 0) plus (0, +1) or (0, -1) with probability 1/2, plus noise of std
    0.05. Returns (z, x, centre)."""
    checks.positive_int(n, "n"), checks.generator(generator)
    c = torch.randint(3, (n,), generator=generator)
    z = torch.nn.functional.one_hot(c, 3).float()                                   # (n, 3)
    centre = torch.stack([c.float() - 1, torch.zeros(n)], 1)                        # (n, 2)
    up = torch.randint(2, (n,), generator=generator).float() * 2 - 1                # +-1
    x = centre + torch.stack([torch.zeros(n), up], 1) + 0.05 * torch.randn(n, 2, generator=generator)
    return z, x, centre


def _toy_loss(head: heads.Head, batch: int, seed: int):
    g = torch.Generator().manual_seed(seed)

    def loss_fn(step):
        z, x, _ = toy_data(batch, g)
        return head.loss(x, z, generator=g)
    return loss_fn


def fit_toy(head: heads.Head, steps: int, batch: int = TOY["batch"], lr: float = TOY["lr"], seed: int = SEED,
            progress: bool = False) -> train.History:
    """Train ``head`` alone (z is given, no transformer) on :func:`toy_data` for ``steps`` steps (CPU)."""
    checks.positive_int(steps, "steps"), checks.positive_int(batch, "batch")
    return train.train(head, _toy_loss(head, batch, seed), steps, lr=lr, progress=progress, desc=type(head).__name__)


def toy_head(kind: str, B, head_class: type | None = None, progress: bool = False) -> heads.Head:
    """The toy head ``kind`` (:data:`TOY` sizes, seeded) trained as :func:`fit_toy` does for
    ``B.toy_steps`` steps, through the model cache (``head.history``: its loss curve).
    ``head_class``: a subclass of the course's head whose loss a learner wrote (trains with it, is
    written nowhere; in "load" the course's shipped weights are loaded into it)."""
    fit = HeadFit(B.mode, B.toy_steps, **TOY)
    return _cached_head("heads-toy", kind, fit, {}, (2, 3), head_class,
                        lambda h: _toy_loss(h, fit.batch, SEED), progress)


def on_modes(head: heads.Head, n: int = 2000, steps: int = 8, seed: int = 1) -> dict:
    """Samples of ``head`` for n toy conditions: the share within 0.3 of one of the two right
    answers, the share in the upper one, and the samples and conditions themselves."""
    checks.positive_int(n, "n"), checks.positive_int(steps, "steps")
    z, _, centre = toy_data(n, torch.Generator().manual_seed(seed))
    x = head.sample(z, steps=steps, generator=torch.Generator().manual_seed(seed + 1))       # (n, 2)
    d = x - centre
    near = ((d[:, 1].abs() - 1).abs() < 0.3) & (d[:, 0].abs() < 0.3)
    return dict(on_modes=near.float().mean().item(), upper=(d[:, 1] > 0).float().mean().item(), samples=x, z=z)


# ----------------------------------------------------------------------------- audio: a note as a token

NOTE_RATE, NOTE_SECONDS = 8000, 0.125          # 1000 samples per note


def note_data(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, list]:
    """``n`` synthetic notes (:func:`course_lib.data.audio_clips`, C3..C6, 1/8 s at 8 kHz) as one
    continuous token each, the waveform (n, 1000), with the condition z = one-hot pitch CLASS (n, 12):
    C, C#, ... whatever the octave, so each condition has two or three right answers (its octaves).
    Returns (z, waves, MIDI numbers)."""
    clips = data.audio_clips(n, kind="note", sample_rate=NOTE_RATE, seconds=NOTE_SECONDS, seed=seed)
    midi = [m[0] for m in clips.notes]
    z = torch.nn.functional.one_hot(torch.tensor(midi) % 12, 12).float()                 # (n, 12)
    return z, clips.waves.cpu(), midi


def closest_note(samples: torch.Tensor, pitch_class: torch.Tensor, bank_waves: torch.Tensor,
                 bank_midi: list) -> torch.Tensor:
    """For each sample (n, L), the largest cosine similarity to a real note of its pitch class in the
    bank: 1 for a copy of one note; about 1/sqrt(k) for the average of k octaves."""
    bank_pc = torch.tensor(bank_midi) % 12                                               # (m,)
    sim = torch.nn.functional.normalize(samples, dim=1) @ torch.nn.functional.normalize(bank_waves, dim=1).T
    sim = sim.masked_fill(bank_pc[None, :] != pitch_class[:, None], -1.0)                # (n, m)
    return sim.amax(1)


def note_head(kind: str, B, n_train: int = NOTES_TRAIN, progress: bool = False) -> heads.Head:
    """The head ``kind`` (:data:`NOTES` sizes; z is the pitch class, no transformer) trained on
    ``n_train`` notes of :func:`note_data` for ``B.audio_steps`` steps, through the model cache.
    It sees each note divided by the notes' standard deviation (:func:`audio_heads`)."""
    checks.positive_int(n_train, "n_train")
    z_all, waves, _ = note_data(n_train, seed=0)
    scale = waves.std()                                                     # one number for all samples
    fit = HeadFit(B.mode, B.audio_steps, **NOTES)

    def loss_of(head):
        g = torch.Generator().manual_seed(SEED)

        def loss_fn(step):
            idx = torch.randint(n_train, (fit.batch,), generator=g)
            return head.loss(waves[idx] / scale, z_all[idx], generator=g)
        return loss_fn
    return _cached_head("heads-notes", kind, fit, dict(n_train=n_train), (waves.shape[1], 12), None, loss_of, progress)


def audio_heads(B, n_train: int = NOTES_TRAIN, progress: bool = False) -> dict:
    """The three heads of :func:`note_head` (``B.audio_steps`` steps, ``B.mode``), each drawing one
    note per pitch class. Returns {head: dict(samples (12, 1000), similarity (mean
    :func:`closest_note` over 240 draws))}, plus "real", the bank's notes, one per pitch class.

    The heads see each note divided by the notes' standard deviation (about 0.19), as
    :mod:`~course_lib.recipes.shape_latents` normalises its latents: a generative head starts from
    N(0, I) noise, and at a fifth of that scale the notes were lost in it (the flow head's similarity
    was 0.12 with raw waveforms, 0.59 normalised, at 400 steps)."""
    _, waves, midi = note_data(n_train, seed=0)
    scale = waves.std()
    bank = {}
    for m, w in zip(midi, waves):
        bank.setdefault(m, w)
    bank_midi, bank_waves = sorted(bank), torch.stack([bank[m] for m in sorted(bank)])   # one wave per note
    out = {"real": dict(samples=torch.stack([bank[next(m for m in bank_midi if m % 12 == pc)] for pc in range(12)]),
                        sample_rate=NOTE_RATE)}
    pcs = torch.arange(240) % 12
    for kind in KINDS:
        head = note_head(kind, B, n_train, progress)
        draws = scale * head.sample(torch.nn.functional.one_hot(pcs, 12).float(), generator=torch.Generator().manual_seed(1))
        out[kind] = dict(samples=draws[:12], similarity=closest_note(draws, pcs, bank_waves, bank_midi).mean().item())
    return out
