"""Where the course folder is: the folder that holds ``solutions/`` (and ``notebooks/``).

The instructor commands (``assignments``, ``runner``, ``python -m course_lib.bench notebooks``) work on
a course folder, never on the package's own location, so they work the same from a clone (editable
install) and from an installed wheel::

    python -m course_lib.course.assignments check --course path/to/course
    cd path/to/course/solutions && python -m course_lib.course.assignments check   # found by walking up
"""
from __future__ import annotations

import os
import re
from pathlib import Path

# a check cell of a notebook: homework.check("topic.name", ...)
CHECK_CALL = re.compile(r"""homework\.check\(\s*["']([\w.]+)["']""")

MARKER = "solutions"


class CourseNotFound(FileNotFoundError):
    """No course folder where one was asked for or searched."""


def course_folder(course: str | os.PathLike | None = None, start: str | os.PathLike | None = None) -> Path:
    """The course folder (absolute): ``course`` when given, which must hold ``solutions/``; otherwise
    the nearest of ``start`` (default: the current directory) and its parents that holds
    ``solutions/``."""
    if course is not None:
        folder = Path(course).expanduser().resolve()
        if not (folder / MARKER).is_dir():
            raise CourseNotFound(f"--course {course}: expected a course folder holding {MARKER}/, "
                                 f"but {folder / MARKER} is not a folder")
        return folder
    here = Path(start if start is not None else os.getcwd()).expanduser().resolve()
    for folder in (here, *here.parents):
        if (folder / MARKER).is_dir():
            return folder
    raise CourseNotFound(f"no course folder: neither {here} nor any folder above it holds {MARKER}/; "
                         "run the command inside the course, or pass --course DIR")


def exercises_in(path: str | os.PathLike) -> list[str]:
    """Exercise names a notebook checks (its ``homework.check("...")`` calls), in order."""
    import nbformat
    try:
        nb = nbformat.read(Path(path), as_version=4)
    except Exception as e:
        raise ValueError(f"{path} is not a readable notebook ({e})") from e
    names = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            names += [n for n in CHECK_CALL.findall(cell.source) if n not in names]
    return names
