# Shoal: `make run` starts a local cluster (`make run BACKEND=rbd`: on a local Ceph cluster),
# `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUN_DIR ?= $(CURDIR)/run
PORT ?= 4523
BACKEND ?= loopback

.PHONY: venv run test lint unit bench clean proto

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

# The CSI driver's gRPC modules, made from plugin/csi/proto/csi.proto (checked in;
# tests/plugin/csi/test_proto.py fails when they are stale).
proto: venv
	$(BIN)/python -m grpc_tools.protoc -I . --python_out=. --pyi_out=. --grpc_python_out=. \
		plugin/csi/proto/csi.proto

clean:
	[ ! -x $(BIN)/python ] || $(BIN)/python -m control.localcluster --dir $(RUN_DIR) --clean
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
