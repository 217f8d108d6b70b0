"""The instance pool: starts, lists and ends instances, and guarantees none outlives the pool.

Limits are checked when an instance is asked for, so a request over `--max-instances` or with no free port is
refused at once with the cause, and nothing already running is disturbed. Instances end when asked (a session
ended), when idle for `idle_timeout`, or when the pool closes; the pool's task group owns every instance task,
so leaving the pool's context waits for all of them, and the watchdog ends their process groups (and control
groups) even if this process is killed outright. Descendants that left their process group are tracked too
(`tracking.py`).
"""

import contextlib
import logging
import sys
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from types import TracebackType
from typing import Any, Self

import anyio
import httpx2
from anyio.abc import TaskGroup
from mcp_types.version import LATEST_HANDSHAKE_VERSION

from mcpsim.errors import CapacityError, InstanceGone, ShuttingDown, StartError
from mcpsim.isolation import Prepared
from mcpsim.pool import branching
from mcpsim.pool.config import PoolConfig
from mcpsim.pool.connection import shared_http_client
from mcpsim.pool.eras import MODERN
from mcpsim.pool.hooks import PoolHooks
from mcpsim.pool.instance import Instance
from mcpsim.pool.labels import DeclaredTools
from mcpsim.pool.observer import PoolObserver
from mcpsim.pool.preparation import Preparation
from mcpsim.pool.spec import InstanceSpec, State
from mcpsim.pool.warm import WarmPool
from mcpsim.pool.workdir import InstanceDirs
from mcpsim.proc.child import ChildProcess
from mcpsim.proc.fork_client import ForkServer
from mcpsim.proc.ports import PortAllocator
from mcpsim.proc.sandbox import Sandbox, open_sandbox
from mcpsim.proc.spawn import Spawner, inherited_environment, raise_fd_limit
from mcpsim.proc.tracking import ProcessTracker
from mcpsim.wire import random_seed

logger = logging.getLogger(__name__)


