# Quick start: `make demo` and `make test`. Both create .venv if missing and install what they need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test lint format stress clean setup setup-test node-tools

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PIP) install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(PIP) install -q -e '.[all,dev]'
	touch $@

setup: $(VENV)/.installed

setup-test: $(VENV)/.installed-test

# Node tools the tests drive as outside MCP clients (conformance suite, inspector CLI), pinned by the lockfile.
NODE_TOOLS := tests/node/node_modules/.installed
$(NODE_TOOLS): tests/node/package.json tests/node/package-lock.json
	npm ci --prefix tests/node --no-audit --no-fund --loglevel=error
	touch $@

node-tools: $(NODE_TOOLS)

demo: setup
	$(VENV)/bin/mcpsim demo

test: setup-test node-tools
	$(VENV)/bin/ruff check src tests
	$(PY) -m pytest -q -p no:cacheprovider

lint: setup-test
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests

format: setup-test
	$(VENV)/bin/ruff format src tests
	$(VENV)/bin/ruff check --fix src tests

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache tests/node/node_modules
