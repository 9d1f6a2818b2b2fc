"""Pictures and sounds: image grids, 2-D scatter and density, vector fields, trajectories, audio.

Interactive widgets (:func:`field_explorer`) need a live Jupyter front end. Under nbval, HTML
export or ``make run`` (where ``COURSE_STATIC=1``) they draw a static figure of the same content
instead, so an executed notebook still shows something true.
"""
from __future__ import annotations

import math
import os
from typing import Callable

import matplotlib.pyplot as plt
import numpy as np
import torch

from course_lib import checks, runtime


def live_frontend() -> bool:
    """True when widgets can be interacted with: inside a Jupyter kernel and COURSE_STATIC unset."""
    if os.environ.get("COURSE_STATIC", "") not in ("", "0"):
        return False
    try:
        from IPython import get_ipython
        ip = get_ipython()
        return ip is not None and getattr(ip, "kernel", None) is not None
    except ImportError:
        return False


def _np(x) -> np.ndarray:
    return x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


# ----------------------------------------------------------------------------- images

def image_grid(images, nrow: int | None = None, titles=None, vmax: float | None = None, ax=None,
               scale: float = 1.0, cmap: str = "gray", pad: int = 1):
    """Show a batch of images as one grid.

    images: (N, H, W), (N, 1, H, W) or (N, 3, H, W); float in [0, 1] (or [0, vmax]) or integer
    levels (e.g. digits 0..16: pass vmax=16). ``titles``: N short strings, one under each image
    (then the grid gets a figure of its own: no ``ax``).
    """
    x = images.detach().float().cpu() if isinstance(images, torch.Tensor) else torch.as_tensor(images).float()
    if x.dim() == 3:
        x = x[:, None]
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"images: image_grid expects (N, H, W), (N, 1, H, W) or (N, 3, H, W), got {tuple(x.shape)}")
    n, c, h, w = x.shape
    if n == 0:
        raise ValueError("images: image_grid got no images (shape (0, ...))")
    if nrow is not None:
        checks.positive_int(nrow, "nrow")                     # 0 would silently become the default
    if vmax is None:
        vmax = 1.0 if x.max() <= 1.0 + 1e-6 else float(x.max())
    x = (x / vmax).clamp(0, 1)
    if titles is not None:
        if ax is not None:
            raise ValueError("image_grid with titles draws its own figure: leave ax=None")
        if len(titles) < n:
            raise ValueError(f"image_grid got {n} images but {len(titles)} titles")
        nrow = nrow or min(n, 8)
        rows = int(math.ceil(n / nrow))
        lines = max(str(t).count("\n") + 1 for t in titles[:n])
        fig, axes = plt.subplots(rows, nrow, figsize=(scale * 1.1 * nrow, scale * (1.05 + 0.16 * lines) * rows),
                                 squeeze=False)
        for i, a in enumerate(axes.flat):
            a.set_axis_off()
            if i < n:
                img = x[i, 0].numpy() if c == 1 else x[i].permute(1, 2, 0).numpy()
                a.imshow(img, cmap=cmap if c == 1 else None, vmin=0, vmax=1, interpolation="nearest")
                a.set_title(str(titles[i]), fontsize=7)
        fig.tight_layout()
        return axes
    nrow = nrow or min(n, int(math.ceil(math.sqrt(n))))
    rows = int(math.ceil(n / nrow))
    grid = torch.full((c, rows * (h + pad) + pad, nrow * (w + pad) + pad), 0.5)
    for i in range(n):
        r, col = divmod(i, nrow)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        grid[:, top:top + h, left:left + w] = x[i]
    if ax is None:
        width = scale * min(12.0, max(2.0, 0.09 * grid.shape[2]))
        _, ax = plt.subplots(figsize=(width, width * grid.shape[1] / grid.shape[2]))
    img = grid[0].numpy() if c == 1 else grid.permute(1, 2, 0).numpy()
    ax.imshow(img, cmap=cmap if c == 1 else None, vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    return ax


def reconstruction_grid(originals, rows: dict, n: int = 8, scale: float = 1.0, vmax: float | None = None):
    """Originals in the first row, then one row per entry of ``rows`` (label -> images of the same
    shape, e.g. a tokenizer's reconstructions), each clamped to the originals' range; every image is
    titled with its row's label. Returns the axes (rows + 1, n).

    originals: (N, C, H, W) or (N, H, W) with N >= n; rows: {label: tensor like originals}.
    """
    x = originals.detach()
    if not isinstance(rows, dict) or not rows:
        raise TypeError(f"rows: expected a non-empty dict label -> images, got {type(rows).__name__}")
    n = min(n, x.shape[0])
    top = float(vmax) if vmax is not None else (1.0 if float(x.max()) <= 1.0 + 1e-6 else float(x.max()))
    panels, titles = [x[:n]], ["original"] * n
    for label, imgs in rows.items():
        if not isinstance(imgs, torch.Tensor) or tuple(imgs.shape[1:]) != tuple(x.shape[1:]):
            got = tuple(imgs.shape) if isinstance(imgs, torch.Tensor) else type(imgs).__name__
            raise ValueError(f"rows[{label!r}]: expected images of shape (N, {', '.join(map(str, x.shape[1:]))})"
                             f" like the originals, got {got}")
        panels.append(imgs[:n].detach().to(x.device).clamp(0, top))
        titles += [str(label)] * n
    return image_grid(torch.cat(panels), nrow=n, titles=titles, vmax=top, scale=scale)


# ----------------------------------------------------------------------------- 2-D points

def _square_axes(ax, lim: float, title: str | None = None) -> None:
    """The look of every 2-D plot of the course: [-lim, lim]^2, equal aspect, no ticks."""
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)


