"""The course's exercises, one module per topic; importing this package registers them all
with :mod:`course_lib.homework`."""
from course_lib.exercises import welcome, pixels, tokens, flow  # noqa: F401
