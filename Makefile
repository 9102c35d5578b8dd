# Shoal: `make run` starts a local cluster (`make run BACKEND=rbd`: on a local Ceph cluster),
# `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUN_DIR ?= $(CURDIR)/run
PORT ?= 4523
BACKEND ?= loopback

.PHONY: venv run test lint unit bench clean

$(BIN)/shoal: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(BIN)/shoal

venv: $(BIN)/shoal

run: venv
	$(BIN)/python -m control.localcluster --dir $(RUN_DIR) --port $(PORT) --backend $(BACKEND)

lint: venv
	$(BIN)/ruff check control agent plugin tests bench
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q tests

unit: venv
	$(BIN)/pytest -q -m "not functional" tests

bench: venv
	@for script in bench/[!_]*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	[ ! -x $(BIN)/python ] || $(BIN)/python -m control.localcluster --dir $(RUN_DIR) --clean
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
