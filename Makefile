# One command each: `make demo` (set up + main job), `make test` (set up + tests).
# Set-up is idempotent: it reinstalls only when setup.cfg changes.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA_DIR := /usr/share/datasets/fashion-mnist
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
ARGS ?=
# pytest processes for `make test`; each test file stays in one process, in order.
TEST_WORKERS ?= 2

.PHONY: setup data demo test test-fast test-slow lint format docs bench bench-real bench-transfer notebooks clean

setup: data $(STAMP)

# Debian ships Fashion-MNIST as IDX gzip files: the embedded default data set (README, "Install, step by step").
data:
	@[ -f $(DATA_DIR)/t10k-labels-idx1-ubyte.gz ] || \
	  $(SUDO) apt-get install -y dataset-fashion-mnist || \
	  { $(SUDO) apt-get update && $(SUDO) apt-get install -y dataset-fashion-mnist; }

# Two steps, versions from setup.cfg: the [trainer.no_deps] list goes in with --no-deps
# so that the CUDA `tensorflow` wheel never replaces `tensorflow-cpu` (README, "Install, step by step").
# uv installs the same pinned wheels as pip, downloading and unpacking in parallel: about a
# tenth of pip's time for TensorFlow's ~200 packages (`make setup INSTALL=pip` uses pip).
INSTALL ?= uv
# uv, unlike pip, does not compile the installed modules to bytecode; with PYTHONDONTWRITEBYTECODE
# set (some CI images and containers set it) no process writes any, and each one that imports
# TensorFlow then compiles it again: measured ~15 s of CPU per process instead of ~6. So the
# install's check imports what the commands and tests import with bytecode writing on, and the
# tests run with it on (the .pyc files go to __pycache__/, which git ignores).
BYTECODE := env -u PYTHONDONTWRITEBYTECODE
WARM_IMPORTS := import trainer, tf_keras, tensorflow_model_optimization, trainer.cli.main, trainer.cli.train, trainer.cli.export, trainer.cli.compress, trainer.cli.tune, trainer.export.runtimes, trainer.compress.search, trainer.compression.quantize, trainer.tuning.tuners, trainer.plots, mediapipe.tasks.python.vision, mediapipe.tasks.python.text, sklearn.linear_model, matplotlib.pyplot
UV_VERSION := 0.13.9
PIP = $(if $(filter uv,$(INSTALL)),$(VENV)/bin/uv pip install --quiet --python $(PY),$(PY) -m pip install --quiet)
$(STAMP): setup.cfg pyproject.toml
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(if $(filter uv,$(INSTALL)),[ -x $(VENV)/bin/uv ] || $(PY) -m pip install --quiet uv==$(UV_VERSION))
	$(PIP) -e '.[test,notebooks,docs]'
	$(PIP) --no-deps $$($(PY) -c "import configparser; c = configparser.ConfigParser(); c.read('setup.cfg'); print(' '.join(c['trainer.no_deps']['packages'].split()))")
	$(BYTECODE) $(PY) -c "$(WARM_IMPORTS); print('trainer', trainer.__version__, 'ready')"
	touch $(STAMP)

demo: setup
	$(VENV)/bin/trainer train fashion_mnist $(ARGS)

test: setup
	$(BYTECODE) $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile $(ARGS); status=$$?; [ $$status -eq 5 ] && echo "no tests collected" && exit 0; exit $$status

# The edit loop: `make test` without the end-to-end tests (marked e2e: recipe runs, commands,
# subprocesses, notebooks; tests/conftest.py also marks those that use a trained run).
test-fast: setup
	$(BYTECODE) $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not slow and not e2e" $(ARGS); status=$$?; [ $$status -eq 5 ] && echo "no tests collected" && exit 0; exit $$status

test-slow: setup
	$(BYTECODE) $(PY) -m pytest -q -m slow $(ARGS)

lint: setup
	$(VENV)/bin/ruff check trainer recipes tests bench notebooks
	$(VENV)/bin/ruff format --check trainer recipes tests bench notebooks

format: setup
	$(VENV)/bin/ruff format trainer recipes tests bench notebooks
	$(VENV)/bin/ruff check --fix trainer recipes tests bench notebooks

# The documentation site (mkdocs.yml, docs/, docs/hooks.py) in site/: open site/index.html.
# --strict fails on any warning (a broken link, a missing page, image or result file); without
# --quiet, which hides the warnings that strict mode counts.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

bench: setup
	$(PY) bench/fashion_mnist.py $(ARGS)

# bench/real_data.py's text set is Debian's package descriptions: apt keeps the long ones
# (Translation-en) only when asked, so fetch them once if apt's lists lack them.
bench-real: setup
	@lists="$$(apt-get indextargets -o Acquire::Languages=en --format '$$(FILENAME)' \
	  'Identifier: Translations' 'Language: en' 'Component: main')"; \
	  { [ -n "$$lists" ] && ls $$lists >/dev/null 2>&1; } || $(SUDO) apt-get update -o Acquire::Languages=en
	$(PY) bench/real_data.py $(ARGS)

bench-transfer: setup
	$(PY) bench/transfer.py $(ARGS)

clean:
	rm -rf $(VENV) runs build site *.egg-info
