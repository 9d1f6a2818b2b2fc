"""The install files agree with each other and with the README; the library's imports run only
downward; and the package works when installed from a wheel, away from the repository."""
import ast
import json
import os
import pathlib
import re
import subprocess
import sys
import tomllib
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_yml_installs_exactly_the_package_with_its_extras():
    env = (ROOT / "environment.yml").read_text()
    deps = re.findall(r"^\s*-\s+(.+)$", env.split("dependencies:")[1], flags=re.M)
    # conda brings only python and pip; everything else comes from pyproject.toml through pip, so
    # the two files cannot name different dependencies
    assert deps[0].startswith("python="), deps
    assert deps[1] == "pip", deps
    assert deps[2] == "pip:", deps
    assert [d.strip("'\"") for d in deps[3:]] == ["-e .[dev]"], deps
    py = deps[0].split("=")[1]
    low = PYPROJECT["project"]["requires-python"].removeprefix(">=")
    assert tuple(map(int, py.split("."))) >= tuple(map(int, low.split(".")))


def test_runtime_dependencies_are_the_course_stack_and_torch_range_admits_2_13():
    names = {re.split(r"[<>=!~\[ ]", d)[0].lower() for d in PYPROJECT["project"]["dependencies"]}
    assert {"torch", "numpy", "matplotlib", "scikit-learn", "ipywidgets", "tqdm", "jupyterlab",
            "ipykernel"} <= names
    torch_spec = next(d for d in PYPROJECT["project"]["dependencies"] if d.startswith("torch"))
    lower = re.search(r">=\s*([\d.]+)", torch_spec).group(1)
    assert tuple(map(int, lower.split("."))) <= (2, 13), "CI installs torch 2.13.0 first"
    assert "<" not in torch_spec and "==" not in torch_spec, "never pin or cap torch for learners"
    dev = {re.split(r"[<>=!~\[ ]", d)[0].lower() for d in PYPROJECT["project"]["optional-dependencies"]["dev"]}
    assert {"pytest", "nbval"} <= dev


def test_ci_installs_torch_first_then_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    torch_at, test_at = ci.index('pip install "torch==2.13.0"'), ci.index("make test")
    assert torch_at < test_at
    assert "make test" in readme and "make lab" in readme
    assert "COURSE_MODE=quick" in ci


# ----------------------------------------------------------------------------- the library's shape
# Imports run only downward: the ground floor knows no part; a part uses the ground floor and earlier
# parts; course/ uses the ground floor and the parts; recipes/ use the ground floor and the parts;
# bench/ may use everything; pretrain (the weights' trainer) uses recipes/. Nothing but bench/, pretrain
# (and the notebooks) imports recipes/, nothing but bench/ imports bench/.

PACKAGE = ROOT / "course_lib"
GROUND = {"runtime", "checks", "data", "train", "cache", "record", "weights", "distributed", "metrics", "viz", "evaluator"}
PARTS = ("nets", "pixels", "tokens", "orders", "flow", "heads")   # in the syllabus' order
MAY_IMPORT = {
    **{g: GROUND for g in GROUND},
    **{p: GROUND | set(PARTS[: i + 1]) for i, p in enumerate(PARTS)},
    "course": GROUND | set(PARTS) | {"course"},
    "recipes": GROUND | set(PARTS) | {"recipes"},
    "bench": GROUND | set(PARTS) | {"course", "recipes", "bench"},
    "pretrain": GROUND | set(PARTS) | {"recipes", "pretrain"},    # trains every recipe's cached models
    "": set(),                                                   # course_lib/__init__.py
}
# inside course/: homework -> exercises -> checking -> mistakes -> calling; homework, assignments and runner -> folder
COURSE_MAY_IMPORT = {
    "calling": set(), "mistakes": {"calling"}, "checking": {"calling", "mistakes"},
    "folder": set(), "exercises": {"checking", "exercises"},
    "homework": {"exercises", "checking", "folder"}, "assignments": {"folder"}, "runner": {"folder", "offline"}, "": set(),
    "site": {"runner", "assignments", "folder", "offline"},   # the course site; offline: its MathJax
}


