# Two World Lines: one entry point for learners and instructors. Every target sets up .venv first.
PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
PY := $(VENV)/bin/python
export COURSE_MODE ?= lecture
# the course folder the instructor commands work on (the package never looks for it by itself)
COURSE_DIR ?= $(CURDIR)
# JupyterLab refuses to start as root (containers, some cloud machines) unless told to
LAB_ARGS ?= $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: setup lab test run site student check grade bench pretrain wheel clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first, on its own: a CPU machine gets a CPU build, and a torch you already have is kept
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install "torch==$(TORCH_VERSION)"
	$(PY) -m pip install -e ".[dev]"
	touch $@

lab: setup            ## open the course in JupyterLab
	$(VENV)/bin/jupyter lab $(LAB_ARGS) notebooks/

test: setup           ## unit tests, homework-check tests, sync check, every notebook in quick mode
	COURSE_MODE=quick $(PY) -m pytest -q

run: setup            ## execute every notebook headless in $(COURSE_MODE) mode into build/ (TIMEOUT=s per cell)
	$(PY) -m course_lib.course.runner --course $(COURSE_DIR) --html --out build $(if $(TIMEOUT),--timeout $(TIMEOUT),)

site: setup           ## the course as a static site in build/site (open build/site/index.html); reuses `make run`'s build/solutions
	$(PY) -m course_lib.course.site --course $(COURSE_DIR) --out build/site --executed build/solutions $(if $(TIMEOUT),--timeout $(TIMEOUT),)

student: setup        ## regenerate notebooks/ from solutions/
	$(PY) -m course_lib.course.assignments build --course $(COURSE_DIR)

check: setup          ## fail if notebooks/ is out of step with solutions/
	$(PY) -m course_lib.course.assignments check --course $(COURSE_DIR)

grade: setup          ## grade submitted notebooks: make grade SUBMISSIONS="path/a.ipynb path/b.ipynb"
	$(PY) -m course_lib.course.assignments grade --course $(COURSE_DIR) $(SUBMISSIONS)

bench: setup          ## timings of every notebook: make bench COURSE_MODE=lecture
	$(PY) -m course_lib.bench notebooks --json --course $(COURSE_DIR)

pretrain: setup       ## train the shared models into data/weights/ (make pretrain COURSE_MODE=full NAMES="token-gpt")
	$(PY) -m course_lib.pretrain --mode $(COURSE_MODE) $(NAMES)

wheel: setup          ## build the course_lib wheel (code + assets) into build/dist/
	$(PY) -m pip wheel --no-deps --no-build-isolation -w build/dist .

clean:
	rm -rf build
