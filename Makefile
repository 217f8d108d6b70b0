# Quick start: `make demo` and `make test`. Both create .venv if missing and install what they need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test lint format stress clean setup setup-test browser

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

demo: setup
	$(VENV)/bin/mcpsim demo

# Headless Chromium for the browser tests: Debian's package, driven by Playwright (which never downloads one).
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing chromium (Debian) for the browser tests"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "warning: could not install chromium: the browser tests will be skipped"; \
	  else \
	    echo "warning: /usr/bin/chromium is missing and this is not root: the browser tests will be skipped"; \
	  fi; \
	fi

test: setup-test browser
	$(VENV)/bin/ruff check src tests
	$(PY) -m pytest -q -p no:cacheprovider

lint: setup-test
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests

format: setup-test
	$(VENV)/bin/ruff format src tests
	$(VENV)/bin/ruff check --fix src tests

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
