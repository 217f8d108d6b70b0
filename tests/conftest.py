"""Shared fixtures: real `mcpsim serve` processes (with the leak check at teardown); helpers live in `helpers/`."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

WORKER_PORT_SPAN = 4000
"""Ports each pytest-xdist worker owns above MCPSIM_TEST_PORT_BASE (the tests' fixed offsets stay below 2,000, the
conformance runner's below 4,000), so two workers never bind the same fixed port. Set before `helpers` is imported,
and in the environment, so that subprocesses (the conformance runner) see the worker's own base too."""

_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if _worker.startswith("gw") and _worker[2:].isdigit():
    _base = int(os.environ.get("MCPSIM_TEST_PORT_BASE", "23000"))
    os.environ["MCPSIM_TEST_PORT_BASE"] = str(_base + WORKER_PORT_SPAN * int(_worker[2:]))

from helpers.serve import ServeProcess, start_serve, survivors  # noqa: E402


@pytest.fixture
def serve_factory(tmp_path: Path) -> Iterator:
    """Start `mcpsim serve` processes; at teardown stop them and assert nothing they started survives."""
    started: list[ServeProcess] = []

    def factory(*args: str, **kwargs) -> ServeProcess:
        serve = start_serve(tmp_path, *args, **kwargs)
        started.append(serve)
        return serve

    yield factory
    for serve in started:
        serve.stop()
        left = survivors(serve.seen_descendants)
        assert not left, f"processes left behind by mcpsim serve: {left}\n{serve.log()[-3000:]}"


@pytest.fixture(scope="module")
def frozen_lake_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """One shared FrozenLake `mcpsim serve` (stdio backend, fork server for quick starts) for the many tests that
    need nothing special; plain spawns are covered by the toolbox tests and the transports matrix."""
    serve = start_serve(tmp_path_factory.mktemp("serve"), "--env", "frozen_lake", "--fork-server")
    yield serve
    serve.stop()
    left = survivors(serve.seen_descendants)
    assert not left, f"processes left behind: {left}"
