# Third-party clients the interop tests drive (tests/interop/), each in its own venv since each pins its own
# `mcp` range: eval-protocol 0.3.33 (mcp 1.x). Included by the Makefile; `make test` builds it first.
# Keep the pin in step with EP_VERSION in tests/interop/test_eval_protocol.py.
EP_VERSION := 0.3.33
EP_VENV := tests/interop/.venv-ep
EP_STAMP := $(EP_VENV)/.installed-$(EP_VERSION)

$(EP_STAMP): | $(UV)
	rm -rf $(EP_VENV)
	$(PYTHON) -m venv $(EP_VENV)
	$(UV_INSTALL) --python $(EP_VENV)/bin/python 'eval-protocol==$(EP_VERSION)'
	touch $@

interop-clients: $(EP_STAMP)

.PHONY: interop-clients
