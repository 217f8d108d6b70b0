"""What the interop tests share: the third-party client venvs (built by `make interop-clients`) and the
eval-protocol-style FrozenLake server behind `mcpsim serve`."""

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from helpers.serve import SERVERS, TESTS

EP_VERSION = "0.3.33"  # keep in step with EP_VERSION in tests/interop/interop.mk
EP_VENV = TESTS / "interop" / ".venv-ep"
EP_PYTHON = EP_VENV / "bin" / "python"
EP_DRIVER = TESTS / "interop" / "ep_rollout.py"
EP_SERVER = SERVERS / "ep_frozen_lake.py"


def ep_python() -> Path:
    """The eval-protocol venv's interpreter; a clear failure when `make test` has not built it."""
    if not (EP_VENV / f".installed-{EP_VERSION}").is_file():
        pytest.fail(f"{EP_VENV} is missing: run `make interop-clients` (make test does) to install eval-protocol")
    return EP_PYTHON


def ep_server_command() -> str:
    """`--server` for the eval-protocol-style FrozenLake (an HTTP backend, run by eval-protocol's SDK)."""
    return f"{ep_python()} {EP_SERVER} --port {{port}} --seed {{seed}}"


def lake_module() -> ModuleType:
    """`ep_frozen_lake` imported by path (standard library only at import), to know the map a seed gives."""
    spec = importlib.util.spec_from_file_location("ep_frozen_lake", EP_SERVER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
