"""The homework mechanism, and the rule that every exercise has wrong answers that its check catches.

Each ``tests/test_exercises_<topic>.py`` defines ``WRONG_ANSWERS = {exercise name: [wrong fn, ...]}``
and tests them; this file checks that together they cover every registered exercise.
"""
import importlib
import pathlib

import pytest
import torch

from course_lib.course import homework

TESTS = pathlib.Path(__file__).parent


def all_wrong_answers() -> dict:
    found = {}
    for path in sorted(TESTS.glob("test_exercises_*.py")):
        mod = importlib.import_module(f"tests.{path.stem}")
        for name, fns in mod.WRONG_ANSWERS.items():
            assert name not in found, f"{name} has wrong answers in two files"
            found[name] = fns
    return found


def test_every_exercise_has_at_least_three_wrong_answers():
    wrong = all_wrong_answers()
    for name in homework.registry():
        assert len(wrong.get(name, [])) >= 3, f"exercise {name} needs >= 3 wrong answers in tests/"
    assert set(wrong) <= set(homework.registry()), f"wrong answers for unknown exercises: {set(wrong) - set(homework.registry())}"


@pytest.mark.parametrize("name", sorted(homework.registry()))
def test_reference_passes_its_own_check(name):
    assert homework.run_check(name, homework.reference(name)).status == "passed"


@pytest.mark.parametrize("name", sorted(homework.registry()))
def test_unattempted_is_reported_not_attempted(name):
    def stub(*args, **kwargs):
        # YOUR CODE HERE
        raise NotImplementedError()
    r = homework.run_check(name, stub)
    assert r.status == "not attempted", r


@pytest.mark.parametrize("name,index", [(n, i) for n, fns in all_wrong_answers().items() for i in range(len(fns))])
def test_wrong_answer_is_caught(name, index):
    r = homework.run_check(name, all_wrong_answers()[name][index])
    assert r.status == "failed", f"wrong answer #{index} for {name} passed its check"
    assert r.message, "a failed check must say what is wrong"


def test_check_returns_reference_when_failing_and_candidate_when_passing(capsys):
    name = sorted(homework.registry())[0]
    ref = homework.reference(name)
    assert homework.check(name, ref) is ref
    def broken(*a, **k):
        raise ValueError("boom")
    assert homework.check(name, broken) is ref
    out = capsys.readouterr().out
    assert "passed" in out and "failed" in out and "ValueError: boom" in out


def test_expect_tensor_names_the_first_problem():
    want = torch.zeros(2, 3)
    cases = [([1, 2], "expected a torch.Tensor"), (torch.zeros(3, 2), "expected shape (2, 3)"),
             (torch.zeros(2, 3, dtype=torch.float64), "expected dtype torch.float32"),
             (torch.tensor([[0., 0., 0.], [0., 0.5, 0.]]), "index (1, 1) is 0.5")]
    for got, msg in cases:
        with pytest.raises(homework.Mismatch, match=msg.replace("(", r"\(").replace(")", r"\)")):
            homework.expect_tensor(got, want, "out")


def test_grade_log_is_written(tmp_path, monkeypatch):
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("COURSE_GRADE_LOG", str(log))
    name = sorted(homework.registry())[0]
    ref = homework.reference(name)
    homework.check(name, lambda *a, **k: ref(*a, **k))             # a correct answer of one's own
    assert '"status": "passed"' in log.read_text()
    homework.check(name, ref)                                      # the reference object itself
    assert "reference implementation, not your code" in log.read_text()


def test_registry_is_explicit_every_topic_listed_and_no_import_side_effects():
    import pkgutil
    import subprocess
    import sys

    from course_lib.course import exercises
    topics = {m.name for m in pkgutil.iter_modules(exercises.__path__)}
    assert {t.__name__.rsplit(".", 1)[-1] for t in exercises.TOPICS} == topics, \
        "list every topic module of course_lib/course/exercises/ in its TOPICS"
    listed = [ex.name for t in exercises.TOPICS for ex in t.EXERCISES]
    assert sorted(listed) == sorted(homework.registry()) and len(set(listed)) == len(listed)
    for t in exercises.TOPICS:
        assert all(ex.name.startswith(t.__name__.rsplit(".", 1)[-1] + ".") for ex in t.EXERCISES), t.__name__
    # importing a topic module registers nothing and does not import the homework runner
    code = ("import sys, course_lib.course.exercises.welcome as w; "
            "print('course_lib.course.homework' in sys.modules, len(w.EXERCISES))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["False", str(len(exercises.welcome.EXERCISES))]
    # the registry handed out is a copy: a caller cannot add or remove exercises
    got = homework.registry()
    got.pop(listed[0])
    assert listed[0] in homework.registry()


def test_registry_refuses_a_duplicate_or_a_name_outside_its_topic():
    from types import SimpleNamespace

    from course_lib.course import exercises
    ex = homework.get("welcome.euler_step")
    topic = SimpleNamespace(__name__="course_lib.course.exercises.welcome", EXERCISES=[ex, ex])
    with pytest.raises(ValueError, match="'welcome.euler_step' is listed twice"):
        exercises._gather([topic])
    other = SimpleNamespace(__name__="course_lib.course.exercises.flow", EXERCISES=[ex])
    with pytest.raises(ValueError, match="expected a name starting 'flow.'"):
        exercises._gather([other])
    with pytest.raises(KeyError, match="no exercise named 'welcome.nope'; known: "):
        homework.get("welcome.nope")


def test_summary_counts_the_checks_run(monkeypatch, capsys):
    monkeypatch.setattr(homework, "_RESULTS", {})
    names = sorted(homework.registry())[:2]
    homework.check(names[0], homework.reference(names[0]))
    homework.check(names[1], None)
    results = homework.summary()
    out = capsys.readouterr().out
    assert [r.name for r in results] == names
    assert [r.status for r in results] == ["passed", "not attempted"]
    assert f"score: {homework.get(names[0]).points}/{sum(homework.get(n).points for n in names)}" in out
