import matplotlib.pyplot as plt
import pytest
import torch

from course_lib import viz


def teardown_function():
    plt.close("all")


def test_image_grid_accepts_the_course_layouts():
    viz.image_grid(torch.rand(6, 3, 8, 8))
    viz.image_grid(torch.randint(0, 17, (6, 1, 8, 8)), vmax=16)
    axes = viz.image_grid(torch.rand(5, 8, 8), titles=list("abcde"), nrow=3)
    assert axes.shape == (2, 3)
    with pytest.raises(ValueError, match=r"expects \(N, H, W\).*got \(2, 4, 8, 8\)"):
        viz.image_grid(torch.rand(2, 4, 8, 8))
    with pytest.raises(ValueError, match="5 images but 2 titles"):
        viz.image_grid(torch.rand(5, 8, 8), titles=["a", "b"])


def test_vector_field_calls_v_with_the_right_shapes():
    seen = {}
    def v(x, t):
        seen["x"], seen["t"] = x.shape, t.shape
        return -x
    viz.vector_field(v, 0.3, n=11)
    assert seen == {"x": (121, 2), "t": (121,)}
    with pytest.raises(ValueError, match=r"must return a tensor of shape \(121, 2\)"):
        viz.vector_field(lambda x, t: x[:, :1], 0.0, n=11)
    with pytest.raises(ValueError, match="kind must be"):
        viz.vector_field(v, 0.0, kind="arrows")


def test_euler_paths_and_static_explorer(monkeypatch):
    x0 = torch.randn(10, 2)
    path = viz._euler_paths(lambda x, t: torch.ones_like(x), x0, 4)
    assert path.shape == (5, 10, 2)
    assert torch.allclose(path[-1], x0 + 1)
    monkeypatch.setenv("COURSE_STATIC", "1")
    assert not viz.live_frontend()
    assert viz.field_explorer(lambda x, t: -x, x0=x0) is None   # static figure, no widget


def test_points_plots_check_shapes():
    viz.scatter_2d(torch.randn(50, 2), labels=torch.randint(0, 3, (50,)))
    viz.density_2d(torch.randn(50, 2))
    viz.trajectories(torch.randn(3, 50, 2))
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        viz.scatter_2d(torch.randn(50, 3))
    with pytest.raises(ValueError, match=r"\(steps\+1, N, 2\)"):
        viz.trajectories(torch.randn(50, 2))


def test_audio_player_and_spectrogram():
    w = torch.sin(torch.linspace(0, 200, 4000))
    viz.audio_player(w, 8000)
    viz.spectrogram(w, 8000)
    with pytest.raises(ValueError, match="1-D waveform"):
        viz.audio_player(w[None], 8000)
