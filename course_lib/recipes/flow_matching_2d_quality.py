"""How close a 2-D flow's samples are to the data (notebook 08, section 5; notebook 10 measures with it
too): the sliced Wasserstein distance and the grid total variation to held-out spirals, each with its
floor (the same distance between two draws of the data), and the shape the SWD is nearly blind to; the
loss at fixed times (section 3), the noise every model's trajectories start from (section 6), and
the rule by which a conditional sample landed in its class (section 7).

Evaluation seed s samples from noise seed ``NOISE_SEED + s`` and compares with held-out data
(:data:`course_lib.metrics.HELD_OUT_SEED` + s) along projections drawn from s. The functions are
re-exported by :mod:`course_lib.recipes.flow_matching_2d`, the notebook's recipe."""
from __future__ import annotations

from typing import Callable

import torch

from course_lib import checks, data, flow, metrics, train

STEP_LIST = (1, 2, 4, 8, 16, 32, 100)     # sampling steps of the steps-against-quality table
NOISE_SEED = 100                           # evaluation seed s samples from flow.prior(seed=100 + s)
COND_DATA = "8gaussians"                   # the labelled data set of the conditional flow (section 7)


def spirals(n: int, seed: int) -> torch.Tensor:
    """n points of the two-arm spiral, (n, 2): the data of sections 3-6 (``data_fn`` of the SWD)."""
    return data.toy_2d("spirals", n, seed=seed)


@torch.no_grad()
def loss_by_time(model: Callable, times, n: int = 8192, pair: Callable = flow.fm_pair) -> list[float]:
    """The flow-matching loss at each fixed t of ``times``, on n held-out spiral points and seeded
    noise (the same pairs for every t); ``pair(x0, x1, t) -> (x_t, target)``."""
    x1 = spirals(n, 777)                                                         # (n, 2)
    x0 = flow.prior(n, 2, seed=7, device=x1.device)                              # (n, 2)
    out = []
    for time in times:
        checks.number(time, "times", 0.0, 1.0)
        t = torch.full((n,), float(time), device=x1.device)                        # (n,)
        x_t, target = pair(x0, x1, t)
        out.append((model(x_t, t) - target).pow(2).mean().item())
    return out


def start_noise(n: int = 2000) -> torch.Tensor:
    """The fixed noise (seed 5) every model's trajectories start from, (n, 2)."""
    return flow.prior(n, 2, seed=5)


def swd(v: Callable, steps: int, method: str = "euler", *, n: int, seeds=(0,),
        distance: Callable = metrics.sliced_wasserstein, data_fn: Callable | None = None) -> float:
    """SWD of ``v``'s samples (``steps`` steps of ``method`` from noise seed 100 + s) to held-out
    spirals, averaged over evaluation seeds s (:func:`course_lib.metrics.swd_to_data`, 256
    projections)."""
    def sample_fn(m, s):
        return flow.sample(v, m, 2, steps, method, seed=NOISE_SEED + s)
    return metrics.swd_to_data(sample_fn, data_fn or spirals, n, seeds, distance=distance)


def swd_table(v: Callable, *, n: int, seeds=(0,), steps=STEP_LIST, methods=("euler", "heun"),
              distance: Callable = metrics.sliced_wasserstein, progress: bool = True) -> dict:
    """{(method, steps): :func:`swd`} for every method and step count (with ``progress``, a bar
    over the entries: in lecture mode the table takes several seconds)."""
    entries = [(m, k) for m in methods for k in steps]
    bar = train.progress_bar(len(entries), "SWD table") if progress else None
    table = {}
    for m, k in entries:
        table[m, k] = swd(v, k, m, n=n, seeds=seeds, distance=distance)
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    return table


def noise_floor(n: int, seeds=(0,), distance: Callable = metrics.sliced_wasserstein,
                data_fn: Callable | None = None) -> float:
    """The spirals' noise floor at n points (:func:`course_lib.metrics.noise_floor`)."""
    return metrics.noise_floor(data_fn or spirals, n, seeds, distance=distance)


def tv(v: Callable, steps: int, method: str = "euler", *, n: int, seeds=(0,),
       data_fn: Callable | None = None) -> float:
    """Grid TV (:func:`course_lib.metrics.grid_tv`, 32 x 32 cells over [-4, 4]^2) of ``v``'s samples
    to held-out spirals: the same samples and reference draws as :func:`swd`."""
    def sample_fn(m, s):
        return flow.sample(v, m, 2, steps, method, seed=NOISE_SEED + s)
    return metrics.grid_tv_to_data(sample_fn, data_fn or spirals, n, seeds)


def tv_floor(n: int, seeds=(0,), data_fn: Callable | None = None) -> float:
    """The grid TV of a second draw of the spirals at n points (:func:`course_lib.metrics.grid_tv_floor`)."""
    return metrics.grid_tv_floor(data_fn or spirals, n, seeds)


def same_radii_disk(x: torch.Tensor, seed: int = 0, radius: float | None = None) -> torch.Tensor:
    """Each point of x (N, 2) within ``radius`` of the origin (all of them if None) turned about the
    origin by its own random angle (seed): the same radial profile as x, the arms inside that radius
    smeared into a filled disk (the spiral with its inner coils filled in). (N, 2)."""
    checks.tensor(x, "x", ndim=2, dim=2, floating=True, shape="(N, 2)")
    if radius is not None:
        checks.number(radius, "radius", 0.0)
    g = torch.Generator().manual_seed(seed)
    a = (2 * torch.pi * torch.rand(x.shape[0], generator=g)).to(x.device, x.dtype)     # (N,)
    if radius is not None:
        a = torch.where(x.norm(dim=1) < radius, a, torch.zeros_like(a))                # outside: not turned
    c, s = torch.cos(a), torch.sin(a)
    return torch.stack([c * x[:, 0] - s * x[:, 1], s * x[:, 0] + c * x[:, 1]], dim=1)


def class_centres(n: int = 8192) -> torch.Tensor:
    """The mean of each class of held-out 8-Gaussians data (seed 30000), (K, 2)."""
    ref, ref_y = data.toy_2d(COND_DATA, n, seed=30_000, labels=True)
    return torch.stack([ref[ref_y == c].mean(0) for c in range(data.toy_2d_classes(COND_DATA))])


def class_accuracy(x: torch.Tensor, y: torch.Tensor, centres: torch.Tensor) -> float:
    """Fraction of points x (N, D) whose nearest centre (K, D) is the one of their label y (N,):
    the rule by which notebook 08 decides that a conditional sample "landed in its class"."""
    checks.tensor(x, "x", ndim=2, floating=True, shape="(N, D)")
    checks.rows(x, "x")
    checks.tensor(centres, "centres", ndim=2, dim=x.shape[1], shape=f"(K, {x.shape[1]})")
    checks.tensor(y, "y", ndim=1, floating=False, shape="(N,) int64 labels")
    checks.same_rows(y, "y", x.shape[0], "x")
    checks.index_range(y, "y", centres.shape[0])               # a label without a centre is never right
    d = torch.cdist(x.float(), centres.float().to(x.device))                     # (N, K)
    return (d.argmin(1) == y.to(x.device)).float().mean().item()
