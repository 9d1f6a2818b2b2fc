"""Notebook 10's section 8: MeanFlow against flow matching on the shapes' continuous tokens.

Flow matching in the latent space of a learned autoencoder, as Stable Diffusion 3, Movie Gen and
Flux do it, here with notebook 07's continuous tokenizer (:mod:`course_lib.recipes.shape_latents`):
a 16x16 shape is 16 tokens of LATENT_DIM numbers, flattened to one 64-D vector. The prompt (shape,
colour, position, size: 432 combinations) is one class label of the MLP, with a null class for
guidance. Flow matching samples with classifier-free guidance (2 network passes a step); MeanFlow has
the guidance baked into its target (:class:`course_lib.flow.meanflow.Guidance`) and samples with one
pass a step. The budget is :class:`course_lib.recipes.meanflow.Latent` (``B.latent``).

Measured in lecture mode (issue 13; 1 CPU thread beside other jobs, 1000 held-out prompts, Fréchet
floor 22.0): 4 x 512, flow matching 2500 steps (98 s): Euler w = 1 at 1 / 2 / 8 / 32 steps: prompt
accuracy 0.95 / 0.98 / 0.98 / 0.98, Fréchet 58 / 30 / 26 / 27; with guidance w = 2 at 8 and 32 steps
accuracy 1.00 but Fréchet 174 and 141. MeanFlow for the same time (1322 steps) with omega = 2 baked
in: 1 / 2 steps accuracy 0.93 / 0.96, Fréchet 226 / 233. Guidance buys the last percent of accuracy
with most of the diversity on this task, so the budget trains both plainly conditional (omega = 1,
w = 1), and smaller (4 x 384, 1500 steps) to fit the lecture's time.

Both models go through the model cache (:func:`course_lib.train.cached`, names ``meanflow-latent-fm``
and ``meanflow-latent-mf``): the course ships their lecture-mode weights, and what training returned
(the History, the step count MeanFlow was given) comes back with them.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Callable

import torch

from course_lib import checks, flow, nets, runtime, train
from course_lib.flow import meanflow as mf


def prompt_class(prompts: torch.Tensor) -> torch.Tensor:
    """(N, 4) prompts (shape, colour, position, size) -> (N,) int64 class 0..431 (row-major). Every
    attribute must be given: a null id would silently become another class."""
    from course_lib import data
    from course_lib.orders.prompt import check_prompts
    prompts = check_prompts(prompts, allow_null=False)
    out = torch.zeros(prompts.shape[0], dtype=torch.long, device=prompts.device)
    for a, k in enumerate(data.N_VALUES):
        out = out * k + prompts[:, a].long()
    return out


def latent_set(B):
    """The training set: (x (n, 64) flattened latents, y (n,) prompt classes) of ``B.latent.n`` shapes."""
    from course_lib.recipes import shape_latents
    lat, prompts = shape_latents.latent_data(B.latent.n, mode=B.mode)
    return lat.flatten(1).to(runtime.device()), prompt_class(prompts).to(runtime.device())


def build_latent(B, mean_flow: bool, seed: int = 0):
    """The latent model: a 64-D :class:`~course_lib.nets.VelocityMLP` with the 432 prompts as classes
    (plus the null class); MeanFlow's wrapped in :class:`~course_lib.flow.meanflow.MeanFlowNet`."""
    from course_lib import data
    runtime.seed_everything(seed)
    n_classes = 1
    for k in data.N_VALUES:
        n_classes *= k
    cfg = nets.MLPConfig(dim=64, hidden=B.latent.hidden, depth=4, max_freq=B.max_freq, n_classes=n_classes,
                         class_dim=64, time_inputs=2 if mean_flow else 1)
    net = nets.VelocityMLP(cfg)
    return (mf.MeanFlowNet(net=net) if mean_flow else net).to(runtime.device())


def latent_rule(B, mean_flow: bool) -> Callable:
    """The loss on a batch (x1 (B, 64), y (B,)): flow matching with 10% of labels dropped, or MeanFlow
    with the same dropout and guidance baked in (omega = ``B.latent.guidance``, kappa = 0)."""
    if mean_flow:
        g = mf.Guidance(omega=B.latent.guidance, kappa=0.0) if B.latent.guidance != 1.0 else None
        return lambda u, x1, y: mf.loss(u, x1, y=y, p_uncond=0.1, guidance=g, share_equal=B.share_equal,
                                        mean=B.time_mean, std=B.time_std, p=B.p, c=B.c)
    return lambda v, x1, y: flow.loss(v, x1, y=y, p_uncond=0.1)


