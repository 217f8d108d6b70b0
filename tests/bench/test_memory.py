"""The bench's memory column weighs an instance's whole process tree, not only the pid `/api/instances` gives
(under `--sandbox` that pid is bwrap's, a few MB; the server, its init and its relay are below it)."""

import contextlib
import subprocess
import sys
import time

import psutil
import pytest

from mcpsim.bench import measure
from mcpsim.bench.settings import ModeResult

HOLD = (
    "b = bytearray(48 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\n"
    "print('ready', flush=True)\nimport time\ntime.sleep(60)"
)


class _Target:
    def __init__(self, pid: int) -> None:
        self.pid = pid

    async def instance_pids(self) -> list[int]:
        return [self.pid]


@pytest.fixture
def wrapper():
    """A small parent (like bwrap) whose child holds 48 MB."""
    process = subprocess.Popen(
        ["sh", "-c", f'"{sys.executable}" -c "$0"; true', HOLD], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    try:
        yield process
    finally:
        for child in psutil.Process(process.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                child.kill()
        process.kill()
        process.wait(10)
        time.sleep(0.05)


async def test_memory_is_measured_over_each_instance_process_tree(wrapper, monkeypatch):
    monkeypatch.setattr(measure, "holding_sessions", lambda target, settings: contextlib.nullcontext())
    result = ModeResult(mode="managed-strict")
    await measure.measure_memory(result, _Target(wrapper.pid), settings=None)  # type: ignore[arg-type]
    assert result.uss_mb is not None and result.uss_mb > 40, result
    assert result.rss_mb is not None and result.rss_mb > 40, result
    only_root = measure.memory_mb([wrapper.pid])
    assert only_root[1] is not None and only_root[1] < 10  # what the column showed for a sandboxed instance
