"""The course's exercises, one module per topic, gathered in one explicit registry.

Each topic module lists its exercises in ``EXERCISES``, every name prefixed by the topic
(``"welcome.euler_step"``); :data:`REGISTRY` maps every exercise's name to its
:class:`~course_lib.course.checking.Exercise`. Nothing registers itself on import: a new topic module
is added to :data:`TOPICS` here. :mod:`course_lib.course.homework` reads the registry. A module named
``<topic>_<part>`` without ``EXERCISES`` is a part of a topic's checks kept apart to keep the topic
module short (``tokens_mistakes``: the topic's known mistakes, :class:`~course_lib.course.checking.Mistake`;
``pixels_raster``: the sampling check); it is not a topic.
"""
from course_lib.course.checking import Exercise
from course_lib.course.exercises import capstone, chaining, flow, heads, limits, maskgit, meanflow, next_scale, pixels, tokens, welcome

TOPICS = (welcome, pixels, tokens, chaining, maskgit, next_scale, limits, flow, heads, meanflow, capstone)


def _gather(topics) -> dict[str, Exercise]:
    registry: dict[str, Exercise] = {}
    for topic in topics:
        prefix = topic.__name__.rsplit(".", 1)[-1] + "."
        for ex in topic.EXERCISES:
            if not ex.name.startswith(prefix):
                raise ValueError(f"exercise {ex.name!r} in {topic.__name__}: expected a name starting {prefix!r}")
            if ex.name in registry:
                raise ValueError(f"exercise {ex.name!r} is listed twice")
            registry[ex.name] = ex
    return registry


REGISTRY: dict[str, Exercise] = _gather(TOPICS)
