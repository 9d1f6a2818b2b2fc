"""The old name of the instructor commands: ``python -m course_lib.assignments build|check|grade``
runs :mod:`course_lib.course.assignments` (where the commands now live), so scripts written for the
old path keep working."""
import sys

from course_lib.course.assignments import main

if __name__ == "__main__":
    sys.exit(main())
