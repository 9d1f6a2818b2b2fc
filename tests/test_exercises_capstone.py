"""Notebook 11's exercises (the open projects' first steps): each known mistake (Exercise.mistakes, in
the part modules course_lib/course/exercises/capstone_*.py) is caught with its own message and each
correct alternative passes (tests/mistakes.py). The wrong answers that are not named mistakes live in
tests/test_exercises_capstone_a.py (distillation, discrete flow matching) and
tests/test_exercises_capstone_b.py (TarFlow, FlowAR); tests/test_homework.py runs them."""
from course_lib.course.exercises import capstone as topic
from tests.mistakes import known_mistake_tests

test_known_mistake_named, test_correct_alternative_passes = known_mistake_tests(topic)

WRONG: dict = {}
WRONG_ANSWERS: dict = {}
CORRECT_ANSWERS: dict = {}
