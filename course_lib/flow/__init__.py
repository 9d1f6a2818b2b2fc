"""Flow matching: the conditional optimal-transport path, its loss, time sampling, ODE samplers,
classifier-free guidance and reflow.

**Time convention of the whole course (the lecture's):** t = 0 is noise, t = 1 is data,

    x_t = (1 - t) x_0 + t x_1,        x_0 ~ N(0, I) (noise),  x_1 ~ data,
    d x_t / d t = x_1 - x_0,          the regression target,

and sampling integrates dx/dt = v_theta(x, t) from t = 0 to t = 1. This is Lipman et al. 2023
(eq. 20-23 with sigma_min = 0, the ``CondOTScheduler`` of facebookresearch/flow_matching) and
Liu et al. 2022's rectified flow. SD3 and MeanFlow flip it (t = 1 is noise); see
../shared/reference/algorithms.md §0.1 before mixing code from them.

The pieces, small and composable in the spirit of facebookresearch/flow_matching:

* path:     :class:`CondOTPath` (``path.sample(x_0, x_1, t)`` -> :class:`PathSample`), :func:`fm_pair`;
* coupling: :func:`minibatch_ot` (which noise goes with which data point; independent by default);
* time:     :func:`sample_time` ("uniform", "logit_normal" of SD3 §3.1);
* loss:     :func:`loss` (E ||v_theta(x_t, t) - (x_1 - x_0)||^2, mean over batch and dims);
* solver:   :func:`integrate` (Euler, midpoint, Heun; any number of steps; optional trajectory),
            :func:`euler_sample` (the plain loop of the exercise);
* guidance: :func:`guided_velocity`, :func:`field` (classifier-free guidance, v_u + w (v_c - v_u));
* reflow:   :func:`reflow_pairs`, :func:`reflow` (Liu et al. 2022 §2.3), and :func:`straightness`.

A "velocity field" below is any callable ``v(x, t) -> (N, D)`` with x (N, D) and t (N,); a
:class:`course_lib.nets.mlp.VelocityMLP` is one, and :func:`field` turns a conditional model plus labels
into one. Usage::

    model = nn.VelocityMLP(nn.MLPConfig(dim=2)).to(runtime.device())
    hist = train.train(model, lambda step: flow.loss(model, data.toy_2d("spirals", 1024, seed=step)), 3000)
    x1 = flow.integrate(model, torch.randn(5000, 2), steps=100)                 # (5000, 2) samples
    x1, traj = flow.integrate(model, x0, steps=8, method="heun", trajectory=True)  # traj (9, N, 2)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from course_lib import runtime
from course_lib import train as _train

METHODS = {"euler": 1, "midpoint": 2, "heun": 2}   # method -> network evaluations (NFE) per step
TIME_SAMPLERS = ("uniform", "logit_normal")


def _check_points(x, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N, D), got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor, got {x.dtype}")
    if x.dim() != 2:
        raise ValueError(f"{name} must have shape (N, D), got {tuple(x.shape)}")


def _check_time(t, n: int) -> None:
    if not isinstance(t, torch.Tensor) or not t.is_floating_point():
        raise TypeError(f"t must be a floating tensor of shape ({n},), got {getattr(t, 'dtype', type(t).__name__)}")
    if t.shape != (n,):
        raise ValueError(f"t must have shape ({n},) (one time per point), got {tuple(t.shape)}")


# ----------------------------------------------------------------------------- path

@dataclass
class PathSample:
    """A batch drawn from the path: x_0 (noise), x_1 (data), t, x_t, and the target dx_t. (N, D)/(N,)"""
    x_0: torch.Tensor
    x_1: torch.Tensor
    t: torch.Tensor
    x_t: torch.Tensor
    dx_t: torch.Tensor


class CondOTPath:
    """The conditional optimal-transport path of Lipman et al. 2023 (eq. 20-23):

        x_t  = (1 - (1 - sigma_min) t) x_0 + t x_1,
        dx_t = x_1 - (1 - sigma_min) x_0.

    With ``sigma_min = 0`` (the default, as in facebookresearch/flow_matching's ``CondOTScheduler``
    and rectified flow) this is the straight line x_t = (1 - t) x_0 + t x_1 with constant velocity
    x_1 - x_0. ``sample(x_0, x_1, t)`` takes x_0, x_1 (N, D) and t (N,) and returns a PathSample.
    """

    def __init__(self, sigma_min: float = 0.0):
        if not 0.0 <= sigma_min < 1.0:
            raise ValueError(f"sigma_min must be in [0, 1), got {sigma_min!r}")
        self.sigma_min = float(sigma_min)

    def sample(self, x_0: torch.Tensor, x_1: torch.Tensor, t: torch.Tensor) -> PathSample:
        _check_points(x_0, "x_0")
        _check_points(x_1, "x_1")
        if x_0.shape != x_1.shape:
            raise ValueError(f"x_0 and x_1 must have the same shape, got {tuple(x_0.shape)} and {tuple(x_1.shape)}")
        _check_time(t, x_0.shape[0])
        k = 1.0 - self.sigma_min
        tt = t.to(x_0.dtype)[:, None]                                           # (N, 1) broadcasts over D
        x_t = (1.0 - k * tt) * x_0 + tt * x_1                                   # (N, D)
        dx_t = x_1 - k * x_0                                                    # (N, D)
        return PathSample(x_0=x_0, x_1=x_1, t=t, x_t=x_t, dx_t=dx_t)

    def __repr__(self):
        return f"CondOTPath(sigma_min={self.sigma_min})"


def fm_pair(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor):
    """The flow-matching training pair: x_t = (1 - t) x0 + t x1 and the target v = x1 - x0.

    x0 (N, D) noise, x1 (N, D) data, t (N,) in [0, 1]. Returns (x_t, v), both (N, D).
    """
    s = CondOTPath().sample(x0, x1, t)
    return s.x_t, s.dx_t


# ----------------------------------------------------------------------------- coupling

def minibatch_ot(x0: torch.Tensor, x1: torch.Tensor, block: int | None = 256):
    """Pair noise with data by optimal transport inside the minibatch (OT-CFM, Tong et al. 2023
    §3.2 "minibatch OT"; Pooladian et al. 2023 "Multisample flow matching"; algorithms.md §8.1).

    Plain flow matching pairs x_0 and x_1 *independently*, so straight lines from different pairs
    cross and the learned field (their average) bends. Here the batch is re-paired to minimise
    sum_i ||x_0,i - x_1,pi(i)||^2: between two equal-size point sets with equal weights the OT plan
    is a permutation (Birkhoff), found exactly by ``scipy.optimize.linear_sum_assignment``. Lines of
    an OT pairing do not cross, so the field is straighter and few Euler steps go further. Each side's
    marginal is untouched (x_1 is only permuted), so the model still learns to reach the data.

    x0, x1: (N, D). ``block``: solve the assignment in consecutive blocks of this many points (the
    cost is O(block^3); Tong et al. use batches of 256), or None for the whole batch at once.
    Returns (x0, x1 permuted), both (N, D).
    """
    from scipy.optimize import linear_sum_assignment   # scipy comes with scikit-learn

    _check_points(x0, "x0")
    _check_points(x1, "x1")
    if x0.shape != x1.shape:
        raise ValueError(f"x0 and x1 must have the same shape, got {tuple(x0.shape)} and {tuple(x1.shape)}")
    if block is not None and (isinstance(block, bool) or not isinstance(block, int) or block < 1):
        raise ValueError(f"block must be a positive int or None, got {block!r}")
    n = x0.shape[0]
    size = n if block is None else block
    perm = torch.empty(n, dtype=torch.long)
    for start in range(0, n, size):
        a, b = x0[start:start + size], x1[start:start + size]                  # (m, D) each
        cost = torch.cdist(a.detach().double(), b.detach().double()).pow(2)      # (m, m) squared distances
        _, cols = linear_sum_assignment(cost.cpu().numpy())
        perm[start:start + size] = start + torch.as_tensor(cols, dtype=torch.long)
    return x0, x1[perm.to(x1.device)]                                            # (N, D), (N, D)


# ----------------------------------------------------------------------------- time

def sample_time(n: int, kind: str = "uniform", *, mean: float = 0.0, std: float = 1.0,
                generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """n times in (0, 1), shape (n,).

    * ``"uniform"``: t ~ U(0, 1) (Lipman et al. 2023; the 2-D notebook);
    * ``"logit_normal"``: t = sigmoid(u), u ~ N(mean, std^2) (SD3, Esser et al. 2024 §3.1; best was
      mean 0, std 1). In *this* convention (t = 1 is data) a negative mean puts more weight near the
      noise end; MeanFlow's -0.4 was chosen for the opposite convention (algorithms.md §0.1).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ValueError(f"n must be a positive int, got {n!r}")
    # a seeded generator lives on the CPU: draw there and move; without one, draw on the device
    where = "cpu" if generator is not None or device is None else device
    if kind == "uniform":
        t = torch.rand(n, generator=generator, device=where)
    elif kind == "logit_normal":
        if not std > 0:
            raise ValueError(f"std must be > 0, got {std!r}")
        t = torch.sigmoid(mean + std * torch.randn(n, generator=generator, device=where))
    else:
        raise ValueError(f"unknown time sampler {kind!r}: expected one of {', '.join(TIME_SAMPLERS)}")
    return t.to(device) if device is not None else t


