"""How the course runs as a course: homework checks with feedback and fallback (``homework``), the
exercise registry (``exercises``, built on ``checking``), student-notebook build / sync / grading
(``assignments``) and headless execution (``runner``), both on a course folder found by ``folder``.

Imports run one way: homework -> exercises -> checking; assignments and runner -> folder; the course
site (``site``, ``make site``) -> runner, assignments, folder."""
