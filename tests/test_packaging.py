"""The install files agree with each other and with the README."""
import pathlib
import re
import tomllib

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