def library_modules() -> dict[str, pathlib.Path]:
    """Every module of course_lib by dotted name (a package by its own name)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = library_modules()


def imports_of(name: str) -> list[tuple[str, str, int]]:
    """(imported module, imported name or "", line) for every course_lib import in module ``name``,
    at the top or inside a function; ``from A import b`` counts as importing A.b when that is a module."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, "", node.lineno) for a in node.names if a.name.split(".")[0] == "course_lib"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != "course_lib":
                continue
            for a in node.names:
                sub = f"{base}.{a.name}"
                out.append((sub, "", node.lineno) if sub in MODULES else (base, a.name, node.lineno))
    return out


def layer(name: str) -> str:
    """'' for course_lib itself, else the first component under it: 'runtime', 'tokens', 'course'..."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_module_belongs_to_a_known_layer():
    unknown = sorted({layer(m) for m in MODULES} - set(MAY_IMPORT))
    assert not unknown, f"place these in MAY_IMPORT (ground floor, a part, or the top): {unknown}"
    assert {"runtime", "course", "recipes", "bench"} <= {layer(m) for m in MODULES}


def test_imports_run_only_downward():
    wrong = []
    for name in MODULES:
        for target, _, line in imports_of(name):
            if target not in MODULES:
                wrong.append(f"{name}:{line} imports {target}, which is not a module of course_lib")
            elif layer(target) != "" and layer(target) not in MAY_IMPORT[layer(name)]:
                wrong.append(f"{name}:{line} imports {target} ({layer(name) or 'course_lib'} may use only "
                             f"{', '.join(sorted(MAY_IMPORT[layer(name)])) or 'nothing of course_lib'})")
            elif layer(name) == layer(target) == "course":
                src = name.split(".")[2] if name.count(".") > 1 else ""
                dst = target.split(".")[2] if target.count(".") > 1 else ""
                if dst != src and dst not in COURSE_MAY_IMPORT.get(src, set()):
                    wrong.append(f"{name}:{line} imports {target}: inside course/, imports run "
                                 "homework -> exercises -> checking -> mistakes -> calling, assignments/runner -> folder, "
                                 "site -> runner/assignments/folder")
    assert not wrong, "imports that run the wrong way:\n" + "\n".join(wrong)


def test_no_import_cycle():
    graph = {m: {t for t, _, _ in imports_of(m) if t in MODULES and t != m} for m in MODULES}
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == "open":
                cycles.append(" -> ".join(stack[stack.index(t):] + [t]))
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_private_name_is_imported_across_modules():
    wrong = []
    for name, path in MODULES.items():
        aliases = {}                                           # local name -> course_lib module
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("course_lib.") and a.asname:
                        aliases[a.asname] = a.name
        for target, what, line in imports_of(name):
            private = what if what else target.rsplit(".", 1)[-1]
            if private.startswith("_") and not private.startswith("__"):
                wrong.append(f"{name}:{line} imports the private {target}{'.' + what if what else ''}")
            if not what and target in MODULES:
                aliases.setdefault(target.rsplit(".", 1)[-1], target)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in aliases and aliases[node.value.id] != name
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                wrong.append(f"{name}:{node.lineno} uses the private {aliases[node.value.id]}.{node.attr}")
    assert not wrong, "private helpers used across modules (make them public in one place):\n" + "\n".join(wrong)


IMPORT_EACH_ALONE = r"""
import importlib, json, os, sys
for heavy in sys.argv[2:]:                 # third-party imports, loaded once before forking
    try:
        importlib.import_module(heavy)
    except Exception:
        pass
