"""The student build, its refusal to overwrite a learner's work, the sync check, and grading, all on
a course folder given or found from the current directory."""
import pathlib

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from course_lib.course import assignments
from course_lib.course.folder import CourseNotFound, course_folder

REPO = pathlib.Path(__file__).resolve().parent.parent

EXERCISE = '''def euler_step(v, x, t, dt):
    """one Euler step"""
    ### BEGIN SOLUTION
    import torch
    return x + dt * v(x, torch.full((x.shape[0],), float(t), device=x.device))
    ### END SOLUTION'''


def solution_notebook(extra=""):
    return new_notebook(cells=[
        new_markdown_cell("# title\n### BEGIN SOLUTION\nthe answer is 42\n### END SOLUTION"),
        new_code_cell(EXERCISE),
        new_code_cell("from course_lib.course import homework\neuler_step = homework.check('welcome.euler_step', euler_step)"),
        new_code_cell("print('the end')" + extra),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})


def test_strip_solution_keeps_indentation_and_surroundings():
    out = assignments.strip_solution(EXERCISE, "code")
    assert out.splitlines() == ['def euler_step(v, x, t, dt):', '    """one Euler step"""',
                                "    # YOUR CODE HERE", "    raise NotImplementedError()"]
    md = assignments.strip_solution("a\n### BEGIN SOLUTION\nsecret\n### END SOLUTION\nb", "markdown")
    assert md == "a\nYOUR ANSWER HERE\nb"


@pytest.mark.parametrize("bad,msg", [("### BEGIN SOLUTION\nx", "never closed"),
                                     ("x\n### END SOLUTION", "without"),
                                     ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "inside another")])
def test_malformed_regions_are_reported(bad, msg):
    with pytest.raises(assignments.BuildError, match=msg):
        assignments.strip_solution(bad, "code", "nb cell 3")


def test_student_version_clears_outputs_and_answers():
    nb = solution_notebook()
    nb.cells[3].outputs = [nbformat.v4.new_output("stream", text="old")]
    nb.cells[3].execution_count = 7
    student = assignments.student_version(nb)
    text = nbformat.writes(student)
    assert "the answer is 42" not in text and "x + dt" not in text and "old" not in text
    assert student.cells[3].execution_count is None
    assert nb.cells[3].outputs, "the solution notebook itself must not be modified"


def test_build_refuses_to_overwrite_a_learners_edit_then_backs_up_with_force(tmp_path, capsys):
    sols, nbs = tmp_path / "solutions", tmp_path / "notebooks"
    sols.mkdir()
    nbformat.write(solution_notebook(), sols / "00_x.ipynb")
    assert assignments.build(tmp_path) == 0
    assert assignments.check(tmp_path) == []

    # the instructor changes the solution: an untouched student notebook is simply rebuilt
    nbformat.write(solution_notebook(extra="\nprint(1)"), sols / "00_x.ipynb")
    assert assignments.check(tmp_path) != []
    assert assignments.build(tmp_path) == 0
    assert "print(1)" in (nbs / "00_x.ipynb").read_text()

    # a learner edits their copy: the next build refuses, and says so
    learner = nbformat.read(nbs / "00_x.ipynb", as_version=4)
    learner.cells[1].source = learner.cells[1].source.replace("raise NotImplementedError()", "return x  # my work")
    nbformat.write(learner, nbs / "00_x.ipynb")
    nbformat.write(solution_notebook(extra="\nprint(2)"), sols / "00_x.ipynb")
    assert assignments.build(tmp_path) == 1
    assert "my work" in (nbs / "00_x.ipynb").read_text()
    assert "REFUSED" in capsys.readouterr().out

    # with force, the learner's version is kept as a backup
    assert assignments.build(tmp_path, force=True) == 0
    backups = list((nbs / ".backup").glob("00_x.*.ipynb"))
    assert len(backups) == 1 and "my work" in backups[0].read_text()
    assert "print(2)" in (nbs / "00_x.ipynb").read_text()


def test_check_reports_missing_and_orphan_notebooks(tmp_path):
    sols, nbs = tmp_path / "solutions", tmp_path / "notebooks"
    sols.mkdir()
    nbs.mkdir()
    nbformat.write(solution_notebook(), sols / "01_a.ipynb")
    nbformat.write(solution_notebook(), nbs / "02_orphan.ipynb")
    problems = assignments.check(tmp_path)
    assert any("01_a.ipynb is missing" in p for p in problems)
    assert any("02_orphan.ipynb has no solutions" in p for p in problems)


def test_repository_notebooks_are_in_sync_with_solutions():
    assert assignments.check(REPO) == [], "run `make student` (python -m course_lib.course.assignments build)"


def test_repository_solutions_have_regions_and_no_stored_outputs():
    paths = sorted((REPO / "solutions").glob("*.ipynb"))
    assert len(paths) >= 4, paths
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        assert any(assignments.BEGIN in c.source for c in nb.cells), f"{path.name} has no exercise"
        assert assignments.exercises_in(path), f"{path.name} checks no exercise"
        for c in nb.cells:
            if c.cell_type == "code":
                assert not c.outputs, f"{path.name}: commit solutions without outputs"


