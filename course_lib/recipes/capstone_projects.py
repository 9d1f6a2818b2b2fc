"""Recipe of notebook 11's four open projects: the starter demos' models, trained with the learner's function.

Each project has a first step the learner writes (an exercise) and a starter demo that trains a small
model WITH that function. The models go through the model cache (:func:`course_lib.train.cached`) the
way notebook 01's do (:mod:`course_lib.recipes.pixels_and_samples`): in lecture mode the course's
shipped weights are loaded (made by ``python -m course_lib.pretrain`` from :data:`PRETRAINED`, which
calls these same functions with the course's reference), and :func:`note_loaded` says so; with
``WEIGHTS = "train"`` (and in quick mode, where nothing is shipped) the model trains here with the
learner's function and is written nowhere (``share=False``), so that no other notebook and no
benchmark ever reads a model that depends on a learner's answer::

    student = trained_student(consistency_target)        # A: notebook 08's flow distilled to one step
    dfm_model = trained_dfm(mask_path_sample)            # B: MaskGIT's network, the DFM loss
    flow_model = trained_tarflow(ar_affine_forward)      # C: TarFlow on the spirals
    far_model = trained_flowar(flowar_scale_pair)        # D: FlowAR on the shapes
    note_loaded(student, "consistency_target")           # prints only when the weights were loaded
    student.history                                      # the training run (loss curve, seconds)
    training_line(student)                               # "1200 steps in 22.0 s when the weights were made (...)"

A function is "the course's" when it is None or the library's reference itself (what
``homework.check`` hands back when an exercise is not done or fails): then the model is shared like
any other (disk cache, shipped weights). :func:`note_loaded` and :func:`training_line` are notebook
01's printers (:mod:`course_lib.recipes.pixels_and_samples`), imported here for notebook 11's cells. The budgets stay with the methods (``distill.budget``,
``dfm.budget``, ``tarflow.budget``, ``flowar.budget``); the cache key is the budget and the seed
(and, for the student, the teacher's budget).
"""
from __future__ import annotations

from typing import Callable

from course_lib import checks
from course_lib import train as training
from course_lib.flow import distill, tarflow
from course_lib.orders import discrete_flow as dfm
from course_lib.orders import flowar
from course_lib.recipes import flow_matching_2d as fm2d
from course_lib.recipes import shape_tokens
from course_lib.recipes.pixels_and_samples import note_loaded, training_line  # noqa: F401  (the notebook's printers)
from course_lib.recipes.registry import Pretrained


def _ours(fn: Callable | None, reference: Callable) -> bool:
    """The course's own function (None, or the reference itself): its model may be shared and shipped."""
    return fn is None or fn is reference


def _check_function(fn, name: str) -> None:
    """A learner's function or None, refused by name before any training starts."""
    if fn is not None and not callable(fn):
        raise TypeError(f"{name}: expected your function (or None for the course's), got {type(fn).__name__} {fn!r}")


# ----------------------------------------------------------------------------- A: consistency distillation

def teacher(mode: str | None = None):
    """Notebook 08's main spirals flow (shipped in lecture mode), the teacher of project A."""
    return fm2d.train_spirals(fm2d.budget(mode), progress=False)[0]


def trained_student(target_fn: Callable | None = None, mode: str | None = None, *, seed: int = 0,
                    progress: bool = True) -> distill.ConsistencyModel:
    """Notebook 08's flow (:func:`teacher`) distilled into a one-step consistency model by
    :func:`course_lib.flow.distill.distill` with ``target_fn`` (None: the course's
    :func:`~course_lib.flow.distill.consistency_target`), through the model cache (name
    ``"project-distill-student"``, key: the distillation budget, the teacher's budget, ``seed``)."""
    _check_function(target_fn, "target_fn"), checks.positive_int(seed, "seed", 0)
    B, TB = distill.budget(mode), fm2d.budget(mode)
    ref = distill.consistency_target

    def fit(student):                          # the teacher is asked for only to train (shipped: never)
        trained, hist = distill.distill(teacher(mode), fm2d.spirals, B.steps, batch=B.batch, grid=B.grid, lr=B.lr,
                                        mu=B.mu, target_fn=target_fn or ref, seed=seed, progress=progress)
        student.load_state_dict(trained.state_dict())
        return hist
    return training.cached("project-distill-student", dict(budget=B, teacher=TB, seed=seed),
                           build=lambda: distill.ConsistencyModel(fm2d.build_model(TB, space=True)), fit=fit,
                           share=_ours(target_fn, ref))


# ----------------------------------------------------------------------------- B: discrete flow matching

