# `make demo` and `make test` set everything up on first use: a venv in $(VENV)
# with the project and its test, lint and demo dependencies from PyPI.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Editable installs link each module: a new module means a new install.
STAMP := $(VENV)/.installed-$(shell (cat pyproject.toml; ls escudeiro_pools integrations) | cksum | cut -d' ' -f1)

.PHONY: docs-check demo test test-only lint bench mutate package docs docs-serve clean

# A changed pyproject.toml or module list reinstalls into the same venv (one in
# use elsewhere keeps working); the venv is made only when it is missing.
$(STAMP):
	@echo "Setting up $(VENV) (once, and again when pyproject.toml changes): a venv with"
	@echo "escudeiro-pools installed editable, and its test, lint and demo tools from PyPI:"
	@$(PYTHON) tools/show_groups.py test lint demo
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade "pip>=25.1"
	@# The build's own notices (setuptools' editable-install box) are not the user's concern.
	@PYTHONWARNINGS=ignore $(BIN)/python -m pip install --quiet --progress-bar off \
		-e . --group test --group lint --group demo
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)
	@echo "$(VENV) is ready."

demo: $(STAMP)
	$(BIN)/python -m examples.demo

test: $(STAMP) test-only lint

test-only: $(STAMP)
	$(BIN)/python -m pytest --cov --cov-report=term --cov-fail-under=95

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The bench has its own environment on Python 3.12 with the peers it measures.
BENCH_VENV ?= .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed-$(shell cat pyproject.toml bench/requirements.txt | cksum | cut -d' ' -f1)

$(BENCH_STAMP):
	rm -rf $(BENCH_VENV)
	"$$(bench/find-python)" -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade "pip>=25.1"
	$(BENCH_VENV)/bin/python -m pip install --quiet -e ".[all]" -r bench/requirements.txt
	touch $@

bench: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python -m bench $(BENCH_ARGS)

# The sdist and wheel, checked and installed into a fresh venv (in CI).
package:
	tools/check_package.sh $(PYTHON)

# The documentation site (mkdocs.yml): the docs group in the project's venv, then a
# strict build into site/, or a live-reloading server. Its examples run in `make test`.
docs: $(STAMP)
	$(BIN)/python -m pip install --quiet --group docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-serve: $(STAMP)
	$(BIN)/python -m pip install --quiet --group docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

# Every page of the built site in headless Chromium with no internet: diagrams
# drawn, code blocks and charts within the content column (tools/check_site.py).
# Needs a Chromium (apt-get install chromium, or CHROMIUM=/path/to/it).
docs-check: docs
	$(BIN)/python -m pip install --quiet --group docs-check
	$(BIN)/python tools/check_site.py

# Mutation testing (not in CI): the decision core and the acquire, release and
# lease paths of both pools, against the tests in [tool.mutmut] (pyproject.toml).
# About an hour on 2 cores; `mutmut results` lists the survivors.
MUTATE_SCOPE ?= \
	'escudeiro_pools._state.*' \
	'escudeiro_pools._books.*' \
	'escudeiro_pools._queue.*' \
	'escudeiro_pools._maintenance.*' \
	'escudeiro_pools._lifetimes.*' \
	'escudeiro_pools._report.*' \
	'escudeiro_pools._breaker.*' \
	'escudeiro_pools._lease.*' \
	'escudeiro_pools._async_leasing.*' \
	'escudeiro_pools._thread_leasing.*' \
	'escudeiro_pools._async_pool.*AsyncPoolǁ_checkout__*' \
	'escudeiro_pools._async_pool.*AsyncPoolǁrelease__*' \
	'escudeiro_pools._async_pool.*AsyncPoolǁ_end__*' \
	'escudeiro_pools._thread_pool.*ThreadPoolǁ_checkout__*' \
	'escudeiro_pools._thread_pool.*ThreadPoolǁrelease__*' \
	'escudeiro_pools._thread_pool.*ThreadPoolǁ_end__*'

mutate: $(STAMP)
	$(BIN)/python -m pip install --quiet --group mutate
	rm -rf mutants
	$(BIN)/mutmut run $(MUTATE_SCOPE) > mutants.log 2>&1 || (tail -n 30 mutants.log; exit 1)
	$(BIN)/python tools/mutation_report.py $(MUTATE_SCOPE)

clean:
	rm -rf .venv .venv-* .pytest_cache .mypy_cache .ruff_cache .coverage mutants mutants.log dist site site-check .cache
