"""Where the benchmark's servers listen: ports the kernel picks, or (`--port-base N`) a fixed layout from N.

By default every server the bench starts (its `mcpsim serve` fronts, standalone production servers, the gateway
it is compared with) listens on a port the kernel just found free, and `mcpsim serve` leases its backends' ports
from its default `--port-range`. On a machine shared with other work (tests with fixed ports, a firewall that
opens one range) that is a guess; `--port-base N` instead lays out every port the bench binds:

- N .. N+SERVER_PORTS-1: the servers it starts, taken in turn (a port still bound, a server of the last run
  closing, is skipped);
- N+SERVER_PORTS .. N+SERVER_PORTS+BACKEND_PORTS-1: `--port-range` of every `mcpsim serve` it starts;
- N+RAY_OFFSET .. N+RAY_OFFSET+LOCAL_PORTS-1: the local Ray cluster of `--mode ray-fork`.

In all N .. N+SPAN-1. One plan per process (the bench is one command), set by `use_port_base` before a run.
"""

import contextlib
import socket

from mcpsim.errors import ConfigError
from mcpsim.proc import free_port
from mcpsim.ray.config import LOCAL_PORTS

SERVER_PORTS = 100
BACKEND_PORTS = 1000
RAY_OFFSET = SERVER_PORTS + BACKEND_PORTS
SPAN = RAY_OFFSET + LOCAL_PORTS
"""Ports from `--port-base` the bench may bind."""


class PortPlan:
    """The bench's ports: `base` None means the kernel's choice (and `mcpsim serve`'s default range)."""

    def __init__(self, base: int | None = None) -> None:
        if base is not None and not 1024 <= base <= 65535 - SPAN + 1:
            raise ConfigError(f"--port-base must be between 1024 and {65535 - SPAN + 1} (it spans {SPAN} ports)")
        self.base = base
        self._next = 0

    def server_port(self) -> int:
        """A port for the next server to listen on."""
        if self.base is None:
            return free_port()
        for _ in range(SERVER_PORTS):
            port = self.base + self._next
            self._next = (self._next + 1) % SERVER_PORTS
            if _bindable(port):
                return port
        raise ConfigError(f"no port of --port-base {self.base}..{self.base + SERVER_PORTS - 1} can be bound now")

    def serve_flags(self) -> list[str]:
        """`mcpsim serve` flags that keep its backends' ports in the plan (none without a base)."""
        if self.base is None:
            return []
        low = self.base + SERVER_PORTS
        return ["--port-range", f"{low}-{low + BACKEND_PORTS - 1}"]

    def ray_port_base(self) -> int:
        """`LocalCluster`'s port base: 0 (Ray and the kernel choose) without a base."""
        return 0 if self.base is None else self.base + RAY_OFFSET


def _bindable(port: int) -> bool:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind: TIME_WAIT is no obstacle
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


_plan = PortPlan()


def use_port_base(base: int | None) -> None:
    """Lay out this process's bench ports from `base` (None: the kernel's choice)."""
    global _plan
    _plan = PortPlan(base)


def plan() -> PortPlan:
    return _plan