def scatter_2d(points, ax=None, labels=None, lim: float = 3.0, s: float = 1.0, alpha: float = 0.4,
               title: str | None = None, color=None):
    """Scatter plot of (N, 2) points, coloured by ``labels`` if given."""
    p = _np(points)
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"scatter_2d expects points of shape (N, 2), got {p.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(3.2, 3.2))
    c = _np(labels) if labels is not None else color
    ax.scatter(p[:, 0], p[:, 1], s=s, alpha=alpha, c=c, cmap="tab10" if labels is not None else None,
               linewidths=0)
    _square_axes(ax, lim, title)
    return ax


def density_2d(points, ax=None, lim: float = 3.0, bins: int = 100, title: str | None = None):
    """2-D histogram of (N, 2) points (log colour scale), a smoother view than a scatter."""
    p = _np(points)
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"density_2d expects points of shape (N, 2), got {p.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(3.2, 3.2))
    h, _, _ = np.histogram2d(p[:, 0], p[:, 1], bins=bins, range=[[-lim, lim], [-lim, lim]])
    ax.imshow(np.log1p(h.T), origin="lower", extent=[-lim, lim, -lim, lim], cmap="magma")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def _field_on_grid(v: Callable, t: float, lim: float, n: int):
    xs = torch.linspace(-lim, lim, n)
    gx, gy = torch.meshgrid(xs, xs, indexing="xy")
    pts = torch.stack([gx.flatten(), gy.flatten()], 1)                      # (n*n, 2)
    # a module's own device; any other callable (a guided field wrapping a model, a hand-written
    # field) gets the course's device
    dev = next((p.device for p in getattr(v, "parameters", lambda: [])()), runtime.device())
    pts = pts.to(dev)
    with torch.no_grad():
        vel = v(pts, torch.full((pts.shape[0],), float(t), device=dev))
    if not isinstance(vel, torch.Tensor) or tuple(vel.shape) != tuple(pts.shape):
        raise ValueError(f"v(x, t) must return a tensor of shape {tuple(pts.shape)}, got "
                         f"{tuple(getattr(vel, 'shape', ())) or type(vel).__name__}")
    return gx.numpy(), gy.numpy(), _np(vel[:, 0]).reshape(n, n), _np(vel[:, 1]).reshape(n, n)


