import pytest
import torch

from course_lib import data


@pytest.mark.parametrize("name", data.TOY_2D)
def test_toy_2d_shapes_labels_and_determinism(name):
    x, y = data.toy_2d(name, 500, seed=1, labels=True)
    assert x.shape == (500, 2) and x.dtype == torch.float32
    assert y.shape == (500,) and y.dtype == torch.int64
    assert set(y.unique().tolist()) == set(range(data.toy_2d_classes(name)))
    assert torch.equal(x, data.toy_2d(name, 500, seed=1))
    assert not torch.equal(x, data.toy_2d(name, 500, seed=2))
    assert 0.5 < x.std().item() < 2.5 and x.abs().max() < 6   # roughly unit scale for N(0, I) sources


def test_spiral_arms_are_point_symmetric():
    x, arm = data.toy_2d("spirals", 20000, seed=0, labels=True)
    a, b = x[arm == 0], x[arm == 1]
    # arm 1 is arm 0 turned by 180 degrees: their means are opposite, both near the centre
    assert (a.mean(0) + b.mean(0)).abs().max() < 0.1


def test_bad_names_and_sizes_are_clear_errors():
    with pytest.raises(ValueError, match="unknown 2-D data set 'spiral'.*spirals"):
        data.toy_2d("spiral", 10)
    with pytest.raises(ValueError, match="n: expected an int >= 1, got 0"):
        data.toy_2d("moons", 0)
    with pytest.raises(TypeError, match="frames: expected an int >= 1, got float 2.0"):
        data.moving_shapes(2, frames=2.0)
    with pytest.raises(ValueError, match="size must be 16 or 32"):
        data.shapes(4, size=20)
    with pytest.raises(ValueError, match="unknown audio kind 'noise'"):
        data.audio_clips(2, kind="noise")
    with pytest.raises(ValueError, match="sample_rate must be 8000 or 16000"):
        data.audio_clips(2, sample_rate=44100)
    with pytest.raises(ValueError, match="unknown photo 'mona'"):
        data.photo("mona")
    with pytest.raises(ValueError, match="unknown split"):
        data.digits("valid")


def test_digits_split_is_fixed_and_disjoint():
    tr, te = data.digits("train"), data.digits("test")
    assert len(tr) == 1438 and len(te) == 359
    assert tr.images.shape[1:] == (1, 8, 8) and tr.images.dtype == torch.int64
    assert tr.images.min() == 0 and tr.images.max() == 16
    assert torch.equal(tr.images, data.digits("train").images)
    rows_tr = {tuple(r) for r in tr.images.flatten(1).tolist()}
    rows_te = [tuple(r) for r in te.images.flatten(1).tolist()]
    assert sum(r in rows_tr for r in rows_te) < 5      # (a few scans are duplicates in the raw set)


def test_shapes_match_their_captions():
    s = data.shapes(64, size=16, seed=0)
    assert s.images.shape == (64, 3, 16, 16) and 0 <= s.images.min() and s.images.max() <= 1
    for i in range(64):
        size, color, shape, *pos = s.captions[i].split(" ")
        assert data.SHAPES[s.shape[i]] == shape and list(data.COLORS)[s.color[i]] == color
        assert data.POSITIONS[s.position[i]] == " ".join(pos) and data.SIZES[s.size[i]] == size
        img = s.images[i]
        # the drawn colour is the caption's colour
        lit = img.sum(0) > 0.5
        brightest = img.flatten(1)[:, img.sum(0).flatten().argmax()]     # a pixel fully inside
        assert torch.allclose(brightest, torch.tensor(data.COLORS[color]), atol=1e-5)
        # the shape's centre of mass is in the caption's third of the image
        ys, xs = lit.nonzero(as_tuple=True)
        col, row = data.POSITIONS.index(" ".join(pos)) % 3, data.POSITIONS.index(" ".join(pos)) // 3
        assert int(xs.float().mean() // (16 / 3)) == col and int(ys.float().mean() // (16 / 3)) == row
    large = s.images[s.size == 1].sum((1, 2, 3)).mean()
    small = s.images[s.size == 0].sum((1, 2, 3)).mean()
    assert large > 1.8 * small


def test_moving_shapes_move():
    clips = data.moving_shapes(8, frames=3, size=16, seed=0)
    assert clips.shape == (8, 3, 3, 16, 16)
    assert (clips[:, 0] - clips[:, 2]).abs().sum() > 0


def test_audio_is_in_range_and_labelled():
    a = data.audio_clips(12, sample_rate=8000, seconds=0.5, seed=0)
    assert a.waves.shape == (12, 4000) and a.waves.abs().max() <= 1.0
    assert set(a.kinds) <= set(data.AUDIO_KINDS) and len(a.notes) == 12
    note = data.audio_clips(1, kind="note", seconds=1.0, seed=5)
    spectrum = torch.fft.rfft(note.waves[0]).abs()
    peak_hz = spectrum.argmax().item() * 8000 / 8000          # 1-second clip: bin k = k Hz
    assert abs(peak_hz - data.midi_to_hz(note.notes[0][0])) < 3


def test_photo():
    p = data.photo("flower", size=32)
    assert p.shape[0] == 3 and min(p.shape[1:]) == 32 and 0 <= p.min() and p.max() <= 1


def test_data_file_checks_presence_and_checksum(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "ASSETS", tmp_path)
    with pytest.raises(FileNotFoundError, match="weights.pt is missing .*restore it with: git checkout -- "
                                                "course_lib/assets/weights.pt"):
        data.data_file("weights.pt", "0" * 64)
    (tmp_path / "weights.pt").write_bytes(b"abc")
    with pytest.raises(ValueError, match="corrupt"):
        data.data_file("weights.pt", "0" * 64)
    good = data.sha256(tmp_path / "weights.pt")
    assert good == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"   # sha256("abc")
    assert data.data_file("weights.pt", good) == tmp_path / "weights.pt"
    for bad in ("../pyproject.toml", "/etc/passwd", ""):
        with pytest.raises(ValueError, match="relative path inside course_lib/assets"):
            data.data_file(bad, good)


def test_shipped_assets_are_package_resources():
    from importlib import resources
    assert data.ASSETS == resources.files("course_lib") / "assets"
    readme = data.ASSETS / "README.md"
    path = data.data_file("README.md", data.sha256(readme))
    assert path.read_text(encoding="utf-8").startswith("# course_lib/assets/")
