"""The tests every topic's known mistakes get, written once.

In ``tests/test_exercises_<topic>.py``::

    from course_lib.course.exercises import tokens
    from tests.mistakes import known_mistake_tests
    test_known_mistake_named, test_correct_alternative_passes = known_mistake_tests(tokens)

submits each :class:`~course_lib.course.checking.Mistake` of the topic's exercises (its ``impl``) to
the exercise's check and asserts it fails with that mistake's own message, and submits each correct
alternative and asserts it passes. Wrong answers that are not named mistakes (caught by a kind of
check: a dtype, an input changed in place, a device) stay in the module's ``WRONG`` list, which
tests/test_homework.py runs.
"""
import pytest

from course_lib.course import homework


def mistake_params(topic) -> list:
    """(exercise name, mistake) for every known mistake of the topic's exercises, with readable ids."""
    return [pytest.param(ex.name, m, id=f"{ex.name}:{m.name}") for ex in topic.EXERCISES for m in ex.mistakes]


def alternative_params(topic) -> list:
    """(exercise name, correct alternative) for every alternative of the topic's exercises."""
    return [pytest.param(ex.name, fn, id=f"{ex.name}:{getattr(fn, '__name__', i)}")
            for ex in topic.EXERCISES for i, fn in enumerate(ex.alternatives)]


def assert_caught_with_its_message(name: str, mistake) -> None:
    r = homework.run_check(name, mistake.impl)
    assert r.status == "failed", f"{name}: the known mistake {mistake.name!r} passed its check"
    assert mistake.message in r.message, (f"{name}: the known mistake {mistake.name!r} was caught with another "
                                          f"message: {r.message}")


def assert_passes(name: str, fn) -> None:
    r = homework.run_check(name, fn)
    assert r.status == "passed", (name, getattr(fn, "__name__", fn), r.message)


def known_mistake_tests(topic):
    """The two parametrized tests of a topic module (assign them to names starting with ``test_``)."""
    @pytest.mark.parametrize("name, mistake", mistake_params(topic))
    def test_known_mistake_named(name, mistake):
        assert_caught_with_its_message(name, mistake)

    @pytest.mark.parametrize("name, fn", alternative_params(topic))
    def test_correct_alternative_passes(name, fn):
        assert_passes(name, fn)

    return test_known_mistake_named, test_correct_alternative_passes