assert not [m for m in sys.modules if m.split(".")[0] == "course_lib"]
failed = {}
for name in sys.argv[1].split(","):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                           # a fresh interpreter state for course_lib: import only it
        os.close(r)
        try:
            importlib.import_module(name)
            os._exit(0)
        except BaseException as e:
            os.write(w, f"{type(e).__name__}: {e}".encode()[:2000])
            os._exit(1)
    os.close(w)
    message = os.read(r, 4000).decode()
    os.close(r)
    if os.waitpid(pid, 0)[1] != 0:
        failed[name] = message or "died"
print(json.dumps(failed))
"""


def third_party_imports() -> list[str]:
    names = set()
    for path in MODULES.values():
        for node in ast.parse(path.read_text(encoding="utf-8")).body:     # module level only
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names.add(node.module)
    return sorted(n for n in names if n.split(".")[0] not in ("course_lib", "__future__"))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="forks one child per module")
def test_every_module_imports_on_its_own_in_a_fresh_interpreter():
    env = {**os.environ, "MPLBACKEND": "Agg", "COURSE_MODE": "quick"}
    out = subprocess.run([sys.executable, "-c", IMPORT_EACH_ALONE, ",".join(sorted(MODULES)),
                          *third_party_imports()], capture_output=True, text=True, timeout=300, env=env,
                         cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    failed = json.loads(out.stdout.strip().splitlines()[-1])
    lines = [f"{k}: {v}" for k, v in failed.items()]
    assert not failed, "modules that do not import on their own:\n" + "\n".join(lines)


def test_the_scan_finds_each_kind_of_wrong_import(tmp_path, monkeypatch):
    fake = {
        "__init__.py": "",
        "runtime.py": "import course_lib.tokens.vq as vq\n",                     # ground -> part
        "tokens/__init__.py": "",
        "tokens/vq.py": "from course_lib.tokens.bitwise import _pack\n",        # private, and a cycle
        "tokens/bitwise.py": "from . import vq\nfrom course_lib import flow\n",  # earlier part -> later
        "flow/__init__.py": "def f():\n    from course_lib.recipes import welcome\n",   # part -> recipes
        "recipes/__init__.py": "", "recipes/welcome.py": "",
        "course/__init__.py": "", "course/homework.py": "",
        "course/exercises/__init__.py": "from course_lib.course import homework\n",  # the old circle
        "metrics.py": "from course_lib import runtime\nx = runtime._state\n",          # private attribute
    }
    for rel, text in fake.items():
        (tmp_path / "course_lib" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "course_lib" / rel).write_text(text)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path / "course_lib")
    monkeypatch.setattr(sys.modules[__name__], "MODULES", library_modules())
    with pytest.raises(AssertionError) as down:
        test_imports_run_only_downward()
    for expected in ("course_lib.runtime:1 imports course_lib.tokens.vq",
                     "course_lib.tokens.bitwise:2 imports course_lib.flow",
                     "course_lib.flow:2 imports course_lib.recipes.welcome",
                     "course_lib.course.exercises:1 imports course_lib.course.homework"):
        assert expected in str(down.value)
    with pytest.raises(AssertionError, match="course_lib.tokens.vq -> course_lib.tokens.bitwise -> "
                                             "course_lib.tokens.vq"):
        test_no_import_cycle()
    with pytest.raises(AssertionError) as private:
        test_no_private_name_is_imported_across_modules()
    assert "course_lib.tokens.vq:1 imports the private course_lib.tokens.bitwise._pack" in str(private.value)
    assert "course_lib.metrics:2 uses the private course_lib.runtime._state" in str(private.value)


# ----------------------------------------------------------------------------- installed as a wheel

FROM_THE_WHEEL = r"""
import json, pathlib, sys
site, course = pathlib.Path(sys.argv[1]).resolve(), pathlib.Path(sys.argv[2]).resolve()
import course_lib.data as data
from course_lib import weights
from course_lib.course import assignments, folder, runner
modules = {m.__name__: m.__file__ for m in list(sys.modules.values())
           if m.__name__.split(".")[0] == "course_lib" and getattr(m, "__file__", None)}