def vector_field(v: Callable, t: float = 0.0, ax=None, lim: float = 3.0, n: int = 21,
                 kind: str = "quiver", title: str | None = None):
    """Draw a velocity field ``v(x, t)`` (x: (N, 2), t: (N,) -> (N, 2)) at time ``t``."""
    if kind not in ("quiver", "stream"):
        raise ValueError(f"kind must be 'quiver' or 'stream', got {kind!r}")
    checks.number(t, "t")
    checks.number(lim, "lim", 1e-12)                          # 0: a grid of one point, a division by 0
    checks.positive_int(n, "n", 2)                            # arrows one grid spacing 2 lim / (n - 1) long
    if ax is None:
        _, ax = plt.subplots(figsize=(3.2, 3.2))
    gx, gy, u, w = _field_on_grid(v, t, lim, n)
    speed = np.hypot(u, w)
    if kind == "quiver":
        # the 90th-percentile arrow is one grid spacing long: a few fast corners don't shrink the rest
        ax.quiver(gx, gy, u, w, speed, cmap="viridis", angles="xy", scale_units="xy",
                  scale=max(float(np.percentile(speed, 90)), 1e-6) / (2 * lim / (n - 1)), width=0.004)
    else:
        ax.streamplot(gx, gy, u, w, color=speed, cmap="viridis", density=1.0, linewidth=0.8)
    _square_axes(ax, lim, title if title is not None else f"v(x, t={t:.2f})")
    return ax


def trajectories(traj, ax=None, lim: float = 3.0, max_paths: int = 200, title: str | None = None):
    """Paths of particles. traj: (T+1, N, 2), positions at each step (start dot grey, end red)."""
    p = _np(traj)
    if p.ndim != 3 or p.shape[2] != 2:
        raise ValueError(f"trajectories expects (steps+1, N, 2), got {p.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(3.2, 3.2))
    p = p[:, :max_paths]
    ax.plot(p[:, :, 0], p[:, :, 1], color="tab:blue", alpha=0.35, lw=0.7)
    ax.scatter(p[0, :, 0], p[0, :, 1], s=3, color="grey", zorder=3)
    ax.scatter(p[-1, :, 0], p[-1, :, 1], s=3, color="tab:red", zorder=3)
    _square_axes(ax, lim, title)
    return ax


def field_explorer(v: Callable, paths: Callable, x0: torch.Tensor | None = None, lim: float = 3.0,
                   static_times=(0.0, 0.25, 0.5, 0.75, 1.0)):
    """Explore a vector field ``v(x, t)``: a time slider, a steps slider and a trajectories toggle.

    ``paths(v, x0, steps) -> (steps+1, N, 2)`` computes the trajectories (the caller's solver, e.g.
    Euler from :mod:`course_lib.flow`: viz knows no topic). Without a live front end it draws the
    field at ``static_times`` with the 4-step paths instead.
    """
    if not callable(paths):
        raise TypeError(f"paths: expected a function paths(v, x0, steps) -> (steps+1, N, 2), "
                        f"got {type(paths).__name__}")
    x0 = x0 if x0 is not None else torch.randn(300, 2, generator=torch.Generator().manual_seed(0))
    integrate = paths

    def draw(t=0.5, steps=4, show_paths=True):
        fig, axes = plt.subplots(1, 2, figsize=(7, 3.4))
        vector_field(v, t, ax=axes[0], lim=lim, kind="stream")
        path = integrate(v, x0, steps)                                      # (steps+1, N, 2)
        k = min(int(round(t * steps)), steps)
        if show_paths:
            trajectories(path[: k + 1], ax=axes[1], lim=lim, title=f"{steps} Euler steps, up to t={k / steps:.2f}")
        else:
            scatter_2d(path[k], ax=axes[1], lim=lim, s=4, alpha=0.8, title=f"particles at t={k / steps:.2f}")
        plt.show()

    if live_frontend():
        import ipywidgets as w
        return w.interact(draw, t=w.FloatSlider(0.5, min=0, max=1, step=0.05, description="t"),
                          steps=w.IntSlider(4, min=1, max=64, description="steps"),
                          show_paths=w.Checkbox(True, description="trajectories"))
    fig, axes = plt.subplots(2, len(static_times), figsize=(2.3 * len(static_times), 4.6))
    path = integrate(v, x0, 4)
    for j, t in enumerate(static_times):
        vector_field(v, t, ax=axes[0, j], lim=lim, kind="stream")
        k = min(int(round(t * 4)), 4)
        trajectories(path[: k + 1], ax=axes[1, j], lim=lim, title=f"4 steps, t={k / 4:.2f}")
    fig.suptitle("vector-field explorer (static view: run the notebook live for the sliders)", fontsize=9)
    plt.tight_layout()
    plt.show()
    return None


def animate(draw_frame: Callable, n_frames: int, size: float = 3.6, interval: int = 250):
    """Frames ``draw_frame(ax, i)`` for i < n_frames: a playable animation in a live notebook, a row
    of static panels otherwise (an exported page, nbval, ``COURSE_STATIC=1``)."""
    if live_frontend():
        from IPython.display import HTML, display
        from matplotlib import animation

        fig, ax = plt.subplots(figsize=(size, size))

        def show(i):
            ax.clear()
            draw_frame(ax, i)

        anim = animation.FuncAnimation(fig, show, frames=n_frames, interval=interval)
        plt.close(fig)
        display(HTML(anim.to_jshtml()))
        return anim
    fig, axes = plt.subplots(1, n_frames, figsize=(0.6 * size * n_frames, 0.65 * size), squeeze=False)
    for i, ax in enumerate(axes[0]):
        draw_frame(ax, i)
    plt.tight_layout()
    plt.show()
    return axes[0]


def interact(draw: Callable, static: dict | list | None = None, **sliders):
    """``ipywidgets.interact(draw, **sliders)`` in a live notebook. Otherwise (an exported page,
    nbval) ``draw(**kw)`` for each settings dict in ``static`` (one dict or a list of them), or, with
    no ``static``, a note that the sliders need a live kernel."""
    if live_frontend():
        import ipywidgets as widgets
        return widgets.interact(draw, **sliders)
    if static is not None:
        for kw in ([static] if isinstance(static, dict) else static):
            draw(**kw)
    else:
        print(f"(static notebook: the sliders {', '.join(sliders)} need a live Jupyter kernel)")
    return None


# ----------------------------------------------------------------------------- audio

def spectrogram(wave, sample_rate: int, ax=None, n_fft: int = 256, title: str | None = None):
    """Log-magnitude STFT spectrogram of a 1-D waveform."""
    w = wave.detach().float().cpu() if isinstance(wave, torch.Tensor) else torch.as_tensor(wave).float()
    if w.dim() != 1:
        raise ValueError(f"spectrogram expects a 1-D waveform, got shape {tuple(w.shape)}")
    spec = torch.stft(w, n_fft, hop_length=n_fft // 4, window=torch.hann_window(n_fft), return_complex=True)
    db = 20 * torch.log10(spec.abs() + 1e-5)
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 2.2))
    ax.imshow(db.numpy(), origin="lower", aspect="auto", cmap="magma", vmin=float(db.max()) - 80,
              extent=[0, len(w) / sample_rate, 0, sample_rate / 2 / 1000])
    ax.set_xlabel("time (s)")
    ax.set_ylabel("kHz")
    if title:
        ax.set_title(title, fontsize=9)
    return ax


