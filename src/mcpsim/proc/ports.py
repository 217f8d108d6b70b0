"""Leases of TCP ports from `--port-range` for HTTP backends.

A port is handed out only while no other lease holds it - leases live in one table touched only from the
event loop, so two instances can never get the same port - and only if it can be bound right now, which skips
ports other programs hold. Every lease is returned through `release`, which the instance calls on every exit
path; the lease table is what `/health` reports as ports in use.
"""

import contextlib
import errno
import socket

from mcpsim.errors import ConfigError, PortsExhausted


def parse_port_range(text: str) -> tuple[int, int]:
    """'10000-11000' -> (10000, 11000), validated."""
    try:
        low_text, high_text = text.split("-", 1)
        low, high = int(low_text), int(high_text)
    except ValueError:
        raise ConfigError(f"port range must look like 10000-11000, got {text!r}") from None
    if not 1 <= low <= high <= 65535:
        raise ConfigError(f"port range {text!r} must satisfy 1 <= low <= high <= 65535")
    return low, high


class PortAllocator:
    def __init__(self, low: int, high: int, host: str = "127.0.0.1") -> None:
        self.low, self.high, self.host = low, high, host
        self.leased: set[int] = set()
        self._next = low

    @property
    def size(self) -> int:
        return self.high - self.low + 1

    def lease(self) -> int:
        """A free port, round-robin so a just-released port (maybe in TIME_WAIT) is the last to be reused."""
        taken_elsewhere = 0
        for _ in range(self.size):
            port = self._next
            self._next = self.low if port >= self.high else port + 1
            if port in self.leased:
                continue
            if not self._bindable(port):
                taken_elsewhere += 1
                continue
            self.leased.add(port)
            return port
        raise PortsExhausted(
            f"no free port in {self.low}-{self.high}: {len(self.leased)} leased to instances, "
            f"{taken_elsewhere} held by other programs"
        )

    def release(self, port: int | None) -> None:
        if port is not None:
            self.leased.discard(port)

    def _bindable(self, port: int) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((self.host, port))
            except OSError as exc:
                if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                    return False
                raise
        return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS considers free now (for tests and the demo; not for instances, which use leases)."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