def test_grade_scores_passed_failed_and_unattempted(tmp_path, capsys):
    nb = solution_notebook()
    nbformat.write(assignments.student_version(nb), tmp_path / "unattempted.ipynb")
    nbformat.write(nb, tmp_path / "correct.ipynb")
    wrong = solution_notebook()
    wrong.cells[1].source = EXERCISE.replace("x + dt", "x - dt")
    nbformat.write(wrong, tmp_path / "wrong.ipynb")
    (tmp_path / "solutions").mkdir()                  # a course folder without these notebooks
    rows = assignments.grade([tmp_path / "correct.ipynb", tmp_path / "wrong.ipynb", tmp_path / "unattempted.ipynb"],
                             csv=tmp_path / "grades.csv", course=tmp_path)
    assert [r["welcome.euler_step"] for r in rows] == ["passed", "failed", "not attempted"]
    assert [r["score"] for r in rows] == ["1/1", "0/1", "0/1"]
    assert "welcome.euler_step" in (tmp_path / "grades.csv").read_text()
    # a failure says why: the first line of the check's message, in the table and in the CSV
    why = rows[1]["welcome.euler_step: why"]
    assert why.startswith("on ") and "expected" in why and "\n" not in why, why
    assert "welcome.euler_step: why" not in rows[0] and "welcome.euler_step: why" not in rows[2]
    table = capsys.readouterr().out
    assert f"failed         welcome.euler_step  {why}" in table, table
    assert why in (tmp_path / "grades.csv").read_text()


def test_first_line_of_a_message():
    assert assignments.first_line("\n  value wrong at (0, 0)\nmore detail") == "value wrong at (0, 0)"
    assert assignments.first_line("") == ""
    assert assignments.first_line("x" * 300, width=20) == "x" * 17 + "..."


def test_grading_restores_check_cells_and_rejects_the_reference(tmp_path, monkeypatch):
    sols = tmp_path / "solutions"
    sols.mkdir()
    nbformat.write(solution_notebook(), sols / "sub.ipynb")
    monkeypatch.chdir(sols)                            # the course folder is found from here
    cheat = assignments.student_version(solution_notebook())
    # a check cell edited to check the reference is put back as the solution has it
    cheat.cells[2].source = ("from course_lib.course import homework\n"
                             "homework.check('welcome.euler_step', lambda *a: homework.reference('welcome.euler_step')(*a))")
    nbformat.write(cheat, tmp_path / "sub.ipynb")
    assert assignments.grade_one(tmp_path / "sub.ipynb")["welcome.euler_step"] == "not attempted"
    # a check cell deleted: the exercise was never checked
    cheat.cells[2].source = "print('welcome.euler_step] passed')"
    nbformat.write(cheat, tmp_path / "sub.ipynb")
    assert assignments.grade_one(tmp_path / "sub.ipynb")["welcome.euler_step"] == "not run"
    # the reference handed in as one's own function
    cheat = assignments.student_version(solution_notebook())
    cheat.cells[1].source = "from course_lib.course import homework\neuler_step = homework.reference('welcome.euler_step')"
    nbformat.write(cheat, tmp_path / "sub.ipynb")
    assert assignments.grade_one(tmp_path / "sub.ipynb")["welcome.euler_step"] == "failed"


def test_course_folder_is_given_or_found_by_walking_up(tmp_path, monkeypatch):
    (tmp_path / "solutions").mkdir()
    deep = tmp_path / "notebooks" / "sub"
    deep.mkdir(parents=True)
    assert course_folder(start=deep) == tmp_path.resolve()
    monkeypatch.chdir(deep)
    assert course_folder() == tmp_path.resolve()
    assert course_folder(tmp_path / "solutions" / "..") == tmp_path.resolve()
    with pytest.raises(CourseNotFound, match="expected a course folder holding solutions/"):
        course_folder(deep)
    # outside any course folder (the temporary folder's parents hold no solutions/): a clear error
    assert not any((p / "solutions").is_dir() for p in tmp_path.resolve().parents)
    (tmp_path / "solutions").rmdir()
    with pytest.raises(CourseNotFound, match="nor any folder above it holds solutions/.*pass --course DIR"):
        course_folder(start=deep)


def test_commands_take_the_course_folder_not_the_package_location(tmp_path, monkeypatch, capsys):
    course = tmp_path / "course"
    (course / "solutions").mkdir(parents=True)
    nbformat.write(solution_notebook(), course / "solutions" / "00_x.ipynb")
    monkeypatch.chdir(tmp_path)
    assert assignments.main(["check", "--course", str(course)]) == 1
    assert "notebooks/00_x.ipynb is missing" in capsys.readouterr().out
    assert assignments.main(["build", "--course", str(course)]) == 0
    assert (course / "notebooks" / "00_x.ipynb").is_file()
    monkeypatch.chdir(course / "notebooks")                          # found by walking up
    assert assignments.main(["check"]) == 0
    assert "in step" in capsys.readouterr().out
    assert assignments.main(["check", "--course", str(tmp_path)]) == 2
    assert "expected a course folder holding solutions/" in capsys.readouterr().out
    assert not (REPO / "notebooks" / "00_x.ipynb").exists()
