"""The course's exercises, one module per topic, gathered in one explicit registry.

Each topic module lists its exercises in ``EXERCISES``; :data:`REGISTRY` maps every exercise's name
to its :class:`~course_lib.course.checking.Exercise`. :mod:`course_lib.course.homework` reads it.
"""
from course_lib.course.checking import Exercise
from course_lib.course.exercises import flow, pixels, tokens, welcome

TOPICS = (welcome, pixels, tokens, flow)
REGISTRY: dict[str, Exercise] = {ex.name: ex for topic in TOPICS for ex in topic.EXERCISES}
