"""course_lib.recipes.capstone_projects: notebook 11's four project demos go through the model cache; a
learner's function trains a model kept nowhere; lecture mode loads the course's shipped weights."""
import dataclasses
import json
import shutil

import pytest
import torch

from course_lib import cache, data, runtime, weights
from course_lib.flow import distill, tarflow
from course_lib.orders import discrete_flow as dfm
from course_lib.orders import flowar
from course_lib.recipes import capstone_projects as P
from course_lib.recipes import flow_matching_2d as fm2d
from course_lib.recipes import shape_tokens

# (recipe function, the library module whose budget it reads, the reference it shares with, the cache name)
DEMOS = [(P.trained_student, distill, distill.consistency_target, "project-distill-student"),
         (P.trained_dfm, dfm, dfm.mask_path_sample, "project-dfm"),
         (P.trained_tarflow, tarflow, tarflow.ar_affine_forward, "project-tarflow"),
         (P.trained_flowar, flowar, flowar.flowar_scale_pair, "project-flowar")]
TINY = {distill: dict(steps=12, batch=64), dfm: dict(steps=12, batch=16, n_train=64), tarflow: dict(steps=12, batch=64),
        flowar: dict(steps=6, batch=8, n_train=32)}


_TEACHER = {}


def _learners(reference):
    """A learner's own function: the same answer, not the reference object."""
    return lambda *args, **kwargs: reference(*args, **kwargs)


@pytest.fixture
def quick(monkeypatch, tmp_path):
    """Quick mode, weights trained here, an empty disk cache in tmp, the demos' budgets cut to a few steps,
    and random shape tokens in place of notebook 05's (the DFM demo then needs no tokenizer)."""
    monkeypatch.setitem(runtime._state, "mode", "quick")
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    for module, cut in TINY.items():
        monkeypatch.setitem(module.BUDGETS, "quick", dataclasses.replace(module.BUDGETS["quick"], **cut))
    g = torch.Generator().manual_seed(0)
    monkeypatch.setattr(shape_tokens, "token_data", lambda n: (
        torch.randint(0, shape_tokens.CODEBOOK, (n, shape_tokens.N_TOKENS), generator=g), data.shapes(n).prompts))
    if "quick" not in _TEACHER:                                            # notebook 08's flow, trained once
        _TEACHER["quick"] = P.teacher()
    monkeypatch.setattr(P, "teacher", lambda mode=None: _TEACHER["quick"])
    return tmp_path


@pytest.mark.parametrize("make, module, reference, name", DEMOS, ids=[d[3] for d in DEMOS])
def test_the_course_function_trains_a_cached_model_with_its_history(quick, make, module, reference, name):
    model = make(progress=False)
    B = module.budget()
    assert not model.from_cache and len(model.history.losses) == B.steps
    assert all(torch.isfinite(torch.tensor(model.history.losses)))
    assert len(list(quick.glob(f"{name}-*.pt"))) == 1                       # kept in the disk cache
    again = make(reference, progress=False)                                # the reference itself: the same model
    assert again.from_cache and again.history.losses == pytest.approx(model.history.losses)
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("make, module, reference, name", DEMOS, ids=[d[3] for d in DEMOS])
def test_a_learners_function_trains_here_and_writes_nothing(quick, make, module, reference, name, capsys):
    calls = []

    def mine(*args, **kwargs):
        calls.append(1)
        return reference(*args, **kwargs)
    model = make(mine, progress=False)
    assert calls and not model.from_cache and len(model.history.losses) == module.budget().steps
    assert not list(quick.glob(f"{name}-*"))                                # written nowhere
    P.note_loaded(model, "mine")
    assert "course's weights" not in capsys.readouterr().out                # trained here: no note


def test_the_student_starts_as_the_teacher_and_its_cache_key_holds_the_teachers_budget(quick):
    student = P.trained_student(progress=False)
    path = cache.cache_path("project-distill-student",
                            dict(budget=distill.budget(), teacher=fm2d.budget(), seed=0))
    assert path.exists()
    teacher = P.teacher()
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(1)).to(runtime.device())
    with torch.no_grad():                  # 12 small steps leave the student near the teacher's one Euler jump
        gap = (distill.sample(student, x) - (x + teacher(x, torch.zeros(64, device=x.device)))).abs().mean()
    assert gap < 0.5


# ----------------------------------------------------------------------------- lecture mode: shipped weights

def _ship(dst, names):
    """Copy the course's shipped lecture files of the models ``names`` (and their manifest entries) to ``dst``."""
    src = weights.course_root() / "data" / "weights"
    files = weights.read_manifest(src)
    mine = {f: e for f, e in files.items() if e.get("name") in names and e.get("mode") in ("lecture", None)}
    assert {e["name"] for e in mine.values()} == set(names), f"shipped: {sorted(mine)}"
    dst.mkdir(parents=True, exist_ok=True)
    for f in mine:
        shutil.copy(src / f, dst / f)
    (dst / weights.MANIFEST).write_text(json.dumps({"format": weights.FORMAT, "files": mine}))


def test_lecture_mode_loads_the_shipped_project_weights_even_for_a_learners_function(lecture, monkeypatch, capsys):
    _ship(lecture, ["flow2d-spirals", "shapes-evaluator"] + [d[3] for d in DEMOS])
    for module, fn in ((distill, "distill"), (dfm, "fit"), (tarflow, "fit_spirals"), (flowar, "fit_shapes")):
        monkeypatch.setattr(module, fn, lambda *a, **k: pytest.fail("trained instead of loading the shipped weights"))
    for make, module, reference, name in DEMOS:
        model = make(_learners(reference), progress=False)
        assert model.from_cache and model.shipped.parent == lecture, name
        assert len(model.history.losses) == module.budget("lecture").steps, name
        P.note_loaded(model, "your_fn")
        assert "the course's weights, made with the course's own your_fn" in capsys.readouterr().out
    assert not list((lecture.parent / "cache").glob("project-*"))
    # what the demos show, from the loaded models (the lecture figures)
    n = 4096
    table = distill.compare(P.teacher(), P.trained_student(), fm2d.spirals, n, teacher_steps=(1,))
    assert table["student, 1 step"]["tv"] < 0.5 * table["teacher, 1 step"]["tv"], table
    B = tarflow.budget("lecture")
    flow_model = P.trained_tarflow()
    assert tarflow.tv(flow_model, n, sigma=B.sigma) < 0.35
    FB = dataclasses.replace(flowar.budget("lecture"), n_eval=128)
    assert flowar.evaluate(P.trained_flowar(), FB)["accuracy"] > 0.4          # was 0.27 at width 32, 1000 steps


@pytest.mark.parametrize("make, arg", [(P.trained_student, "target_fn"), (P.trained_dfm, "path_fn"),
                                       (P.trained_tarflow, "step"), (P.trained_flowar, "pair")])
def test_a_function_that_is_not_one_or_a_bad_seed_is_named_before_training(make, arg):
    with pytest.raises(TypeError, match=f"{arg}: expected your function \\(or None for the course's\\), got int 3"):
        make(3, "quick")
    with pytest.raises(ValueError, match="seed: expected an int >= 0, got -1"):
        make(None, "quick", seed=-1)


def test_a_scheduler_that_is_not_a_function_is_named():
    with pytest.raises(TypeError, match="kappa: expected a scheduler"):
        P.trained_dfm(None, "quick", kappa=1.0)
