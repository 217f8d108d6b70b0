"""RSS and CPU of every instance's process tree, and the orphan check, read from /proc off the event loop.

One pass reads the parent of every process once (`psutil.process_iter`), builds this server's process tree,
and attributes each process to the instance whose process it descends from (an `npx` wrapper and its `node`
count as one instance). A daemon that left its instance (double fork + `setsid`) is still under this server,
which is its subreaper (`pool/tracking.py`); it is attributed by its control group, else its
`MCPSIM_INSTANCE_ID`. Processes under this server that belong to no live instance and are not one of the
pool's own helpers (the watchdog) are *orphans*: something the pool lost track of. They are reported (a
gauge, a warning line with their pid and command line), not killed: the check cannot know what they are.

A pass costs time proportional to the processes on the machine, so it runs in a worker thread, at most once
per `max_age` seconds however many scrapes and dashboards ask (they share the cached result), and every
`orphan_interval` seconds in the background so orphans are found even when nobody is looking.
"""

import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import psutil

if TYPE_CHECKING:
    from mcpsim.pool import InstancePool

logger = logging.getLogger(__name__)

SERVICE = "<service>"


@dataclass
class Usage:
    cpu_percent: float = 0.0
    rss_bytes: int = 0
    processes: int = 0


@dataclass
class Sample:
    by_instance: dict[str, Usage]
    orphans: list[dict[str, Any]]
    cpu: dict[int, tuple[float, float]]


class ResourceSampler:
    def __init__(
        self, pool: "InstancePool", max_age: float = 1.0, orphan_grace: float = 5.0, orphan_interval: float = 30.0
    ) -> None:
        self.pool = pool
        self.max_age = max_age
        self.orphan_grace = orphan_grace
        """Processes younger than this are not orphans yet: an instance's pid is known only after its spawn."""
        self.orphan_interval = orphan_interval
        self.by_instance: dict[str, Usage] = {}
        self.orphans: list[dict[str, Any]] = []
        self.checks = 0
        self.last_pass_seconds = 0.0
        self._sampled_at = -float("inf")
        self._cpu: dict[int, tuple[float, float]] = {}
        self._reported: set[int] = set()
        self._lock = anyio.Lock()

    def usage(self, instance_id: str) -> Usage:
        return self.by_instance.get(instance_id, Usage())

    async def refresh(self) -> None:
        """Sample unless a pass is younger than `max_age`; concurrent callers wait for the one pass running."""
        if time.monotonic() - self._sampled_at < self.max_age:
            return
        async with self._lock:
            if time.monotonic() - self._sampled_at < self.max_age:
                return
            roots = {
                instance.pid: instance.id
                for instance in list(self.pool.instances.values())
                if instance.pid is not None and instance.alive
            }
            started = time.perf_counter()
            sample = await anyio.to_thread.run_sync(
                self._sample, roots, self.pool.service_pids, dict(self._cpu), self.pool.tracker.owner_of
            )
            self.last_pass_seconds = time.perf_counter() - started
            self.by_instance, self.orphans, self._cpu = sample.by_instance, sample.orphans, sample.cpu
            self.checks += 1
            self._sampled_at = time.monotonic()
            self._report(sample.orphans)

    async def run(self) -> None:
        """Background orphan checks (a task of the app's lifespan)."""
        while True:
            await anyio.sleep(self.orphan_interval)
            await self.refresh()

    def _report(self, orphans: list[dict[str, Any]]) -> None:
        current = {orphan["pid"] for orphan in orphans}
        for orphan in orphans:
            if orphan["pid"] not in self._reported:
                logger.warning(
                    "orphan process %d (%s): under this server but owned by no live instance",
                    orphan["pid"],
                    orphan["cmdline"],
                    extra={"event": "orphan.found", "pid": orphan["pid"]},
                )
        self._reported = current

    # -- the pass itself, in a worker thread ----------------------------------------------------------------

    def _sample(
        self,
        roots: dict[int, str],
        services: set[int],
        previous: dict[int, tuple[float, float]],
        owner_of: Callable[[int], str | None],
    ) -> Sample:
        me = os.getpid()
        live = set(roots.values())
        processes: dict[int, psutil.Process] = {}
        children: dict[int, list[int]] = defaultdict(list)
        for proc in psutil.process_iter(["ppid"]):
            processes[proc.pid] = proc
            children[proc.info["ppid"]].append(proc.pid)
        owner: dict[int, str | None] = {}
        stack: list[tuple[int, str | None]] = [(pid, None) for pid in children[me]]
        while stack:
            pid, parent_owner = stack.pop()
            own = roots.get(pid, parent_owner)
            if own is None and pid in services:
                own = SERVICE
            elif own is None and (claimed := owner_of(pid)) in live:  # adopted: escaped from a live instance
                own = claimed
            owner[pid] = own
            stack.extend((child, own) for child in children[pid])
        by_instance: dict[str, Usage] = {}
        cpu: dict[int, tuple[float, float]] = {}
        orphans: list[dict[str, Any]] = []
        now = time.time()
        for pid, own in owner.items():
            proc = processes[pid]
            try:
                if own is None:
                    orphan = self._orphan(proc, now)
                    if orphan is not None:
                        orphans.append(orphan)
                    continue
                if own == SERVICE:
                    continue
                with proc.oneshot():
                    times = proc.cpu_times()
                    rss = proc.memory_info().rss
                    created = proc.create_time()
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                continue
            total = times.user + times.system + times.children_user + times.children_system
            before = previous.get(pid)
            if before is not None and now > before[1]:
                percent = max(0.0, total - before[0]) / (now - before[1]) * 100
            else:  # first sight: the average since the process started
                percent = total / max(now - created, 1e-3) * 100
            cpu[pid] = (total, now)
            usage = by_instance.setdefault(own, Usage())
            usage.cpu_percent += percent
            usage.rss_bytes += rss
            usage.processes += 1
        return Sample(by_instance, orphans, cpu)

    def _orphan(self, proc: psutil.Process, now: float) -> dict[str, Any] | None:
        with proc.oneshot():
            if proc.status() == psutil.STATUS_ZOMBIE or now - proc.create_time() < self.orphan_grace:
                return None
            return {
                "pid": proc.pid,
                "ppid": proc.ppid(),
                "cmdline": " ".join(proc.cmdline())[:300],
                "age_s": round(now - proc.create_time(), 1),
            }
