# Frontdesk — the two commands: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN     = $(VENV)/bin
PYTEST_ARGS ?=
# Test processes (pytest-xdist): the suite spends much of its time waiting on servers and browsers.
TEST_WORKERS ?= 3
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: demo test peers lint typecheck unit bench bench-quick clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The runtime only (what `make demo` needs); the dev extras (test tools, linters) on top for `make test`.
$(VENV)/.runtime: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install --quiet -e .
	@touch $@

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@ $(VENV)/.runtime

## Create the venv (runtime only), migrate a SQLite database under var/, load demo data and serve on http://$(HOST):$(PORT)
demo: $(VENV)/.runtime
	$(BIN)/frontdesk migrate
	FRONTDESK_HOST=$(HOST) FRONTDESK_PORT=$(PORT) $(BIN)/frontdesk demo
	$(BIN)/frontdesk serve --host $(HOST) --port $(PORT)

## Lint, type-check and run the whole test suite (SQLite + PostgreSQL, memory hub + Redis)
test: $(VENV)/.installed peers lint typecheck
	$(BIN)/pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

## Install the suite's real peers (Chromium, Dovecot) when running as root, else say how
peers:
	@bash .ci/peers

## Ruff, and the import contracts of pyproject.toml (layers, no domain reaching into another's internals)
lint: $(VENV)/.installed
	$(BIN)/ruff check frontdesk tests bench
	$(BIN)/ruff format --check frontdesk tests bench
	$(BIN)/lint-imports

typecheck: $(VENV)/.installed
	$(BIN)/mypy

bench: $(VENV)/.installed
	@for f in bench/[!_]*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

bench-quick: $(VENV)/.installed
	@for f in bench/[!_]*.py; do echo "== $$f"; $(BIN)/python $$f --quick || exit 1; done

clean:
	rm -rf $(VENV) var test-artifacts .pytest_cache .mypy_cache .ruff_cache
