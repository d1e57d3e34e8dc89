# crib: `make help` lists the targets. `sudo make run` and `sudo make test` are all a fresh
# Debian 12 machine needs; both install what is missing and skip what is there.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# Debian's interpreter: the one a fresh machine has (python3-venv is installed by `deps`).
PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip --disable-pip-version-check -q
CORE := cri sandbox image cni common
# Editable installs in "compat" mode: a plain path entry instead of setuptools' import-hook
# finder, which costs ~15 ms at every interpreter start (pathlib, urllib, ipaddress...).
# crib-runtime runs for every container create/start/exec, so its start-up is a budget.
EDITABLE := --config-settings editable_mode=compat
PYTEST_ARGS ?=

.PHONY: help deps deps-test run test test-unit lint fmt proto proto-check bench clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

deps: $(VENV)/.run-installed ## install system packages and crib into .venv

deps-test: $(VENV)/.test-installed ## install what the tests need too

$(VENV)/.run-installed: pyproject.toml deploy/install-packages.sh
	deploy/install-packages.sh run
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install $(EDITABLE) -e .
	touch $@

$(VENV)/.test-installed: $(VENV)/.run-installed
	deploy/install-packages.sh test
	$(PIP) install $(EDITABLE) -e '.[test]'
	touch $@

# Byte-compile the sources up front: crib-runtime starts for every create, start and exec,
# and compiling its modules there costs more than the rest of its start-up (and never
# happens at all under PYTHONDONTWRITEBYTECODE, or when the tree is not writable).
COMPILE := $(BIN)/python -m compileall -q $(CORE)

run: deps ## install, then run crib in the foreground with its embedded defaults
	$(COMPILE)
	exec $(BIN)/crib serve

test: deps-test lint ## install everything, lint, run the whole test suite
	$(COMPILE)
	$(BIN)/pytest $(PYTEST_ARGS) tests

test-unit: deps-test ## the unit tests only (no root needed)
	$(BIN)/pytest $(PYTEST_ARGS) tests/unit

lint: deps-test proto-check ## ruff, ruff format --check, mypy strict on the core packages
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: deps-test ## format and autofix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

proto: deps-test ## regenerate the CRI stubs from cri/api/api.proto
	$(BIN)/python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. cri/api/api.proto

proto-check: deps-test ## fail if the checked-in stubs differ from what `make proto` makes
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(BIN)/python -m grpc_tools.protoc -I. --python_out=$$tmp --pyi_out=$$tmp --grpc_python_out=$$tmp cri/api/api.proto && \
	for f in api_pb2.py api_pb2.pyi api_pb2_grpc.py; do \
	  diff -q $$tmp/cri/api/$$f cri/api/$$f >/dev/null || { echo "cri/api/$$f is stale: run make proto"; exit 1; }; \
	done

bench: deps-test ## benchmarks against runc/crun/containerd measured in the same run
	deploy/install-packages.sh bench
	$(COMPILE)
	@ls bench/*.py >/dev/null 2>&1 || { echo "no benchmarks yet"; exit 0; }
	for b in bench/*.py; do $(BIN)/python $$b; done

clean: ## remove the virtualenv and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
