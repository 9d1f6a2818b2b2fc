import matplotlib.pyplot as plt
import numpy as np
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


def test_static_explorer_draws_the_field_and_the_given_paths(monkeypatch):
    monkeypatch.setenv("COURSE_STATIC", "1")
    monkeypatch.setattr(plt, "show", lambda: None)
    assert not viz.live_frontend()
    x0 = torch.randn(10, 2)
    calls = []

    def paths(v, x, steps):                 # straight lines to x + 1, as Euler on v = 1 gives
        calls.append(steps)
        return torch.stack([x + k / steps for k in range(steps + 1)])     # (steps+1, N, 2)

    assert viz.field_explorer(lambda x, t: torch.ones_like(x), paths, x0=x0) is None   # static: no widget
    assert calls == [4]
    axes = plt.gcf().axes
    assert len(axes) == 10                                   # 5 times x (field, paths)
    last = axes[-1]                                          # t = 1: the whole 4-step paths
    assert last.get_title() == "4 steps, t=1.00"
    ends = last.collections[-1].get_offsets()                # red dots at the end points
    assert np.allclose(np.asarray(ends), (x0 + 1).numpy(), atol=1e-6)
    with pytest.raises(TypeError, match="paths: expected a function"):
        viz.field_explorer(lambda x, t: x, paths=None)


def test_points_plots_hold_the_data_and_limits():
    pts = torch.randn(50, 2)
    ax = viz.scatter_2d(pts, labels=torch.randint(0, 3, (50,)), lim=2.5)
    assert np.allclose(ax.collections[0].get_offsets(), pts.numpy())
    assert ax.get_xlim() == (-2.5, 2.5) and ax.get_ylim() == (-2.5, 2.5)
    inside = pts.abs().max(1).values < 3.0
    ax = viz.density_2d(pts, bins=20)
    counts = np.expm1(ax.images[0].get_array())              # the histogram behind the log scale
    assert counts.shape == (20, 20) and np.isclose(counts.sum(), int(inside.sum()))
    traj = torch.randn(4, 7, 2)
    ax = viz.trajectories(traj)
    assert len(ax.lines) == 7                                # one line per path
    assert np.allclose(ax.lines[0].get_xydata(), traj[:, 0].numpy())
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        viz.scatter_2d(torch.randn(50, 3))
    with pytest.raises(ValueError, match=r"\(steps\+1, N, 2\)"):
        viz.trajectories(torch.randn(50, 2))


def test_reconstruction_grid_rows_and_titles():
    x = torch.rand(5, 3, 8, 8)
    axes = viz.reconstruction_grid(x, {"plain": x * 2, "ema": x.flip(0)}, n=4)
    assert axes.shape == (3, 4)
    assert [a.get_title() for a in axes[:, 0]] == ["original", "plain", "ema"]
    shown = axes[1, 0].images[0].get_array()                # x * 2 clamped to [0, 1]
    assert np.allclose(shown, (x[0] * 2).clamp(0, 1).permute(1, 2, 0).numpy(), atol=1e-6)
    with pytest.raises(ValueError, match=r"rows\['bad'\]: expected images of shape \(N, 3, 8, 8\)"):
        viz.reconstruction_grid(x, {"bad": torch.rand(5, 1, 8, 8)})


def test_audio_player_and_spectrogram(monkeypatch):
    monkeypatch.setattr(plt, "show", lambda: None)
    w = torch.sin(torch.linspace(0, 200, 4000))
    player = viz.audio_player(w, 8000, title="a tone")
    assert "<audio" in player._repr_html_() and len(player.data) > 8000   # a WAV of 4000 16-bit samples
    fig = plt.gcf()
    wave_ax, spec_ax = fig.axes[:2]
    assert wave_ax.get_title() == "a tone"
    assert np.allclose(wave_ax.lines[0].get_ydata(), w.numpy())
    ax = viz.spectrogram(w, 8000, n_fft=256)
    img = ax.images[0]
    assert img.get_array().shape[0] == 129                   # n_fft / 2 + 1 frequency bins
    assert img.get_extent()[1] == pytest.approx(0.5)          # 4000 samples at 8 kHz
    with pytest.raises(ValueError, match="1-D waveform"):
        viz.audio_player(w[None], 8000)


def test_audio_player_without_a_plot_shows_its_title(monkeypatch):
    import IPython.display
    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj))
    n_figures = len(plt.get_fignums())
    viz.audio_player(torch.zeros(800), 8000, title="8 bits <quiet>", plot=False)
    assert len(plt.get_fignums()) == n_figures                    # no figure drawn
    label, player = shown
    assert repr(label) == "8 bits <quiet>" and "8 bits &lt;quiet&gt;" in label._repr_html_()
    assert "<audio" in player._repr_html_()
    shown.clear()
    viz.audio_player(torch.zeros(800), 8000, plot=False)         # no title: the player alone
    assert len(shown) == 1 and "<audio" in shown[0]._repr_html_()


def test_animate_and_interact_draw_their_static_view(monkeypatch, capsys):
    monkeypatch.setenv("COURSE_STATIC", "1")
    monkeypatch.setattr(plt, "show", lambda: None)
    drawn = []
    axes = viz.animate(lambda ax, i: (drawn.append(i), ax.set_title(f"frame {i}")), 4)
    assert drawn == [0, 1, 2, 3]                             # one panel per frame, in order
    assert [a.get_title() for a in axes] == [f"frame {i}" for i in range(4)]
    seen = []
    assert viz.interact(lambda w=1.0: seen.append(w), static=[dict(w=0.0), dict(w=3.0)], w=(0.0, 6.0)) is None
    assert seen == [0.0, 3.0]                                # every static setting, nothing else
    assert viz.interact(lambda w=1.0: seen.append(w), w=(0.0, 6.0)) is None
    assert seen == [0.0, 3.0] and "need a live Jupyter kernel" in capsys.readouterr().out
