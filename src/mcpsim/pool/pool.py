"""The instance pool: starts, lists and ends instances, and guarantees none outlives the pool.

Limits are checked when an instance is asked for, so a request over `--max-instances` or with no free port is
refused at once with the cause, and nothing already running is disturbed. Instances end when asked (a session
ended), when idle for `idle_timeout`, or when the pool closes; the pool's task group owns every instance task,
so leaving the pool's context waits for all of them, and the watchdog ends their process groups even if this
process is killed outright.
"""

import logging
import secrets
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol, Self

import anyio
from anyio.abc import TaskGroup

from mcpsim.pool.command import ServerCommand
from mcpsim.pool.errors import CapacityError, InstanceGone, ShuttingDown, StartError
from mcpsim.pool.instance import Instance, InstanceSpec, State
from mcpsim.pool.ports import PortAllocator
from mcpsim.pool.process import ChildProcess, inherited_environment, spawn
from mcpsim.protocol.mux import MuxObserver

logger = logging.getLogger("mcpsim.pool")

MAX_SEED = 2**63 - 1


@dataclass
class PoolConfig:
    command: ServerCommand
    python: str = sys.executable
    max_instances: int = 256
    idle_timeout: float = 600.0
    startup_timeout: float = 60.0
    port_range: tuple[int, int] = (10000, 11000)
    env: dict[str, str] = field(default_factory=dict)


class PoolObserver(Protocol):
    """Where metrics learn of instance starts, failures and ends (called on the event loop)."""

    mux_observer: MuxObserver | None

    def instance_ready(self, instance: Instance) -> None: ...

    def instance_failed(self, instance: Instance) -> None: ...

    def instance_ended(self, instance: Instance) -> None: ...


def random_seed() -> int:
    return secrets.randbelow(2**31)


class InstancePool:
    def __init__(self, config: PoolConfig) -> None:
        self.config = config
        self.ports = PortAllocator(*config.port_range)
        self.instances: dict[str, Instance] = {}
        self.started_at = time.time()
        self.spawn_failures: list[dict[str, Any]] = []
        self.recent_errors: deque[dict[str, Any]] = deque(maxlen=50)
        """Failed starts, unexpected exits and failed requests, newest last, with their correlation ids."""
        self._task_group: TaskGroup | None = None
        self._watchdog: ChildProcess | None = None
        self._closing = False
        self.observer: PoolObserver | None = None

    # -- lifecycle --------------------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._watchdog = await spawn(
            [sys.executable, "-m", "mcpsim.pool.watchdog"],
            inherited_environment({}),
            lambda line: logger.warning("watchdog: %s", line),
            stdout_is_protocol=False,
            die_with_parent=False,
        )
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self._task_group.start_soon(self._reap_idle)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        assert self._task_group is not None
        with anyio.CancelScope(shield=True):
            await self.close()
        self._task_group.cancel_scope.cancel()
        result = await self._task_group.__aexit__(exc_type, exc, tb)
        if self._watchdog is not None:
            await self._watchdog.stop(eof_grace=2.0)
        return result

    async def close(self) -> None:
        """End every instance and wait until their processes are gone."""
        self._closing = True
        instances = list(self.instances.values())
        for instance in instances:
            instance.stop()
        with anyio.move_on_after(15):
            for instance in instances:
                await instance.ended.wait()

    # -- instances --------------------------------------------------------------------------------------------

    async def start(
        self, seed: int | None = None, config: dict[str, Any] | None = None, session_id: str | None = None
    ) -> Instance:
        """Start an instance and wait until it is ready; raises a `PoolError` naming the cause otherwise."""
        if self._closing or self._task_group is None:
            raise ShuttingDown("the server is shutting down")
        live = self.live_count
        if live >= self.config.max_instances:
            raise CapacityError(f"--max-instances reached: {live} of {self.config.max_instances} instances are running")
        seed = random_seed() if seed is None else seed
        port = self.ports.lease() if self.config.command.uses_port else None
        spec = InstanceSpec(
            command=self.config.command,
            seed=seed,
            config=dict(config or {}),
            python=self.config.python,
            startup_timeout=self.config.startup_timeout,
            port=port,
            env=self.config.env,
            mux_observer=self.observer.mux_observer if self.observer else None,
        )
        instance = Instance(spec, self)
        instance.session_id = session_id
        self.instances[instance.id] = instance
        await self._task_group.start(instance.run)
        try:
            await instance.ready.wait()
        except BaseException:  # the caller went away while we waited: nobody will use this instance
            instance.stop()
            raise
        if instance.state != State.READY:
            self._record_failure(instance)
            if self.observer is not None:
                self.observer.instance_failed(instance)
            raise StartError(instance.failure or f"instance {instance.id} did not start")
        if self.observer is not None:
            self.observer.instance_ready(instance)
        return instance

    def get(self, instance_id: str) -> Instance:
        instance = self.instances.get(instance_id)
        if instance is None:
            raise InstanceGone(f"no instance {instance_id!r}: it ended or never existed")
        return instance

    async def end(self, instance_id: str, wait: bool = True) -> Instance:
        instance = self.get(instance_id)
        instance.stop()
        if wait:
            await instance.ended.wait()
        return instance

    @property
    def live_count(self) -> int:
        return sum(1 for instance in self.instances.values() if instance.alive)

    def counts(self) -> dict[str, int]:
        return dict(Counter(str(instance.state) for instance in self.instances.values()))

    @property
    def service_pids(self) -> set[int]:
        """Child processes the pool runs besides instances (the watchdog), which an orphan check must not flag."""
        return {self._watchdog.pid} if self._watchdog is not None else set()

    def _record_failure(self, instance: Instance) -> None:
        self.spawn_failures.append({"time": time.time(), "seed": instance.seed, "error": instance.failure})
        del self.spawn_failures[:-20]
        self.record_error(
            {
                "event": "instance.start_failed",
                "message": instance.failure,
                "instance_id": instance.id,
                "session_id": instance.session_id,
                "seed": instance.seed,
            }
        )

    async def _reap_idle(self) -> None:
        interval = max(0.05, min(1.0, self.config.idle_timeout / 4))
        while True:
            await anyio.sleep(interval)
            for instance in list(self.instances.values()):
                if instance.state in (State.READY, State.EXITED) and instance.idle_for() > self.config.idle_timeout:
                    instance.log.info(
                        "idle for %.0f s, ending it", instance.idle_for(), extra={"event": "instance.idle_timeout"}
                    )
                    instance.stop()

    # -- InstanceHooks ----------------------------------------------------------------------------------------

    def process_started(self, pgid: int) -> None:
        self._tell_watchdog(f"+{pgid}\n")

    def process_ended(self, pgid: int) -> None:
        self._tell_watchdog(f"-{pgid}\n")

    def instance_ended(self, instance: Instance) -> None:
        self.ports.release(instance.port)
        self.instances.pop(instance.id, None)
        if self.observer is not None:
            self.observer.instance_ended(instance)

    def record_error(self, entry: dict[str, Any]) -> None:
        self.recent_errors.append({"time": time.time(), **entry})

    def _tell_watchdog(self, line: str) -> None:
        if self._watchdog is not None and self._watchdog.stdin is not None and not self._watchdog.stdin.is_closing():
            self._watchdog.stdin.write(line.encode())
