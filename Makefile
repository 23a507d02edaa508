# `make demo` and `make test` each create and reuse .venv on their own.
# torch is installed first, from the pinned wheel, so that nothing pulls a multi-GB CUDA build.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
# Extras the test suite exercises; `demo` needs none.
TEST_EXTRAS ?= dev,peer,plot,text,image,hdf5,tracking,hpo,docs
# One pytest-xdist worker per core (tests run torch on one thread each; see tests/conftest.py).
TEST_WORKERS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: demo test lint format bench-eval clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"

$(VENV)/.stamp-base: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.stamp-test: pyproject.toml $(VENV)/.stamp-base
	$(BIN)/python -m pip install --quiet -e ".[$(TEST_EXTRAS)]"
	touch $@

demo: $(VENV)/.stamp-base
	$(BIN)/mocme train --overwrite --out runs/demo

test: $(VENV)/.stamp-test
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS)

lint: $(VENV)/.stamp-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.stamp-test
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench-eval: $(VENV)/.stamp-test
	$(BIN)/python benchmarks/eval_speed.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
