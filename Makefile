# `make demo` and `make test` set everything up on first use: a venv in $(VENV)
# with the project and its test, lint and demo dependencies from PyPI.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: demo test test-only lint bench clean

$(STAMP):
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25.1"
	$(BIN)/python -m pip install --quiet -e . --group test --group lint --group demo
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m examples.demo

test: $(STAMP) test-only lint

test-only: $(STAMP)
	$(BIN)/python -m pytest --cov --cov-report=term --cov-fail-under=95

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench:
	$(MAKE) -C bench run

clean:
	rm -rf .venv .venv-* .pytest_cache .mypy_cache .ruff_cache .coverage
