"""Exercises of notebook 11 (the capstone): the first step of each open project, checked.

Each project keeps its check in a part module of this topic (``capstone_<part>``, see
:mod:`course_lib.course.exercises`), which lists its exercises in ``PROJECT``:

* :mod:`~course_lib.course.exercises.capstone_distill`: consistency-style distillation of a 2-D flow into one step;
* :mod:`~course_lib.course.exercises.capstone_discrete`: discrete flow matching on the shape tokens;
* :mod:`~course_lib.course.exercises.capstone_tarflow`: an autoregressive flow (TarFlow / STARFlow) on 2-D data;
* :mod:`~course_lib.course.exercises.capstone_flowar`: next-scale prediction with a flow head (FlowAR).
"""
from course_lib.course.exercises import capstone_discrete, capstone_distill, capstone_flowar, capstone_tarflow

EXERCISES = (*capstone_distill.PROJECT, *capstone_discrete.PROJECT, *capstone_tarflow.PROJECT,
             *capstone_flowar.PROJECT)
