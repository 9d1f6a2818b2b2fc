"""The homework mechanism, and the rule that every exercise has wrong answers that its check catches.

Each ``tests/test_exercises_<topic>.py`` defines ``WRONG = {exercise name: [(wrong fn, fragment of the
message that must name its mistake (or a tuple of acceptable fragments)), ...]}``, ``WRONG_ANSWERS``
(the functions alone) and ``CORRECT_ANSWERS = {exercise name: [correct fn written otherwise, ...]}``;
this file runs them all and checks that together they cover every registered exercise.
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


def _all(attr: str) -> dict:
    found = {}
    for path in sorted(TESTS.glob("test_exercises_*.py")):
        mod = importlib.import_module(f"tests.{path.stem}")
        for name, items in getattr(mod, attr).items():
            assert name not in found, f"{name} has {attr} in two files"
            found[name] = items
    return found


WRONG = _all("WRONG")
CORRECT = _all("CORRECT_ANSWERS")


def test_every_exercise_has_five_wrong_answers_and_a_correct_one_written_otherwise():
    """Known mistakes (Exercise.mistakes, tested by tests/mistakes.py in the topic's test file) and plain
    wrong answers (WRONG) count together; so do alternatives and CORRECT_ANSWERS."""
    wrong = all_wrong_answers()
    for name, ex in homework.registry().items():
        n_wrong = len(wrong.get(name, [])) + len(ex.mistakes)
        assert n_wrong >= 5, f"exercise {name} needs >= 5 wrong answers (known mistakes or tests/ WRONG)"
        n_right = len(CORRECT.get(name, [])) + len(ex.alternatives)
        assert n_right >= 1, f"exercise {name} needs a correct answer written otherwise"
        assert len(WRONG.get(name, [])) == len(wrong.get(name, [])), f"{name}: WRONG and WRONG_ANSWERS differ"
    assert set(wrong) <= set(homework.registry()), f"wrong answers for unknown exercises: {set(wrong) - set(homework.registry())}"


def test_known_mistakes_are_named_once_and_tested_in_their_topics_file():
    from course_lib.course import exercises
    for topic in exercises.TOPICS:
        short = topic.__name__.rsplit(".", 1)[-1]
        has = any(ex.mistakes or ex.alternatives for ex in topic.EXERCISES)
        if has:
            mod = importlib.import_module(f"tests.test_exercises_{short}")
            assert hasattr(mod, "test_known_mistake_named") and hasattr(mod, "test_correct_alternative_passes"), (
                f"tests/test_exercises_{short}.py must run its topic's mistakes: known_mistake_tests({short})")
        for ex in topic.EXERCISES:
            names = [m.name for m in ex.mistakes]
            assert len(names) == len(set(names)), f"{ex.name}: two known mistakes share a name"
            messages = [m.message for m in ex.mistakes]
            assert all(messages) and len(messages) == len(set(messages)), f"{ex.name}: empty or repeated messages"
            assert all(callable(m.impl) for m in ex.mistakes) and all(callable(f) for f in ex.alternatives)


@pytest.mark.parametrize("name", sorted(homework.registry()))
def test_reference_passes_its_own_check(name):
    ex = homework.get(name)
    ex.checker(ex.reference)          # raises Mismatch if the check rejected its own reference


@pytest.mark.parametrize("name", sorted(homework.registry()))
def test_handing_in_the_reference_is_not_the_learners_work(name, monkeypatch):
    import functools
    ref = homework.reference(name)
    r = homework.run_check(name, ref)                       # a check cell re-run after the fallback
    assert r.status == "not attempted" and "run your exercise cell again" in r.message
    for disguised in (functools.partial(ref), lambda *a, **k: ref(*a, **k)):
        r = homework.run_check(name, disguised)
        assert r.status == "failed" and "reference" in r.message, (name, r)
    monkeypatch.setenv("COURSE_GRADE_LOG", "/dev/null")
    assert homework.run_check(name, ref).status == "failed"


@pytest.mark.parametrize("name", sorted(homework.registry()))
def test_unattempted_is_reported_not_attempted(name):
    def stub(*args, **kwargs):
        # YOUR CODE HERE
        raise NotImplementedError()
    r = homework.run_check(name, stub)
    assert r.status == "not attempted", r


@pytest.mark.parametrize("name,index", [(n, i) for n, pairs in WRONG.items() for i in range(len(pairs))])
def test_wrong_answer_is_caught_and_its_mistake_named(name, index):
    fn, fragments = WRONG[name][index]
    r = homework.run_check(name, fn)
    assert r.status == "failed", f"wrong answer {fn.__name__} for {name} passed its check"
    fragments = (fragments,) if isinstance(fragments, str) else fragments
    assert any(f in r.message for f in fragments), (fn.__name__, r.message)


@pytest.mark.parametrize("name,index", [(n, i) for n, fns in CORRECT.items() for i in range(len(fns))])
def test_correct_answer_written_otherwise_passes(name, index):
    fn = CORRECT[name][index]
    r = homework.run_check(name, fn)
    assert r.status == "passed", (fn.__name__, r)


def test_check_returns_reference_when_failing_and_candidate_when_passing(capsys):
    name = "welcome.euler_step"
    ref = homework.reference(name)

    def own(v, x, t, dt):
        return x + dt * v(x, torch.full((x.shape[0],), float(t), dtype=x.dtype, device=x.device))
    assert homework.check(name, own) is own
    def broken(*a, **k):
        raise ValueError("boom")
    assert homework.check(name, broken) is ref
    out = capsys.readouterr().out
    assert "passed" in out and "failed" in out and "your function raised ValueError: boom" in out


def test_expect_tensor_names_the_first_problem():
    want = torch.zeros(2, 3)
    cases = [([1, 2], "expected a torch.Tensor"), (torch.zeros(3, 2), "expected shape (2, 3)"),
             (torch.zeros(2, 3, dtype=torch.float64), "returned dtype torch.float64; expected torch.float32"),
             (torch.tensor([[0., 0., 0.], [0., 0.5, 0.]]), "index (1, 1) is 0.5")]
    for got, msg in cases:
        with pytest.raises(homework.Mismatch, match=msg.replace("(", r"\(").replace(")", r"\)")):
            homework.expect_tensor(got, want, "out")


def test_grade_log_is_written(tmp_path, monkeypatch):
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("COURSE_GRADE_LOG", str(log))
    name = sorted(homework.registry())[0]
    ref = homework.reference(name)
    def own(v, x, t, dt):                                          # a correct answer of one's own
        return x + v(x, torch.full((x.shape[0],), float(t), dtype=x.dtype, device=x.device)) * dt
    homework.check("welcome.euler_step", own)
    assert '"status": "passed"' in log.read_text()
    homework.check(name, ref)                                      # the reference object itself
    assert "reference implementation, not your code" in log.read_text()


def test_registry_is_explicit_every_topic_listed_and_no_import_side_effects():
    import pkgutil
    import subprocess
    import sys

    from course_lib.course import exercises
    modules = {m.name for m in pkgutil.iter_modules(exercises.__path__)}
    topics = {m for m in modules                # a topic lists EXERCISES; <topic>_mistakes and helpers do not
              if hasattr(importlib.import_module(f"{exercises.__name__}.{m}"), "EXERCISES")}
    assert {t.__name__.rsplit(".", 1)[-1] for t in exercises.TOPICS} == topics, \
        "list every topic module of course_lib/course/exercises/ in its TOPICS"
    assert all(m.split("_")[0] in topics for m in modules - topics), "a helper module without its topic"
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
    monkeypatch.setattr(homework, "run_check", lambda name, c: homework.Result(
        name, "passed" if c is not None else "not attempted", "", homework.get(name).points))
    homework.check(names[0], homework.reference(names[0]))
    homework.check(names[1], None)
    results = homework.summary()
    out = capsys.readouterr().out
    assert [r.name for r in results] == names
    assert [r.status for r in results] == ["passed", "not attempted"]
    assert f"score: {homework.get(names[0]).points}/{sum(homework.get(n).points for n in names)}" in out


# ----------------------------------------------------------------------------- the checking machinery

from course_lib.course import checking  # noqa: E402
from course_lib.course import mistakes as _mistakes_module  # noqa: E402


def _run(fn, *args, reference=None, **kwargs):
    with checking.tracking(reference):
        return checking.call(fn, *args, case="a test input", **kwargs)


def test_call_catches_an_input_changed_in_place():
    x = torch.ones(3)
    for bad, how in [(lambda x: x.add_(1), "add_"), (lambda x: x.clamp_(0, 0.5), "clamp_"),
                     (lambda x: x.__setitem__(0, 5.0), "setitem")]:
        with pytest.raises(checking.Mismatch, match="changed its input `x` in place"):
            _run(bad, x.clone())
    def fine(x):
        x = x + 1                                     # a new tensor: the caller's is untouched
        return x
    assert torch.equal(_run(fine, x), x + 1)


def test_call_stops_a_function_that_hangs():
    def hangs(x):
        while True:
            try:
                pass
            except Exception:                         # a bare except cannot swallow the time limit
                pass
    with pytest.raises(checking.Mismatch, match=r"did not finish within 0.3 s"):
        _run(hangs, torch.zeros(1), seconds=0.3)


def test_call_names_what_the_learners_function_raised_and_keeps_not_implemented():
    def stub(x):
        raise NotImplementedError()
    with pytest.raises(checking.Mismatch, match="on a test input: your function raised NotImplementedError") as e:
        _run(stub, torch.zeros(1))
    assert isinstance(e.value.__cause__, NotImplementedError)


def test_call_catches_a_wrapper_around_the_reference():
    import functools

    def reference(x):
        return x * 2
    for disguised in (reference, functools.partial(reference), lambda x: reference(x) + 0):
        with pytest.raises(checking.UsesReference):
            _run(disguised, torch.ones(2), reference=reference)
    assert torch.equal(_run(lambda x: x + x, torch.ones(2), reference=reference), torch.full((2,), 2.0))


def test_a_partly_written_exercise_says_which_part_works(monkeypatch):
    def half(k, mask_type="B"):
        if mask_type == "B":
            raise NotImplementedError()
        m = torch.ones(k, k)                          # type A written by hand: above and left of the centre
        m[k // 2, k // 2:] = 0
        m[k // 2 + 1:] = 0
        return m
    r = homework.run_check("pixels.causal_mask", half)
    assert r.status == "not attempted"
    assert "works on" in r.message and "still raises NotImplementedError" in r.message, r.message


@pytest.mark.parametrize("factor,words", [(2.0, "twice"), (-1.0, "sign is flipped"), (0.6931471805599453, "ln 2"),
                                          (64.0, "exactly 64 times"), (1 / 8, "1/8")])
def test_values_off_by_a_recognisable_factor_get_a_hint(factor, words):
    want = torch.linspace(0.5, 3.0, 10, dtype=torch.float64)
    with pytest.raises(checking.Mismatch, match=words):
        checking.expect_tensor(want * factor, want, "out")
    with pytest.raises(checking.Mismatch, match="off by the same"):
        checking.expect_tensor(want + 0.25, want, "out")


def test_expect_number_refuses_what_float_would_convert_quietly():
    for got in ("3.0", True, None, [3.0]):
        with pytest.raises(checking.Mismatch, match="expected a number"):
            checking.expect_number(got, 3.0, "bitrate")
    assert checking.expect_number(torch.tensor(3.0), 3.0, "bitrate") == 3.0
    with pytest.raises(checking.Mismatch, match="got 6, expected 3"):
        checking.expect_number(6, 3.0, "bitrate")


def test_expect_loss_wants_a_differentiable_scalar_with_the_right_gradient():
    x = torch.randn(5, requires_grad=True)
    want = (x ** 2).mean()
    wrong = {"a float": (x ** 2).mean().item(), "shape (1,)": (x ** 2).mean().reshape(1),
             "no grad": (x ** 2).mean().detach()}
    msgs = {"a float": "expected a 0-d torch.Tensor", "shape (1,)": "expected a 0-d tensor",
            "no grad": "has no gradient"}
    for k, got in wrong.items():
        with pytest.raises(checking.Mismatch, match=msgs[k]):
            checking.expect_loss(got, want, "the loss", {"x": x})
    same_value_wrong_grad = (x.detach() ** 2).mean() + 0 * x.sum()
    with pytest.raises(checking.Mismatch, match="gradient with respect to x"):
        checking.expect_loss(same_value_wrong_grad, want, "the loss", {"x": x})
    checking.expect_loss((x * x).sum() / 5, want, "the loss", {"x": x})


# ----------------------------------------------------------------------------- known mistakes

def _mistakes():
    return (checking.Mistake("doubled", lambda x, y: 2 * x + y, "you doubled x"),
            checking.Mistake("raises", lambda x, y: x.foo(), "never named: its impl raises"),
            checking.Mistake("swapped", lambda x, y: x - y, "you subtracted y"),
            checking.Mistake("also_swapped", lambda x, y: x - y, "never named: the first one that fits wins"))


def test_name_mistake_names_the_first_mistake_whose_values_match():
    x, y = torch.randn(4, 3), torch.randn(4, 3)
    ms = _mistakes()
    assert checking.name_mistake(x - y, ms, x, y).name == "swapped"
    assert checking.name_mistake(2 * x + y, ms, x, y).name == "doubled"
    assert checking.name_mistake((x - y) * (1 + 1e-7), ms, x, y).name == "swapped"    # within tolerance
    assert checking.name_mistake(x * y, ms, x, y) is None                               # not a known one
    assert checking.name_mistake((x - y).double(), ms, x, y) is None                    # dtype differs
    assert checking.name_mistake((x - y)[None], ms, x, y) is None                        # shape differs
    assert checking.name_mistake((x - y,), ms, x, y) is None                              # structure differs
    assert checking.name_mistake(float((x - y).sum()), ms, x, y) is None                 # number vs tensor
    assert checking.name_mistake(x - y, ms, x, y=y).name == "swapped"                    # keyword arguments


def test_name_mistake_matches_nan_with_nan_and_tuples_and_numbers():
    x = torch.tensor([1.0, float("nan"), 3.0])
    ms = (checking.Mistake("pair", lambda x: (x.sum().item(), x * 2), "pair"),
          checking.Mistake("nan_kept", lambda x: x + 1, "kept the NaN"))
    assert checking.name_mistake(x + 1, ms, x).name == "nan_kept"
    assert checking.name_mistake((float("nan"), x * 2), ms, x).name == "pair"
    assert checking.name_mistake((float("nan"), x * 3), ms, x) is None


def test_name_mistake_runs_each_impl_on_fresh_copies():
    x = torch.ones(3)

    def in_place(x):
        x.mul_(5)
        return x
    ms = (checking.Mistake("in_place", in_place, "changed x"), checking.Mistake("plus", lambda x: x + 4, "+4"))
    assert checking.name_mistake(torch.full((3,), 5.0), ms, x).name == "in_place"
    assert torch.equal(x, torch.ones(3))                 # the check's own input is untouched
    assert checking.name_mistake(torch.full((3,), 5.0), ms[1:], x).name == "plus"


def test_name_mistake_compares_gradients_with_wrt():
    """Two losses of the same value whose gradients differ are told apart; None means zeros."""
    x, y = torch.randn(5), torch.randn(5)
    ms = (checking.Mistake("y_detached", lambda x, y: ((x - y.detach()) ** 2).mean(), "sg on y"),
          checking.Mistake("x_detached", lambda x, y: ((x.detach() - y) ** 2).mean(), "sg on x"),
          checking.Mistake("both", lambda x, y: ((x - y) ** 2).mean(), "no sg"))
    xg, yg = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    learner = ((xg.detach() - yg) ** 2).mean()
    got = (learner, torch.autograd.grad(learner, [xg, yg], allow_unused=True))
    assert got[1][0] is None
    assert checking.name_mistake(got, ms, x, y, wrt=(0, 1)).name == "x_detached"
    assert checking.name_mistake(got, ms, x, y=y, wrt=(0, "y")).name == "x_detached"
    learner = ((xg - yg) ** 2).mean()
    got = (learner, torch.autograd.grad(learner, [xg, yg]))
    assert checking.name_mistake(got, ms, x, y, wrt=(0, 1)).name == "both"
    assert checking.name_mistake((got[0], got[1][:1]), ms, x, y, wrt=(0,)).name == "y_detached"   # x's alone
    assert checking.name_mistake(got[0], ms, x, y).name == "y_detached"    # without wrt only the value counts


def test_name_mistake_skips_an_impl_that_raises_or_hangs(monkeypatch):
    import time
    monkeypatch.setattr(_mistakes_module, "CALL_SECONDS", 0.2)

    def hangs(x):
        time.sleep(5)
        return x
    ms = (checking.Mistake("raises", lambda x: x.nope(), "a"), checking.Mistake("hangs", hangs, "b"),
          checking.Mistake("neg", lambda x: -x, "c"))
    x = torch.randn(3)
    t0 = time.perf_counter()
    assert checking.name_mistake(-x, ms, x).name == "neg"
    assert time.perf_counter() - t0 < 3
    assert checking.name_mistake(x, ms, x) is None


def test_explain_appends_the_message_and_drops_the_generic_guess():
    want = torch.arange(1.0, 6.0)
    with pytest.raises(checking.Mismatch) as e:
        checking.expect_tensor(2 * want, want, "on a case")
    assert "twice" in str(e.value)
    m = checking.Mistake("beta", lambda: None, "beta is not applied")
    out = checking.explain(e.value, m)
    assert isinstance(out, checking.Mismatch)
    assert str(out).startswith("on a case: value at index") and str(out).endswith(": beta is not applied")
    assert "twice" not in str(out)
    assert checking.explain(e.value, None) is e.value


def test_naming_block_and_compare_name_the_mistake_that_reproduces_the_output():
    x = torch.randn(6)
    ms = (checking.Mistake("abs", lambda x: x.abs(), "you took the absolute value"),)
    with pytest.raises(checking.Mismatch, match="absolute value"):
        with checking.naming(ms, x.abs(), x):
            checking.expect_tensor(x.abs(), x.relu(), "on x")
    with pytest.raises(checking.Mismatch) as e:                  # not a known mistake: plain message
        with checking.naming(ms, x * 3, x):
            checking.expect_tensor(x * 3, x.relu(), "on x")
    assert "absolute" not in str(e.value) and "expected" in str(e.value)

    def ref(x):
        return x.relu()

    def learner(x):
        return x.abs()
    with checking.tracking(ref), pytest.raises(checking.Mismatch, match="on six values: .*absolute value"):
        checking.compare(learner, ref, [checking.Case("six values", (x,))], mistakes=ms)


def test_name_mistake_in_tells_apart_mistakes_that_agree_on_one_case():
    """Two mistakes that agree on the failing case (x * 1 and x ** 1 at x = 1) are told apart by a
    second case; a learner that raises on a case gets no name."""
    ms = (checking.Mistake("square", lambda x: x * x, "you squared x"),
          checking.Mistake("cube", lambda x: x * x * x, "you cubed x"))
    one, two = (torch.ones(3),), (torch.full((3,), 2.0),)

    def cubes(x):
        return x ** 3

    def raises(x):
        raise ValueError("no")
    with checking.tracking(None):
        assert checking.name_mistake(torch.ones(3), ms, *one).name == "square"      # one case cannot tell
        assert checking.name_mistake_in(cubes, ms, [one, two]).name == "cube"
        assert checking.name_mistake_in(lambda x: x + 5, ms, [one, two]) is None
        assert checking.name_mistake_in(raises, ms, [one]) is None


def test_a_decorated_answer_is_the_learners_own_not_the_reference():
    """@torch.no_grad() (any functools.wraps decorator) runs one wrapper's code around every function it
    decorates, the reference's too: the learner's decorated answer is still theirs, and passes."""
    @torch.no_grad()
    def mine(teacher_velocity, target_model, x_t, t, dt):
        x_next = x_t + dt[:, None] * teacher_velocity(x_t, t)
        return target_model(x_next, t + dt)
    assert homework.run_check("capstone.consistency_target", mine).status == "passed"
    wrapped_reference = torch.no_grad()(homework.reference("capstone.consistency_target").__wrapped__)
    assert homework.run_check("capstone.consistency_target", wrapped_reference).status == "failed"