def _latent_seconds_per_step(B, X, Y, mean_flow: bool, n: int) -> float:
    model = build_latent(B, mean_flow, seed=1)
    rule = latent_rule(B, mean_flow)
    opt = torch.optim.AdamW(model.parameters(), lr=B.lr)

    def step(k):
        idx = torch.randint(0, X.shape[0], (B.latent.batch,), generator=torch.Generator().manual_seed(k)).to(X.device)
        loss = rule(model, X[idx], Y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return runtime.seconds_per_step(step, n, warmup=3)


def _fit_latent(B, mean_flow: bool, progress: bool) -> Callable:
    """``fit(model)`` of one latent model: flow matching for ``B.latent.steps`` steps, MeanFlow for as
    many as take the same time here (both methods timed first, :func:`_latent_seconds_per_step`).
    Returns {"history": History, "steps_for_equal_time": int}."""
    def fit(model):
        X, Y = latent_set(B)
        steps = B.latent.steps
        if mean_flow:
            ratio = (_latent_seconds_per_step(B, X, Y, False, B.calib_steps)
                     / _latent_seconds_per_step(B, X, Y, True, B.calib_steps))
            steps = max(1, round(B.latent.steps * ratio))
        rule = latent_rule(B, mean_flow)

        def loss_fn(step):
            idx = torch.randint(0, X.shape[0], (B.latent.batch,), generator=torch.Generator().manual_seed(step)).to(X.device)
            return rule(model, X[idx], Y[idx])
        hist = train.train(model, loss_fn, steps, lr=B.lr, schedule="cosine", progress=progress,
                           desc=f"{'MeanFlow' if mean_flow else 'flow matching'} on latents")
        return {"history": hist, "steps": steps}
    return fit


def trained_latent(B, method: str, progress: bool = True):
    """The latent model of ``method`` ("fm": flow matching, "mf": MeanFlow) through the model cache
    (``meanflow-latent-<method>``; the course's weights in lecture mode). Returns it in eval mode,
    ``model.history`` the History of the run that made it."""
    is_mf = checks.one_of(method, "method", ("fm", "mf")) == "mf"
    return train.cached(f"meanflow-latent-{method}", {"budget": B}, lambda: build_latent(B, is_mf),
                        _fit_latent(B, is_mf, progress))


def train_latent(B, progress: bool = True) -> SimpleNamespace:
    """Flow matching for ``B.latent.steps`` steps and MeanFlow for the same training time (both timed
    first) on the latents of ``B.latent.n`` shapes (:func:`trained_latent`). Returns
    SimpleNamespace(fm, fm_hist, mf, mf_hist): the models (eval mode) and the Histories of the runs
    that made them."""
    fm_model, mf_model = trained_latent(B, "fm", progress), trained_latent(B, "mf", progress)
    return SimpleNamespace(fm=fm_model, fm_hist=fm_model.history, mf=mf_model, mf_hist=mf_model.history)


@torch.no_grad()
def latent_images(model, prompts: torch.Tensor, steps: int, mean_flow: bool, w: float = 1.0, seed: int = 0, *,
                  mode: str):
    """Images (N, 3, 16, 16) for ``prompts`` (N, 4): noise (seed) -> ``steps`` steps in latent space
    (MeanFlow's sampler, or Euler with classifier-free guidance w) -> the decoder of the tokenizer of
    ``mode`` (the budget's: ``B.mode``, the one the model was trained on)."""
    from course_lib.recipes import shape_latents
    y = prompt_class(prompts).to(runtime.device())
    x0 = flow.prior(len(prompts), 64, seed=seed)
    x1 = mf.sample(model, x0, steps, y=y) if mean_flow else flow.integrate(flow.field(model, y, w), x0, steps)
    return shape_latents.decode(x1.view(-1, 16, 64 // 16), mode=mode)


def latent_scores(model, steps: int, mean_flow: bool, *, n: int, mode: str, w: float = 1.0) -> dict:
    """Prompt accuracy and Fréchet distance (:mod:`course_lib.evaluator`) of ``steps``-step samples for
    the prompts of n held-out shapes, against those shapes (decoded by the tokenizer of ``mode``)."""
    from course_lib import evaluator
    ref = evaluator.reference(n)
    imgs = latent_images(model, ref.prompts, steps, mean_flow, w, mode=mode)
    return {"prompt_accuracy": evaluator.prompt_accuracy(imgs, ref.prompts),
            "frechet": evaluator.frechet(imgs, ref.images)}