readme = data.ASSETS / "README.md"
print(json.dumps({
    "outside_site": sorted(n for n, f in modules.items() if site not in pathlib.Path(f).resolve().parents),
    "asset": str(data.data_file("README.md", data.sha256(readme))),
    "course": str(folder.course_folder()),
    "built": assignments.build(),
    "in_step": assignments.check() == [],
    "notebooks": [p.name for p in runner.notebook_paths("notebooks")],
    "weights": str(weights.folder()),
}))
"""


def test_the_package_works_installed_from_a_wheel_away_from_the_repository(tmp_path):
    """Build a wheel from a copy of the sources, install it with pip --target, and use it from a
    course folder elsewhere: every module, the shipped assets and the course folder come from there."""
    import shutil
    src = tmp_path / "src"
    shutil.copytree(PACKAGE, src / "course_lib", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
    subprocess.run(pip + ["wheel", "--no-deps", "--no-build-isolation", "--no-index",
                          "-w", str(tmp_path / "dist"), str(src)], check=True, capture_output=True, timeout=120,
                   cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("two_world_lines-*.whl")

    # the wheel holds every module of the source tree and every shipped asset
    inside = set(zipfile.ZipFile(wheel).namelist())
    expected = {p.relative_to(ROOT).as_posix() for p in PACKAGE.rglob("*.py")}
    expected |= {p.relative_to(ROOT).as_posix() for p in (PACKAGE / "assets").rglob("*") if p.is_file()}
    assert "course_lib/assets/README.md" in expected
    assert expected - inside == set(), f"missing from the wheel: {sorted(expected - inside)}"

    site = tmp_path / "site"
    subprocess.run(pip + ["install", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=120)
    course = tmp_path / "course"
    (course / "solutions").mkdir(parents=True)
    (course / "solutions" / "00_x.ipynb").write_text(json.dumps({
        "cells": [{"cell_type": "code", "id": "a", "metadata": {}, "execution_count": None, "outputs": [],
                   "source": "x = 1\n### BEGIN SOLUTION\nx = 2\n### END SOLUTION"}],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    env = {**os.environ, "PYTHONPATH": str(site), "MPLBACKEND": "Agg"}
    out = subprocess.run([sys.executable, "-c", FROM_THE_WHEEL, str(site), str(course)], cwd=course / "solutions",
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["outside_site"] == [], "imported from the repository, not from the installed wheel"
    assert pathlib.Path(got["asset"]).resolve() == (site / "course_lib" / "assets" / "README.md").resolve()
    assert pathlib.Path(got["course"]) == course.resolve()
    assert got["built"] == 0 and got["in_step"] and got["notebooks"] == ["00_x.ipynb"]
    assert got["weights"] == "None"                  # no data/weights in this course: models train
    assert "raise NotImplementedError()" in (course / "notebooks" / "00_x.ipynb").read_text()

    # the command line: --course from anywhere; without it, outside a course folder, a clear error
    cmd = [sys.executable, "-m", "course_lib.course.assignments", "check"]
    ok = subprocess.run(cmd + ["--course", str(course)], cwd=tmp_path, env=env, capture_output=True, text=True,
                        timeout=120)
    assert ok.returncode == 0 and "in step" in ok.stdout, ok.stdout + ok.stderr
    lost = subprocess.run(cmd, cwd=site, env=env, capture_output=True, text=True, timeout=120)
    assert lost.returncode == 2 and "pass --course DIR" in lost.stdout, lost.stdout + lost.stderr


@pytest.mark.parametrize("part", ["pixels", "tokens", "orders", "flow"])
def test_each_part_re_exports_its_main_names(part):
    import importlib
    package = importlib.import_module(f"course_lib.{part}")
    names = package.__all__
    assert names and len(set(names)) == len(names), part
    for name in names:
        obj = getattr(package, name)
        if callable(obj):                           # classes and functions, not constants such as STEPS
            home = getattr(obj, "__module__", "") or ""
            assert home.startswith(f"course_lib.{part}."), f"course_lib.{part}.{name} comes from {home}"
