"""Notebook 11's audio thread (course_lib.recipes.audio_tokens): the pitch judge, the token
flattening, the pitch-class prompt, bad input, and a learning test of both routes in quick mode."""
import math

import pytest
import torch

from course_lib import runtime
from course_lib.orders import prompt as P
from course_lib.recipes import audio_tokens as A


def _sines(midi, length=A.NOTE_LEN, sr=A.SAMPLE_RATE, phase=0.3):
    t = torch.arange(length) / sr
    hz = 440.0 * 2.0 ** ((torch.tensor(midi, dtype=torch.float64) - 69) / 12)
    return torch.sin(2 * math.pi * hz[:, None] * t + phase).float()                 # (B, L)


def test_judge_gives_the_exact_pitch_class_and_octave_of_sines_and_of_the_real_notes():
    midi = list(range(A.LOW_MIDI, A.HIGH_MIDI + 1))
    est = A.estimate_midi(_sines(midi))
    assert est.shape == (len(midi),)
    assert torch.allclose(est, torch.tensor(midi, dtype=est.dtype), atol=0.1)     # within a tenth of a semitone
    pc, octave = A.judge(_sines(midi))
    assert pc.tolist() == [m % 12 for m in midi]
    assert octave.tolist() == [m // 12 - 1 for m in midi]                          # MIDI 60 = C4
    assert A.judge(_sines([69]))[0].item() == 9 and A.judge(_sines([69]))[1].item() == 4     # A4 = 440 Hz
    # the notes of the data (harmonics, envelope): the judge is the ceiling, every note right
    waves, pcs, notes = A.note_data(200, seed=3)
    pc, octave = A.judge(waves)
    assert torch.equal(pc, pcs) and torch.equal(octave, notes // 12 - 1)
    # a quarter-tone off still rounds to the nearest semitone
    assert A.judge(_sines([60.4]))[0].item() == 0 and A.judge(_sines([60.6]))[0].item() == 1


def test_judge_samples_accuracy_and_octave_spread():
    asked = torch.tensor([0, 0, 0, 0, 7, 7, 7])
    waves = _sines([48, 60, 72, 84, 55, 55, 56])          # C: four octaves; G: one octave twice, then G#
    out = A.judge_samples(waves, asked)
    assert out["pitch_class_accuracy"] == pytest.approx(6 / 7)
    assert out["octave_spread"] == pytest.approx((4 / 4 + 1 / 3) / 2)             # C covers all 4, G 1 of 3
    assert out["octave_entropy"] == pytest.approx((2.0 + 0.0) / 2)
    assert A.real_octaves(0) == 4 and all(A.real_octaves(c) == 3 for c in range(1, 12))


def test_flatten_is_frame_by_frame_and_unflatten_inverts_it():
    codes = torch.randint(32, (3, A.FRAMES, 4))
    tokens = A.flatten_codes(codes)
    assert tokens.shape == (3, A.FRAMES * 4)
    t, q = 5, 2
    assert torch.equal(tokens[:, t * 4 + q], codes[:, t, q])                       # frame t, level q
    assert torch.equal(tokens[:, :4], codes[:, 0])                                  # frame 1, levels 1..Q first
    assert torch.equal(A.unflatten_codes(tokens, 4), codes)
    with pytest.raises(ValueError, match="divisible by levels = 3"):
        A.unflatten_codes(tokens[:, :10], 3)
    with pytest.raises(ValueError, match=r"codes: expected a 3-D tensor of shape \(B, T, Q\)"):
        A.flatten_codes(codes[0])
    with pytest.raises(TypeError, match="tokens: expected an integer tensor"):
        A.unflatten_codes(tokens.float(), 4)


def test_pitch_prompts_are_valid_prompts_one_per_class():
    pr = A.pitch_prompts(torch.arange(12))
    assert pr.shape == (12, 4) and torch.equal(P.check_prompts(pr), pr)
    assert len({tuple(r) for r in pr.tolist()}) == 12                              # 12 distinct prompts
    assert torch.equal(pr[:, 2:], P.NULL[2:].expand(12, 2))                        # place and size: null
    assert not (pr == P.NULL).all(1).any()                                         # none is the null prompt
    assert torch.equal(A.pitch_prompts(7), A.pitch_prompts(torch.tensor([7])))


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"pitch_class: expected values in \[0, 11\], got values in \[0, 12\]"):
        A.pitch_prompts(torch.tensor([0, 12]))
    with pytest.raises(ValueError, match=r"pitch_class: expected values in \[0, 11\]"):
        A.pitch_prompts(-1)
    with pytest.raises(TypeError, match="pitch_class: expected an int in 0..11"):
        A.pitch_prompts(3.0)
    with pytest.raises(TypeError, match="pitch_class: expected an integer tensor"):
        A.pitch_prompts(torch.tensor([1.0]))
    with pytest.raises(ValueError, match=r"waves: expected a 2-D tensor of shape \(B, L\), got shape \(1024,\)"):
        A.estimate_midi(torch.zeros(A.NOTE_LEN))
    with pytest.raises(ValueError, match="route: expected one of"):
        A.generate(None, "wavenet", 0)
    with pytest.raises(ValueError, match="sample_rate: expected an int >= 1, got 0"):
        A.estimate_midi(torch.zeros(2, A.NOTE_LEN), sample_rate=0)
    with pytest.raises(ValueError, match=r"high_hz: expected a number in \[100.0, 4000.0\], got 5000"):
        A.estimate_midi(torch.zeros(2, A.NOTE_LEN), high_hz=5000.0)
    with pytest.raises(ValueError, match="asked: expected 2 rows, one per row of waves, got shape"):
        A.judge_samples(torch.zeros(2, A.NOTE_LEN), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"pitch_class: expected values in \[0, 11\]"):
        A.real_octaves(12)
    with pytest.raises(ValueError, match="crop: expected a multiple of the hop 64"):
        A._crops(torch.zeros(4, A.NOTE_LEN), 2, 100)


@pytest.fixture(scope="module")
def quick_rows(tmp_path_factory):
    """audio_comparison in quick mode, every model trained from scratch in a fresh cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("COURSE_CACHE", str(tmp_path_factory.mktemp("audio_cache")))
    mp.setitem(runtime._state, "mode", "quick")
    torch.manual_seed(0)
    yield A.audio_comparison()
    mp.undo()


def test_quick_models_learn_the_pitch_class(quick_rows):
    """After quick training, both routes hit the asked pitch class far above chance (1/12) and
    below the ceiling of real notes; the costs are what the routes' shapes say."""
    rows = quick_rows
    assert list(rows) == list(A.ROUTES)
    assert rows["real notes"]["pitch_class_accuracy"] == 1.0
    assert rows["real notes"]["octave_spread"] > 0.9                              # 8 notes per class
    for name in A.ROUTES[1:]:
        assert 0 <= rows[name]["pitch_class_accuracy"] <= 1 and 0 <= rows[name]["octave_spread"] <= 1
    for name in ("codec reconstruction (tokens)", "GPT over RVQ tokens", "flow head on latents"):
        assert rows[name]["pitch_class_accuracy"] > 0.25, (name, rows[name])     # chance: 0.083
    B = A.budget("quick")
    fps = A.SAMPLE_RATE / 64
    assert rows["GPT over RVQ tokens"]["tokens_per_second"] == fps * B.codec.levels
    assert rows["flow head on latents"]["tokens_per_second"] == fps
    assert rows["GPT over RVQ tokens"]["sequential_evaluations"] == A.FRAMES * B.codec.levels
    assert rows["flow head on latents"]["sequential_evaluations"] == A.FRAMES * (1 + B.latents.head_steps)
    assert all(rows[n]["params"] > 1000 and rows[n]["seconds_per_audio_second"] > 0 for n in A.ROUTES[1:])


def test_audio_examples_give_waves_of_the_asked_class(quick_rows, monkeypatch, tmp_path):
    monkeypatch.setitem(runtime._state, "mode", "quick")
    ex = A.audio_examples(pitch_class=4, n=3)                  # quick_rows' models, from its cache
    assert ex["sample_rate"] == A.SAMPLE_RATE
    for key in ("real", "GPT over RVQ tokens", "flow head on latents"):
        assert ex[key].shape == (3, A.NOTE_LEN) and torch.isfinite(ex[key]).all()
        assert ex["midi"][key].shape == (3,)
    assert (ex["midi"]["real"].round().long() % 12 == 4).all()


def test_lecture_mode_loads_the_shipped_weights_and_both_routes_get_the_pitch_class(monkeypatch, tmp_path):
    """The three lecture models come from data/weights (sha256 checked, nothing trains: an empty
    disk cache), and on them both routes name the asked pitch class nearly always and cover the
    octaves: the section's lecture bar."""
    from course_lib import weights
    monkeypatch.setitem(runtime._state, "mode", "lecture")
    monkeypatch.setitem(runtime._state, "weights", None)
    monkeypatch.delenv("COURSE_WEIGHTS", raising=False)
    monkeypatch.delenv("COURSE_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    assert weights.folder() is not None, "the course's data/weights folder"
    M = A.models()
    for model in (M.codec, M.token_gpt, M.latent_prior):
        assert model.from_cache and str(getattr(model, "shipped", "")).startswith(str(weights.folder()))
    assert not list(tmp_path.iterdir())                                            # nothing trained here
    rows = A.audio_comparison(n=8)
    for name in A.ROUTES[1:]:
        assert rows[name]["pitch_class_accuracy"] > 0.9, (name, rows[name])
        assert rows[name]["octave_spread"] > 0.8, (name, rows[name])