def trained_dfm(path_fn: Callable | None = None, mode: str | None = None, *, kappa=dfm.Polynomial(1.0),
                seed: int = 0, progress: bool = True):
    """A MaskGIT-architecture transformer (:func:`course_lib.orders.discrete_flow.build`) trained with the
    DFM loss on notebook 05's shape tokens, x_t drawn by ``path_fn`` (None: the course's
    :func:`~course_lib.orders.discrete_flow.mask_path_sample`), through the model cache (name
    ``"project-dfm"``, key: the budget, kappa's exponent, ``seed``; a scheduler other than a
    :class:`~course_lib.orders.discrete_flow.Polynomial` trains a model kept nowhere, like a learner's ``path_fn``)."""
    _check_function(path_fn, "path_fn"), checks.positive_int(seed, "seed", 0)
    if not callable(kappa):
        raise TypeError(f"kappa: expected a scheduler, a function of a tensor of times such as dfm.Polynomial(1.0), "
                        f"got {type(kappa).__name__} {kappa!r}")
    B = dfm.budget(mode)
    ref = dfm.mask_path_sample

    def fit(model):
        tokens, prompts = shape_tokens.token_data(B.n_train)                   # (n, 16) codes, (n, 4)
        return dfm.fit(model, tokens, prompts, B, kappa, path_fn=path_fn or ref, seed=seed, progress=progress)
    known = isinstance(kappa, dfm.Polynomial)                                  # a scheduler the key can name
    return training.cached("project-dfm", dict(budget=B, kappa=kappa.n if known else repr(kappa), seed=seed),
                           build=lambda: dfm.build(B, shape_tokens.CODEBOOK, shape_tokens.N_TOKENS, seed=seed),
                           fit=fit, share=known and _ours(path_fn, ref))


# ----------------------------------------------------------------------------- C: TarFlow

def trained_tarflow(step: Callable | None = None, mode: str | None = None, *, seed: int = 0,
                    progress: bool = True) -> tarflow.TarFlow:
    """A :class:`~course_lib.flow.tarflow.TarFlow` trained on the spirals by
    :func:`~course_lib.flow.tarflow.fit_spirals` with ``step`` as each block's affine step (None: the
    course's :func:`~course_lib.flow.tarflow.ar_affine_forward`), through the model cache (name
    ``"project-tarflow"``, key: the budget and ``seed``)."""
    _check_function(step, "step"), checks.positive_int(seed, "seed", 0)
    B = tarflow.budget(mode)
    ref = tarflow.ar_affine_forward
    return training.cached("project-tarflow", dict(budget=B, seed=seed), build=lambda: tarflow.build(B, seed=seed),
                           fit=lambda m: tarflow.fit_spirals(m, B, step or ref, progress=progress),
                           share=_ours(step, ref))


# ----------------------------------------------------------------------------- D: FlowAR

def trained_flowar(pair: Callable | None = None, mode: str | None = None, *, seed: int = 0,
                   progress: bool = True) -> flowar.FlowAR:
    """A :class:`~course_lib.orders.flowar.FlowAR` trained on the prompted shapes by
    :func:`~course_lib.orders.flowar.fit_shapes` with ``pair`` (None: the course's
    :func:`~course_lib.orders.flowar.flowar_scale_pair`), through the model cache (name
    ``"project-flowar"``, key: the budget and ``seed``)."""
    _check_function(pair, "pair"), checks.positive_int(seed, "seed", 0)
    B = flowar.budget(mode)
    ref = flowar.flowar_scale_pair
    return training.cached("project-flowar", dict(budget=B, seed=seed), build=lambda: flowar.build(B, seed=seed),
                           fit=lambda m: flowar.fit_shapes(m, B, pair or ref, seed=seed, progress=progress),
                           share=_ours(pair, ref))


# ----------------------------------------------------------------------------- shipped weights

def _student_figures(mode: str) -> dict:
    table = distill.compare(teacher(mode), trained_student(mode=mode, progress=False), fm2d.spirals,
                            distill.budget(mode).n_eval, teacher_steps=(1,))
    return {"student_one_step_tv": table["student, 1 step"]["tv"], "teacher_one_step_tv": table["teacher, 1 step"]["tv"],
            "floor_tv": table["floor"]["tv"]}


def _tarflow_figures(mode: str) -> dict:
    B, model = tarflow.budget(mode), trained_tarflow(mode=mode, progress=False)
    return {"swd_denoised": tarflow.swd(model, B.n_eval, sigma=B.sigma), "tv_denoised": tarflow.tv(model, B.n_tv, sigma=B.sigma)}


def _flowar_figures(mode: str) -> dict:
    B = flowar.budget(mode)
    out = flowar.evaluate(trained_flowar(mode=mode, progress=False), B)
    return {"prompt_accuracy": out["accuracy"], "prompt_accuracy_unguided": out["accuracy_unguided"]}


PRETRAINED = (Pretrained("project-distill-student", ("11",), lambda mode: trained_student(mode=mode),
                         figures=_student_figures),
              Pretrained("project-dfm", ("11",), lambda mode: trained_dfm(mode=mode)),
              Pretrained("project-tarflow", ("11",), lambda mode: trained_tarflow(mode=mode),
                         figures=_tarflow_figures),
              Pretrained("project-flowar", ("11",), lambda mode: trained_flowar(mode=mode), figures=_flowar_figures))
