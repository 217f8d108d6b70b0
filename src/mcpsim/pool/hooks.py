"""What an instance tells its pool (`InstanceHooks`), and the pool's side of it (`PoolHooks`).

An instance knows its pool only through this narrow view: its process group started or ended (the watchdog
must know, to end it if `mcpsim serve` is killed), it ended (its port and slot are free again), an error worth
showing in `/health`. `PoolHooks` is that view's implementation, kept apart from the pool's starting and
ending of instances (`pool.py`), which it shares state with: the pool inherits it.
"""

import time
from collections import Counter, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mcpsim.pool.instance import Instance
    from mcpsim.pool.observer import PoolObserver
    from mcpsim.pool.warm import WarmPool
    from mcpsim.proc.child import ChildProcess
    from mcpsim.proc.ports import PortAllocator


class InstanceHooks(Protocol):
    """What the pool learns from an instance: its process group and id (for the watchdog) and its end."""

    def process_started(self, pgid: int, instance_id: str) -> None: ...

    def process_ended(self, pgid: int) -> None: ...

    def instance_ended(self, instance: "Instance") -> None: ...

    def record_error(self, entry: dict[str, Any]) -> None: ...

    def count_internal_error(self, where: str) -> None: ...

    def lists_changed(self, instance: "Instance", method: str) -> None:
        """Its server announced a change of its tools, prompts or resources list (`method`)."""
        ...


class PoolHooks:
    """`InstanceHooks` for `InstancePool`, which sets these attributes."""

    ports: "PortAllocator"
    instances: "dict[str, Instance]"
    warm: "WarmPool"
    observer: "PoolObserver | None"
    recent_errors: deque[dict[str, Any]]
    internal_errors: Counter[str]
    spawn_failures: list[dict[str, Any]]
    list_watchers: "list[Callable[[Instance, str], None]]"
    _watchdog: "ChildProcess | None"

    def _record_failure(self, instance: "Instance") -> None:
        self.spawn_failures.append({"time": time.time(), "seed": instance.seed, "error": instance.failure})
        del self.spawn_failures[:-20]
        self.record_error(
            {
                "event": "instance.start_failed",
                "message": instance.failure,
                "instance_id": instance.id,
                "session_id": instance.session_id,
                "seed": instance.seed,
                "owner": instance.owner,
            }
        )

    def process_started(self, pgid: int, instance_id: str) -> None:
        self._tell_watchdog(f"+{pgid} {instance_id}\n")

    def process_ended(self, pgid: int) -> None:
        self._tell_watchdog(f"-{pgid}\n")

    def instance_ended(self, instance: "Instance") -> None:
        self.ports.release(instance.port)
        self.instances.pop(instance.id, None)
        self.warm.forget(instance)
        self.warm.wake()
        if self.observer is not None:
            self.observer.instance_ended(instance)

    def record_error(self, entry: dict[str, Any]) -> None:
        self.recent_errors.append({"time": time.time(), **entry})

    def lists_changed(self, instance: "Instance", method: str) -> None:
        """Told to every watcher (the modern front's listing cache refreshes)."""
        for watcher in self.list_watchers:
            watcher(instance, method)

    def count_internal_error(self, where: str) -> None:
        """An unexpected error (a bug) ended one session or request; counted for `/metrics`, already logged."""
        self.internal_errors[where] += 1
        self.record_error({"event": "internal_error", "message": f"unexpected error in a {where}; see the log"})

    def _tell_watchdog(self, line: str) -> None:
        if self._watchdog is not None and self._watchdog.stdin is not None and not self._watchdog.stdin.is_closing():
            self._watchdog.stdin.write(line.encode())
