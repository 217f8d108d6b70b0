"""What a managed server holds, to compare before and after load: processes, descriptors, memory, ports."""

import time
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class Holdings:
    instances: int
    helpers: int
    fds: int
    rss_mb: float
    listening_in_range: int


def holdings(pid: int, port_range: tuple[int, int] | None = None) -> Holdings:
    proc = psutil.Process(pid)
    children = proc.children(recursive=True)
    # the watchdog and the fork template are direct children; forked instances are the template's children
    # (and, forked without exec, carry its command line), so only direct children can be helpers
    helpers = [c for c in proc.children() if any(h in " ".join(_cmdline(c)) for h in ("watchdog", "fork_template"))]
    listening = 0
    if port_range is not None:
        low, high = port_range
        listening = sum(
            1
            for conn in psutil.net_connections("tcp")
            if conn.status == psutil.CONN_LISTEN and low <= conn.laddr.port <= high
        )
    return Holdings(
        instances=len(children) - len(helpers),
        helpers=len(helpers),
        fds=proc.num_fds(),
        rss_mb=proc.memory_info().rss / 2**20,
        listening_in_range=listening,
    )


def settle(pid: int, port_range: tuple[int, int] | None = None, timeout: float = 15) -> Holdings:
    """Holdings once every instance has ended (waits for the last ones to stop)."""
    deadline = time.monotonic() + timeout
    while True:
        now = holdings(pid, port_range)
        if (now.instances == 0 and now.listening_in_range == 0) or time.monotonic() > deadline:
            return now
        time.sleep(0.1)


def _cmdline(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return []
