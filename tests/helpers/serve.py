"""Real `mcpsim serve` processes on free ports, fixed port ranges per test, and the leak check."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from helpers.http import HTTP
from mcpsim.proc import free_port

TESTS = Path(__file__).resolve().parent.parent
REPO = TESTS.parent
SERVERS = TESTS / "servers"
ARTIFACTS = REPO / "test-artifacts"
PORT_BASE = int(os.environ.get("MCPSIM_TEST_PORT_BASE", "12000"))
"""Fixed port ranges of the tests start here; give parallel test runs on one machine different bases."""


def ports(offset: int, count: int = 1) -> tuple[int, int]:
    """A port range reserved for one test: PORT_BASE + offset, `count` ports long."""
    return PORT_BASE + offset, PORT_BASE + offset + count - 1


def port_range(offset: int, count: int = 1) -> str:
    low, high = ports(offset, count)
    return f"{low}-{high}"


@dataclass
class ServeProcess:
    """A running `mcpsim serve`: its URL, its process, and what it started (for the leak check)."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    seen_descendants: dict[int, float] = field(default_factory=dict)

    @property
    def mcp(self) -> str:
        return f"{self.url}/mcp"

    def descendants(self) -> list[psutil.Process]:
        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                self.seen_descendants.setdefault(child.pid, child.create_time())
        return children

    def instance_processes(self) -> list[psutil.Process]:
        """Descendants other than the helpers (the watchdog and the fork template, both direct children; forked
        instances are the template's children and, forked without exec, carry its command line)."""
        helpers = {
            child
            for child in psutil.Process(self.process.pid).children()
            if any(name in " ".join(_cmdline(child)) for name in ("mcpsim.proc.watchdog", "fork_template"))
        }
        for helper in list(helpers):  # a sandboxed template runs under bwrap: the template is bwrap's child
            if _cmdline(helper)[:1] == ["bwrap"]:
                with contextlib.suppress(psutil.Error):
                    helpers.update(helper.children())
        pids = {helper.pid for helper in helpers}
        return [p for p in self.descendants() if p.pid not in pids]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str, **kwargs) -> httpx.Response:
        return HTTP.get(f"{self.url}{path}", timeout=30, **kwargs)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        self.descendants()
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
            raise


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return []


def survivors(pids_with_birth: dict[int, float], deadline_s: float = 5.0) -> list[int]:
    """Pids from the map that still run (same pid *and* same start time), after waiting up to `deadline_s`."""
    end = time.monotonic() + deadline_s
    while True:
        alive = []
        for pid, born in pids_with_birth.items():
            try:
                proc = psutil.Process(pid)
                if abs(proc.create_time() - born) < 0.01 and proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                pass
        if not alive or time.monotonic() > end:
            return alive
        time.sleep(0.05)


def start_serve(
    tmp_path: Path,
    *args: str,
    env: dict[str, str] | None = None,
    ready_timeout: float = 90,
    prefix: tuple[str, ...] = (),
) -> ServeProcess:
    """Start `mcpsim serve` and wait until /health answers. `ready_timeout` is generous on purpose: with two test
    workers on a busy 2-core machine a start can take tens of seconds; a start that hangs still fails. `prefix`:
    a wrapper that execs the rest (e.g. `setpriv` to another user), so the process is still `mcpsim serve`."""
    port = free_port()
    log_path = tmp_path / f"serve-{port}.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [*prefix, sys.executable, "-m", "mcpsim", "serve", "--port", str(port), *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    serve = ServeProcess(f"http://127.0.0.1:{port}", process, log_path)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mcpsim serve exited with {process.returncode}:\n{serve.log()}")
        try:
            if HTTP.get(f"{serve.url}/health", timeout=1).status_code == 200:
                return serve
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"mcpsim serve did not become healthy:\n{serve.log()}")


def server_script(name: str) -> str:
    return str(SERVERS / name)
