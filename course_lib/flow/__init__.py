"""Flow matching, the other world line: small concepts that compose, in the spirit of
facebookresearch/flow_matching (path, solver, guidance, coupling).

**Time convention of the whole course:** t = 0 is noise, t = 1 is data,

    x_t = (1 - t) x_0 + t x_1,   x_0 ~ N(0, I),  x_1 ~ data,   target v = d x_t / d t = x_1 - x_0,

and sampling integrates dx/dt = v_theta(x, t) from t = 0 to t = 1 (Lipman et al. 2023, eq. 22-23
with sigma_min = 0; Liu et al. 2023's rectified flow).

| module | holds |
| --- | --- |
| :mod:`~course_lib.flow.path` | :class:`CondOTPath` -> :class:`PathSample`, :func:`fm_pair`, :func:`sample_time`, :func:`loss` |
| :mod:`~course_lib.flow.solvers` | :func:`integrate` (Euler, midpoint, Heun; optional trajectory), its steps :func:`euler_step` ..., :func:`euler_sample`, :func:`euler_paths`, :func:`prior`, :func:`sample` |
| :mod:`~course_lib.flow.guidance` | :func:`guided_velocity` (classifier-free guidance), :func:`field`, :func:`drop_labels` |
| :mod:`~course_lib.flow.reflow` | :func:`reflow_pairs`, :func:`reflow`, :func:`straightness`, :func:`length_ratio` |
| :mod:`~course_lib.flow.ot` | :func:`minibatch_ot` (OT-CFM's minibatch coupling) |
| :mod:`~course_lib.flow.meanflow` | MeanFlow: :class:`MeanFlowNet` u(z, a, b), its JVP target, loss, few-step sampler |
| :mod:`~course_lib.flow.alphaflow` | α-Flow: the curriculum from trajectory flow matching to MeanFlow |
| :mod:`~course_lib.flow.distill` | consistency distillation of a flow into one step (notebook 11's project A) |
| :mod:`~course_lib.flow.tarflow` | TarFlow: an autoregressive normalizing flow on 2-D points (notebook 11's project C) |

Distances between sample clouds (sliced Wasserstein, its noise floor) are in :mod:`course_lib.metrics`.
A "velocity field" is any callable ``v(x, t) -> (N, D)`` with x (N, D) and t (N,). Usage::

    from course_lib import data, flow, nets, runtime, train
    model = nets.VelocityMLP(nets.MLPConfig(dim=2)).to(runtime.device())
    hist = train.train(model, lambda step: flow.loss(model, data.toy_2d("spirals", 1024, seed=step)), 3000)
    x1 = flow.sample(model, 5000, 2, steps=100)                                 # (5000, 2) samples
    x1, traj = flow.integrate(model, x0, steps=8, method="heun", trajectory=True)  # traj (9, N, 2)
"""
from course_lib.flow.guidance import drop_labels, field, guided_velocity
from course_lib.flow.ot import minibatch_ot
from course_lib.flow.path import TIME_SAMPLERS, CondOTPath, PathSample, fm_pair, loss, sample_time
from course_lib.flow.reflow import length_ratio, reflow, reflow_pairs, straightness
from course_lib.flow.meanflow import MeanFlowNet
from course_lib.flow.solvers import (METHODS, STEPS, euler_paths, euler_sample, euler_step, heun_step,
                                     integrate, midpoint_step, prior, sample)

__all__ = [
    "CondOTPath", "PathSample", "fm_pair", "sample_time", "loss", "TIME_SAMPLERS",
    "integrate", "euler_step", "midpoint_step", "heun_step", "euler_sample", "euler_paths", "prior", "sample",
    "STEPS", "METHODS",
    "guided_velocity", "field", "drop_labels",
    "reflow_pairs", "reflow", "straightness", "length_ratio",
    "minibatch_ot",
    "MeanFlowNet",
]