class InstancePool(PoolHooks):
    """Use as `async with InstancePool(config) as pool:`; leaving the block ends every instance and helper."""

    def __init__(self, config: PoolConfig, observer: PoolObserver | None = None) -> None:
        self.config = config
        self.observer = observer
        """Told of instance starts, failures and ends and environment builds (the metrics)."""
        self.ports = PortAllocator(*config.port_range)
        self.instances: dict[str, Instance] = {}
        self.started_at = time.time()
        self.spawn_failures: list[dict[str, Any]] = []
        self.recent_errors: deque[dict[str, Any]] = deque(maxlen=50)
        """Failed starts, unexpected exits and failed requests, newest last, with their correlation ids."""
        self.internal_errors: Counter[str] = Counter()
        """Unexpected errors that ended one session or request, by where they happened (session, request, ...)."""
        self._task_group: TaskGroup | None = None
        self._watchdog: ChildProcess | None = None
        self._closing = False
        self._exit_stack: contextlib.AsyncExitStack | None = None
        self.http_client: httpx2.AsyncClient | None = None
        self.warm = WarmPool(self, config.warm, config.max_instances)
        self.tools = DeclaredTools()
        self.list_watchers: list[Callable[[Instance, str], None]] = []
        """Told when an instance's server announces a list change (`notifications/*/list_changed`)."""
        """Tool names the servers declared, learned from `tools/list` results: the only tool labels of metrics."""
        self._admitting = 0
        """Instances admitted under `--max-instances` whose start waits for the environment or fork server."""
        self.spawner = Spawner()
        """Starts every child of the pool (instances, the watchdog, the fork template, installers)."""
        self.tracker = ProcessTracker(self.spawner, config.process_tracking)
        self.dirs = InstanceDirs(config.instance_root, keep_home=config.keep_home)
        """Every instance's private directory, under one root the pool removes at its end."""
        self.sandbox: Sandbox | None = None
        """`--sandbox standard|strict`: probed at the pool's start (`mcpsim.proc.sandbox`)."""
        self.preparation = Preparation(config, self.spawner, observer)
        """The command made runnable (environments, fork server): `prepared`, `prepare_error`, `forker`."""

    # -- lifecycle --------------------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._exit_stack = contextlib.AsyncExitStack()
        return await self._exit_stack.enter_async_context(self._running())

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        assert self._exit_stack is not None
        return await self._exit_stack.__aexit__(exc_type, exc, tb)

    @contextlib.asynccontextmanager
    async def _running(self) -> AsyncIterator[Self]:
        """The pool's life. What it starts is closed in reverse order on every path, each step shielded from
        cancellation: instances first (their tasks are in the task group), then the fork server, the HTTP
        client, the tracker (what escaped), the watchdog, and last the spawner's thread."""
        raise_fd_limit()
        async with contextlib.AsyncExitStack() as stack:
            stack.callback(self.spawner.close)
            await anyio.to_thread.run_sync(self.dirs.open)
            stack.push_async_callback(_shielded, anyio.to_thread.run_sync, self.dirs.close)  # after every instance
            self._watchdog = await self.spawner.spawn(
                [sys.executable, "-m", "mcpsim.proc.watchdog"],
                inherited_environment({}),
                lambda line: logger.warning("watchdog: %s", line),
                stdout_is_protocol=False,
                die_with_parent=False,
            )
            stack.push_async_callback(_shielded, self._watchdog.stop, eof_grace=2.0)
            stack.push_async_callback(_shielded, self.tracker.close)
            await self.tracker.start()
            if self.config.sandbox.enabled:  # SandboxUnavailable here: never run instances without it
                root = str(self.dirs.root) if self.dirs.root is not None else None
                self.sandbox = self.preparation.sandbox = await open_sandbox(self.config.sandbox, stack, root)
            if self.tracker.root is not None:
                self._tell_watchdog(f"cgroup {self.tracker.root.path}\n")
            if self.dirs.root is not None:
                self._tell_watchdog(f"root {self.dirs.root}\n")
            self.http_client = await stack.enter_async_context(shared_http_client())
            stack.push_async_callback(_shielded, self.preparation.close)
            async with anyio.create_task_group() as tg:
                self._task_group = tg
                tg.start_soon(self._prepare_in_background)
                tg.start_soon(self._reap_idle)
                tg.start_soon(self.tracker.run)
                tg.start_soon(self.warm.run)
                self.warm.wake()
                try:
                    yield self
                finally:
                    await _shielded(self.close)
                    tg.cancel_scope.cancel()

    @property
    def prepared(self) -> Prepared | None:
        return self.preparation.prepared

    @property
    def prepare_error(self) -> StartError | None:
        return self.preparation.error

    @property
    def forker(self) -> ForkServer | None:
        return self.preparation.forker

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
        self,
        seed: int | None = None,
        config: dict[str, Any] | None = None,
        session_id: str | None = None,
        protocol_version: str | None = None,
        owner: str | None = None,
        client_info: dict[str, Any] | None = None,
        claim_warm: bool = True,
    ) -> Instance:
        """A ready instance for `seed`/`config`: a warm one if announced, else a new one (raises `PoolError`).

        `protocol_version` is the one the session's client asked for in its `initialize`: a new instance is
        initialized with it, so the server negotiates with that client as it would alone. Warm instances are opened
        for the latest handshake version or for 2026-07-28 (the era their announcement named), and only clients
        of that version claim them.
        `owner` is the principal asking (see `mcpsim.server.principals`), recorded on the instance.
        `client_info` (the client's `clientInfo`, when it carries hints) is what a new instance's server is
        initialized with instead of mcpsim's own, so such a session never claims a warm instance.
        `claim_warm=False`: a start that ends its instance at once (a listing probe) leaves the spares to episodes.
        """
        if self._closing or self._task_group is None:
            raise ShuttingDown("the server is shutting down")
        config = dict(config or {})
        version = protocol_version or LATEST_HANDSHAKE_VERSION
        # spares serve both eras (warm.py): a seedless 2026 start (a handle-less request without ?seed=, a listing
        # probe) claims one too
        claimable = claim_warm and client_info is None and version in (LATEST_HANDSHAKE_VERSION, MODERN)
        warm = await self.warm.claim(seed, config, version) if claimable else None
        if warm is not None:
            warm.claim(session_id, owner)
            return warm
        instance = await self.launch(
            random_seed() if seed is None else seed,
            config,
            session_id,
            version=version,
            owner=owner,
            client_info=client_info,
        )
        try:
            await instance.ready.wait()
        except BaseException:  # the caller went away while we waited: nobody will use this instance
            instance.stop()
            raise
        self.check_ready(instance)
        return instance

    async def launch(
        self,
        seed: int,
        config: dict[str, Any],
        session_id: str | None,
        warm: bool = False,
        version: str = LATEST_HANDSHAKE_VERSION,
        owner: str | None = None,
        client_info: dict[str, Any] | None = None,
    ) -> Instance:
        """Start an instance's task and return at once (it is `starting`); callers wait on `ready`.

        The slot under `--max-instances` is taken before anything is awaited (preparing environments or the fork
        server can take seconds), so concurrent requests can never admit more instances than the limit. A session
        at the limit ends the oldest unclaimed warm instance to make room; a warm start never does.
        """
        if self._closing or self._task_group is None:
            raise ShuttingDown("the server is shutting down")
        if self.live_count >= self.config.max_instances and (warm or not self.warm.evict_one()):
            live = self.live_count
            raise CapacityError(f"--max-instances reached: {live} of {self.config.max_instances} instances are running")
        self._admitting += 1
        try:
            prepared = await self.preparation.ready(self._task_group)
            command = self.preparation.command(prepared)
            port = self.ports.lease() if command.uses_port else None
        finally:
            self._admitting -= 1
        spec = InstanceSpec(
            command=command,
            seed=seed,
            config=config,
            python=prepared.python,
            startup_timeout=self.config.startup_timeout,
            port=port,
            env={**self.config.env, **prepared.env},
            mux_observer=self.observer.mux_observer if self.observer else None,
            request_timeout=self.config.request_timeout,
            http_client=self.http_client,
            launch=self.preparation.launch,
            max_message_bytes=self.config.max_message_bytes,
            protocol_version=version,
            client_info=client_info,
            tools=self.tools,
            dirs=self.dirs,
            views=prepared.views if self.sandbox is None else {},  # the sandbox mounts shared caches read-only
            tracker=self.tracker,
            sandbox=self.sandbox,
        )
        instance = Instance(spec, self, session_id=session_id, warm=warm)
        instance.owner = owner
        self.instances[instance.id] = instance
        await self._task_group.start(instance.run)
        return instance

    def check_room(self, count: int) -> None:
        """Raise `CapacityError` unless `count` more instances fit under `--max-instances`."""
        if self._closing or self._task_group is None:
            raise ShuttingDown("the server is shutting down")
        if self.live_count + count > self.config.max_instances:
            live, limit = self.live_count, self.config.max_instances
            raise CapacityError(f"--max-instances reached: {live} of {limit} instances are running, {count} more asked")

    @contextlib.contextmanager
    def reserved(self, count: int) -> Iterator[None]:
        """Hold `count` slots under `--max-instances` for instances being made (a live fork's copies)."""
        self.check_room(count)
        self._admitting += count
        try:
            yield
        finally:
            self._admitting -= count

    async def add(self, instance: Instance) -> None:
        """Run an instance made elsewhere (a copy, `branching.py`) in the pool's task group."""
        assert self._task_group is not None
        self.instances[instance.id] = instance
        await self._task_group.start(instance.run)

    async def run_task(self, func: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run a task of the pool's own (ended with the pool) until it reports started, e.g. a branch's moves
        into control groups."""
        assert self._task_group is not None
        await self._task_group.start(func, *args)

    async def branch(self, instance_id: str, count: int, method: str = "auto") -> list[Instance]:
        """`count` ready copies of a live instance (`branching.py`)."""
        return await branching.branch(self, self.get(instance_id), count, method)

    async def start_warm(self, seed: int, config: dict[str, Any], version: str = LATEST_HANDSHAKE_VERSION) -> Instance:
        """`WarmHooks`: an unclaimed instance, started in the background; nobody waits on it, so the pool records
        its start failure or readiness when it comes."""
        instance = await self.launch(seed, config, None, warm=True, version=version)
        self._watch_start(instance)
        return instance

    def _watch_start(self, instance: Instance) -> None:
        assert self._task_group is not None

        async def watch() -> None:
            await instance.ready.wait()
            if self._closing:
                return
            try:
                self.check_ready(instance)
            except StartError as exc:
                instance.log.warning("warm instance failed to start: %s", exc, extra={"event": "warm.failed"})

        self._task_group.start_soon(watch)

    def check_ready(self, instance: Instance) -> None:
        """After `ready` is set: raise the instance's start failure, or tell the observer it is ready."""
        if instance.state != State.READY:
            self._record_failure(instance)
            if self.observer is not None:
                self.observer.instance_failed(instance)
            raise StartError(instance.failure or f"instance {instance.id} did not start")
        if self.observer is not None:
            self.observer.instance_ready(instance)

    async def _prepare_in_background(self) -> None:
        """Build environments as soon as the pool starts, not when the first session arrives."""
        assert self._task_group is not None
        with contextlib.suppress(StartError):
            await self.preparation.ready(self._task_group)

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
    def closing(self) -> bool:
        return self._closing

    @property
    def live_count(self) -> int:
        """Instances whose process may run, and admitted ones still waiting for their environment."""
        return self._admitting + sum(1 for instance in self.instances.values() if instance.alive)

    def counts(self) -> dict[str, int]:
        return dict(Counter(str(instance.state) for instance in self.instances.values()))

    @property
    def service_pids(self) -> set[int]:
        """Child processes the pool runs besides instances (the watchdog, the fork template, environment builds),
        which an orphan check must not flag."""
        pids = set(self.spawner.helper_pids)
        if self._watchdog is not None:
            pids.add(self._watchdog.pid)
        if self.forker is not None and self.forker.template_pid is not None:
            pids.add(self.forker.template_pid)
        return pids

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


async def _shielded(function: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> None:
    """Await a cleanup step even while the pool's owner is being cancelled."""
    with anyio.CancelScope(shield=True):
        await function(*args, **kwargs)