# ----------------------------------------------------------------------------- loss

def drop_labels(y: torch.Tensor, p: float, null_class: int, generator: torch.Generator | None = None):
    """Replace each label by ``null_class`` with probability p (class dropout for guidance; 10% in
    DiT/VAR/MAR/MeanFlow, algorithms.md §0.2). y (N,) int64 -> (N,) int64."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"label-drop probability must be in [0, 1], got {p!r}")
    if p == 0.0:
        return y
    u = torch.rand(y.shape[0], generator=generator) if generator is not None else torch.rand(y.shape[0], device=y.device)
    drop = u.to(y.device) < p                                                    # (N,)
    return torch.where(drop, torch.full_like(y, null_class), y)


def loss(model: Callable, x1: torch.Tensor, *, x0: torch.Tensor | None = None, t: torch.Tensor | None = None,
         y: torch.Tensor | None = None, p_uncond: float = 0.0, time: str = "uniform",
         path: CondOTPath | None = None, generator: torch.Generator | None = None, **time_kw) -> torch.Tensor:
    """Conditional flow-matching loss (Lipman et al. 2023 eq. 23; algorithms.md §8.1):

        L = E_{t, x_0, x_1} || v_theta(x_t, t [, y]) - (x_1 - x_0) ||^2,   mean over batch and dims.

    x1 (N, D) data. Optional: x0 (N, D) noise (drawn from N(0, I) if None; reflow passes its
    pairs), t (N,) (drawn with :func:`sample_time` ``time`` if None), y (N,) labels, of which a
    fraction ``p_uncond`` is replaced by ``model.null_class`` (class dropout). Returns a scalar.

    Why it never reaches 0: for a given x_t many pairs (x_0, x_1) pass through it, and the best
    v is their *average* direction E[x_1 - x_0 | x_t]; the loss left over is the variance around it.
    """
    _check_points(x1, "x1")
    n = x1.shape[0]
    if x0 is None:
        x0 = (torch.randn_like(x1) if generator is None else
              torch.randn(x1.shape, generator=generator, dtype=x1.dtype).to(x1.device))    # (N, D)
    if t is None:
        t = sample_time(n, time, generator=generator, device=x1.device, **time_kw).to(x1.dtype)  # (N,)
    s = (path or CondOTPath()).sample(x0, x1, t)
    if y is not None:
        null = getattr(model, "null_class", None)
        if p_uncond > 0:
            if null is None:
                raise ValueError("p_uncond > 0 needs a conditional model with a null_class")
            y = drop_labels(y, p_uncond, null, generator)
        v = model(s.x_t, s.t, y)                                                 # (N, D)
    else:
        if p_uncond > 0:
            raise ValueError("p_uncond > 0 but no labels y were given")
        v = model(s.x_t, s.t)                                                    # (N, D)
    if v.shape != s.dx_t.shape:
        raise ValueError(f"the model returned shape {tuple(v.shape)}, expected {tuple(s.dx_t.shape)}")
    return (v - s.dx_t).pow(2).mean()


# ----------------------------------------------------------------------------- solvers

def euler_sample(v: Callable, x0: torch.Tensor, steps: int) -> torch.Tensor:
    """Integrate dx/dt = v(x, t) from t = 0 to 1 with ``steps`` Euler steps of size h = 1/steps:

        x_{t+h} = x_t + h v(x_t, t),   t = 0, h, 2h, ..., 1 - h.

    v: (x (N, D), t (N,)) -> (N, D); x0 (N, D) noise. Returns x at t = 1, (N, D).
    This is the lecture's "4 steps" picture; "the number of steps can be seen as the number of
    layers": each step is one more pass through the network.
    """
    x, h = x0, 1.0 / steps
    for k in range(steps):
        t = torch.full((x.shape[0],), k * h, device=x.device, dtype=x.dtype)    # (N,)
        x = x + h * v(x, t)
    return x


def _step(v, x, t: float, h: float, method: str) -> torch.Tensor:
    n = x.shape[0]
    tt = torch.full((n,), t, device=x.device, dtype=x.dtype)                     # (N,)
    k1 = v(x, tt)
    if method == "euler":
        return x + h * k1
    if method == "midpoint":      # x + h v(x + h/2 v(x, t), t + h/2)
        return x + h * v(x + 0.5 * h * k1, tt + 0.5 * h)
    # heun (explicit trapezoid): predict with Euler, correct with the mean of both slopes
    k2 = v(x + h * k1, tt + h)
    return x + 0.5 * h * (k1 + k2)


def integrate(v: Callable, x0: torch.Tensor, steps: int, method: str = "euler", *, t0: float = 0.0,
              t1: float = 1.0, trajectory: bool = False, grad: bool = False):
    """Solve dx/dt = v(x, t) from t0 to t1 with ``steps`` equal steps of ``method``.

    Methods (algorithms.md §8.3): ``"euler"`` x + h v(x, t) (1 NFE per step); ``"midpoint"``
    x + h v(x + h/2 v(x, t), t + h/2) (2 NFE); ``"heun"`` x + h/2 (v(x, t) + v(x + h v(x, t), t + h))
    (2 NFE). ``t0 = 0, t1 = 1`` turns noise into data; ``t0 = 1, t1 = 0`` runs it backwards (data to
    noise). Runs under ``torch.no_grad()`` unless ``grad=True``.

    x0: (N, D). Returns x(t1) (N, D), or (x(t1), trajectory (steps+1, N, D)) with ``trajectory=True``.
    """
    _check_points(x0, "x0")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: expected one of {', '.join(METHODS)}")
    h = (t1 - t0) / steps
    x, xs = x0, [x0]
    with torch.set_grad_enabled(grad):
        for k in range(steps):
            x = _step(v, x, t0 + k * h, h, method)
            if trajectory:
                xs.append(x)
    return (x, torch.stack(xs)) if trajectory else x                              # (steps+1, N, D)


def sample(v: Callable, n: int, dim: int, steps: int = 100, method: str = "euler", *, seed: int = 0,
           device=None, trajectory: bool = False):
    """Draw n samples: x0 ~ N(0, I) (seeded, (n, dim)), then :func:`integrate` from 0 to 1."""
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n, dim, generator=g)
    if device is None:
        p = next(iter(getattr(v, "parameters", lambda: [])()), None)
        device = p.device if p is not None else runtime.device()
    return integrate(v, x0.to(device), steps, method, trajectory=trajectory)


# ----------------------------------------------------------------------------- guidance

def guided_velocity(model: Callable, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor, w: float) -> torch.Tensor:
    """Classifier-free guidance on the velocity (Ho & Salimans 2022; minRF; algorithms.md §0.2 and
    §8.3), in the *usual* parameterisation of §0.2:

        v_w = v_u + w (v_c - v_u),   v_c = model(x, t, y),  v_u = model(x, t, None) (the null class).

    w = 1 is the plain conditional model, w = 0 the unconditional one, w > 1 pushes past the
    conditional velocity, away from the unconditional one. (facebookresearch/flow_matching writes
    the same thing as (1 + w') v_c - w' v_u with w' = w - 1.) x (N, D), t (N,), y (N,) -> (N, D).
    """
    v_c = model(x, t, y)
    v_u = model(x, t, None)
    return v_u + w * (v_c - v_u)


def field(model: Callable, y: torch.Tensor | int | None = None, w: float = 1.0) -> Callable:
    """A velocity field v(x, t) for the solvers and plots: ``model`` with labels ``y`` (a (N,)
    tensor, an int for every point, or None: unconditional) and guidance scale ``w``.

    With w != 1 the conditional and unconditional velocities come from one batched call of 2N rows.
    """
    def v(x, t):
        if y is None:
            return model(x, t)
        yy = torch.full((x.shape[0],), int(y), dtype=torch.long, device=x.device) if isinstance(y, int) else y
        if yy.shape[0] != x.shape[0]:
            raise ValueError(f"labels y have {yy.shape[0]} entries but x has {x.shape[0]} points")
        if w == 1.0:
            return model(x, t, yy)
        null = torch.full_like(yy, model.null_class)
        both = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([yy, null]))  # (2N, D)
        v_c, v_u = both.chunk(2)                                                 # (N, D) each
        return v_u + w * (v_c - v_u)
    return v


# ----------------------------------------------------------------------------- reflow

def reflow_pairs(v: Callable, n: int, dim: int, steps: int = 100, method: str = "euler", *, seed: int = 0,
                 device=None, batch: int = 8192):
    """Noise/sample couplings from a trained flow (rectified flow's "reflow", Liu et al. 2022 §2.3):
    x0 ~ N(0, I), x1 = ODE solution from x0. Returns (x0, x1), each (n, dim).

    Training on these pairs instead of independent ones gives paths that cross less, so they are
    straighter and fewer steps suffice. The pairs carry the teacher's errors: reflow trades a little
    accuracy at many steps for much better few-step samples.
    """
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n, dim, generator=g)
    if device is None:
        p = next(iter(getattr(v, "parameters", lambda: [])()), None)
        device = p.device if p is not None else runtime.device()
    x0 = x0.to(device)
    x1 = torch.cat([integrate(v, chunk, steps, method) for chunk in x0.split(batch)])
    return x0, x1


def reflow(model: torch.nn.Module, x0: torch.Tensor, x1: torch.Tensor, steps: int, *, batch: int = 1024,
           lr: float = 1e-3, y: torch.Tensor | None = None, seed: int = 0, **train_kw) -> _train.History:
    """Train ``model`` (usually a copy of the teacher) on fixed pairs (x0, x1) with :func:`loss`:
    each step draws ``batch`` random pairs and a fresh t. ``y`` (n,) labels go with the pairs.
    Returns the :class:`course_lib.train.History`."""
    _check_points(x0, "x0")
    if x0.shape != x1.shape:
        raise ValueError(f"x0 and x1 must have the same shape, got {tuple(x0.shape)} and {tuple(x1.shape)}")
    n = x0.shape[0]

    def loss_fn(step):
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        idx = torch.randint(0, n, (batch,), generator=g).to(x0.device)           # (batch,)
        return loss(model, x1[idx], x0=x0[idx], y=None if y is None else y[idx], generator=g)
    train_kw.setdefault("desc", "reflow")
    return _train.train(model, loss_fn, steps, lr=lr, **train_kw)


def straightness(traj: torch.Tensor) -> float:
    """How far a trajectory is from straight lines (Liu et al. 2022, eq. 6, discretised):

        S = mean_k mean_n || (x_{k+1} - x_k) / h - (x_K - x_0) ||^2,

    0 exactly when every particle moves along a straight line at constant speed (then one Euler
    step is exact). traj: (K+1, N, D) positions on a uniform time grid over [0, 1].
    """
    if not isinstance(traj, torch.Tensor) or traj.dim() != 3 or traj.shape[0] < 2:
        raise ValueError(f"traj must have shape (K+1, N, D) with K >= 1, got {tuple(getattr(traj, 'shape', ()))}")
    k = traj.shape[0] - 1
    seg = (traj[1:] - traj[:-1]) * k                                             # (K, N, D) velocities
    chord = traj[-1] - traj[0]                                                   # (N, D)
    return (seg - chord[None]).pow(2).sum(-1).mean().item()


def length_ratio(traj: torch.Tensor) -> float:
    """Mean over particles of (path length) / (distance from start to end); 1 for straight paths.
    traj: (K+1, N, D)."""
    if not isinstance(traj, torch.Tensor) or traj.dim() != 3 or traj.shape[0] < 2:
        raise ValueError(f"traj must have shape (K+1, N, D) with K >= 1, got {tuple(getattr(traj, 'shape', ()))}")
    length = (traj[1:] - traj[:-1]).norm(dim=-1).sum(0)                          # (N,)
    chord = (traj[-1] - traj[0]).norm(dim=-1).clamp_min(1e-8)                    # (N,)
    return (length / chord).mean().item()


# ----------------------------------------------------------------------------- measuring

def sliced_wasserstein(x: torch.Tensor, y: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Sliced 2-Wasserstein distance along given directions (Rabin et al. 2011):

        SW(x, y) = sqrt( mean_p  W2^2(<x, d_p>, <y, d_p>) ),
        W2^2 of two 1-D sets of equal size N = mean_i (sorted_a_i - sorted_b_i)^2,

    with d_p = directions[:, p] / |directions[:, p]| (the directions are normalised here).
    x, y: (N, D) with the same N; directions: (D, P). Returns a 0-d tensor. This is
    :func:`course_lib.metrics.sliced_wasserstein` with its random directions made explicit.
    """
    _check_points(x, "x")
    _check_points(y, "y")
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape (N, D), got {tuple(x.shape)} and {tuple(y.shape)}")
    if not isinstance(directions, torch.Tensor) or directions.dim() != 2 or directions.shape[0] != x.shape[1]:
        raise ValueError(f"directions must have shape ({x.shape[1]}, P), got {tuple(getattr(directions, 'shape', ()))}")
    d = directions / directions.norm(dim=0, keepdim=True)                       # (D, P) unit columns
    px = torch.sort(x @ d, dim=0).values                                         # (N, P)
    py = torch.sort(y @ d, dim=0).values                                         # (N, P)
    return (px - py).pow(2).mean().sqrt()


def swd(x: torch.Tensor, y: torch.Tensor, n_projections: int = 256, seeds=(0, 1, 2)) -> float:
    """:func:`course_lib.metrics.sliced_wasserstein` averaged over projection seeds."""
    from course_lib import metrics
    return sum(metrics.sliced_wasserstein(x, y, n_projections, s) for s in seeds) / len(seeds)


def nearest_centre_accuracy(x: torch.Tensor, y: torch.Tensor, centres: torch.Tensor) -> float:
    """Fraction of points x (N, D) whose nearest centre (C, D) is the one of their label y (N,):
    the rule by which notebook 08 decides that a conditional sample "landed in its class"."""
    _check_points(x, "x")
    d = torch.cdist(x.float(), centres.float().to(x.device))                     # (N, C)
    return (d.argmin(1) == y.to(x.device)).float().mean().item()
