# Quick start: `make demo` and `make test`. Both create .venv if missing and install what they need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
UV := $(VENV)/bin/uv
# uv installs the pinned ranges of pyproject.toml (the resolution pip would make) in seconds where pip takes
# minutes (measured on a cold cache, bytecode compiled as pip does: 26 s vs 89 s for '.[all,dev]', 20 s vs 102 s
# for eval-protocol): `make test` must fit, setup included, in 20 minutes on a fresh machine. Without
# --compile-bytecode every first import would compile, and a sandboxed instance, whose venv is read-only, on
# every start. uv is also a runtime dependency of mcpsim itself.
UV_INSTALL := $(UV) pip install -q --compile-bytecode
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test lint format stress clean setup setup-test node-deps node-tools browser sandbox-tools

# Node packages the tests use, installed into the project (never globally): the JavaScript example server's
# locked dependencies, and the pinned third-party server-everything in a project-local npm cache so that
# `npx -y $(EVERYTHING)` starts offline in the tests (keep in step with tests/server/test_server_everything.py).
JS_LAKE := examples/js_frozen_lake
EVERYTHING := @modelcontextprotocol/server-everything@2026.8.31
NPM_CACHE := $(CURDIR)/.mcpsim/npm-cache
NPM := npm --cache $(NPM_CACHE) --no-audit --no-fund --loglevel=error

$(PY):
	$(PYTHON) -m venv $(VENV)

$(UV): | $(PY)
	$(PIP) install -q 'uv>=0.4,<1'

$(VENV)/.installed: pyproject.toml | $(UV)
	$(UV_INSTALL) --python $(PY) -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(UV_INSTALL) --python $(PY) -e '.[all,dev]'
	@# older venvs got both pygame and pygame-ce (one package directory): keep pygame-ce, which gymnasium wants
	if $(PIP) show -q pygame >/dev/null 2>&1; then $(UV) pip uninstall -q --python $(PY) pygame && \
		$(UV_INSTALL) --python $(PY) --reinstall --no-deps pygame-ce; fi
	touch $@

$(JS_LAKE)/node_modules/.package-lock.json: $(JS_LAKE)/package-lock.json
	cd $(JS_LAKE) && $(NPM) ci

$(NPM_CACHE)/.installed-$(subst /,_,$(EVERYTHING)):
	$(NPM) exec --yes --package=$(EVERYTHING) -- node -e 0
	echo $(EVERYTHING) > $@

node-deps: $(JS_LAKE)/node_modules/.package-lock.json $(NPM_CACHE)/.installed-$(subst /,_,$(EVERYTHING))

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

# bubblewrap (Debian's package) for `--sandbox standard|strict` and its tests; prlimit and setpriv come with
# util-linux. The sandbox tests are skipped, saying why, only when bwrap cannot build namespaces here.
sandbox-tools:
	@if ! command -v bwrap >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing bubblewrap (Debian) for --sandbox"; \
	    (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null 2>&1 || \
	      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null)) \
	      || echo "warning: could not install bubblewrap: the sandbox tests will be skipped"; \
	  else \
	    echo "warning: bwrap is missing and this is not root: the sandbox tests will be skipped"; \
	  fi; \
	fi

# Three workers on two cores: the suite waits on processes and sockets more than it computes (measured with two:
# 1.37 cores busy on average), so a third worker shortens it.
test: setup-test node-deps node-tools browser sandbox-tools interop-clients
	$(VENV)/bin/ruff check src tests
	$(PY) -m pytest -q -p no:cacheprovider --durations=25 -n 3 --dist loadfile -m "not long"

# The long stress profile (200 concurrent sessions x 50 steps, 10,000 sessions of churn, 1000 fuzz examples per
# test); `make test` runs the same tests in their quick profile. Then every test marked `long` (see tests/conftest.py:
# the variants and long repeats that `make test` leaves out to stay under 20 minutes).
stress: setup-test node-deps node-tools browser sandbox-tools interop-clients
	MCPSIM_STRESS=long $(PY) -m pytest -q -p no:cacheprovider -s --timeout 3600 tests/stress
	$(PY) -m pytest -q -p no:cacheprovider -n 2 --dist loadfile -m long --ignore tests/stress

lint: setup-test
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests

format: setup-test
	$(VENV)/bin/ruff format src tests
	$(VENV)/bin/ruff check --fix src tests

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache .mcpsim/npm-cache $(JS_LAKE)/node_modules tests/node/node_modules \
		$(EP_VENV)

include tests/interop/interop.mk
