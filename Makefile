# LabHub developer entry points. `make demo` runs the system, `make test` passes the tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed-stamp

.PHONY: help install system-deps demo demo-clean test lint typecheck contracts unit docs bench clean

help:
	@echo "make demo        - install what is missing, then run LabHub on this machine"
	@echo "make test        - install what is missing, then run lint, type checks, contracts, docs and all tests"
	@echo "make bench       - run the benchmarks and print their figures"
	@echo "make demo-clean  - forget the demo's state (student homes, cluster state)"

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[test,docs]'
	touch $(STAMP)

install: $(STAMP)

# Debian/Ubuntu packages and tools the tests and the demo need (idempotent; root on a fresh machine).
system-deps:
	bash .ci/system-deps

demo: system-deps install
	$(BIN)/labhub demo

demo-clean:
	rm -rf .state/demo

lint: install
	$(BIN)/ruff check hub_ext tests
	$(BIN)/ruff format --check hub_ext tests

typecheck: install
	$(BIN)/mypy

contracts: install
	$(BIN)/lint-imports

docs: install
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html

unit: install
	PATH="$(CURDIR)/$(BIN):$(CURDIR)/.tools/bin:$(CURDIR)/node_modules/.bin:$$PATH" $(BIN)/pytest

test: system-deps install lint typecheck contracts docs unit

# Every benchmark at full size, to the end even when one fails (then the exit status says so).
# `make test` runs each of them at smoke size (tests/bench/test_bench_smoke.py);
# `make bench BENCH_ARGS=--smoke` does the same here.
BENCH_ARGS ?=
bench: install
	@failed=""; for f in tests/bench/bench_*.py; do \
	  echo "== $$f $(BENCH_ARGS)"; \
	  PATH="$(CURDIR)/$(BIN):$(CURDIR)/.tools/bin:$(CURDIR)/node_modules/.bin:$$PATH" \
	    $(PY) $$f $(BENCH_ARGS) || failed="$$failed $$f"; done; \
	if [ -n "$$failed" ]; then echo "benchmarks that failed:$$failed"; exit 1; fi

clean:
	rm -rf docs/_build .pytest_cache .mypy_cache .ruff_cache