class AudioLabel:
    """The title of an audio player shown as a line of text above it (HTML in a notebook, the plain
    title in a text view), for players drawn without their figure."""

    def __init__(self, text: str):
        self.text = text

    def _repr_html_(self) -> str:
        import html
        return f'<div style="font-size: 90%; font-weight: bold; margin-top: 4px">{html.escape(self.text)}</div>'

    def __repr__(self) -> str:
        return self.text


def audio_player(wave, sample_rate: int, title: str = "", plot: bool = True):
    """A waveform and spectrogram figure, then an audio player (IPython.display.Audio).

    With ``plot=False`` the title (when there is one) is shown as a line of text above the player, so
    that every player says what it plays."""
    from IPython.display import Audio, display
    w = wave.detach().float().cpu() if isinstance(wave, torch.Tensor) else torch.as_tensor(wave).float()
    if w.dim() != 1:
        raise ValueError(f"audio_player expects a 1-D waveform, got shape {tuple(w.shape)}")
    if plot:
        fig, axes = plt.subplots(1, 2, figsize=(9, 2.2))
        t = np.arange(len(w)) / sample_rate
        axes[0].plot(t, w.numpy(), lw=0.5)
        axes[0].set_xlabel("time (s)")
        axes[0].set_ylim(-1.05, 1.05)
        axes[0].set_title(title or "waveform", fontsize=9)
        spectrogram(w, sample_rate, ax=axes[1], title="spectrogram")
        plt.tight_layout()
        plt.show()
    elif title:
        display(AudioLabel(title))
    player = Audio(w.numpy(), rate=sample_rate, normalize=False) if w.abs().max() <= 1 else Audio(w.numpy(), rate=sample_rate)
    display(player)
    return player
