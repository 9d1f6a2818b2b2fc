"""How the course runs as a course: homework checks with feedback and fallback (``homework``), the
exercise registry (``exercises``, built on ``checking``), student-notebook build / sync / grading
(``assignments``) and headless execution (``runner``)."""
