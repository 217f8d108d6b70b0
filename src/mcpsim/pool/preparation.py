"""Making the configured command runnable, once per pool: environments built, the fork server started.

Preparing can take minutes (a venv, `npm ci`) and happens in the background from the pool's start, so the server
answers `/health` meanwhile. Concurrent callers wait for one preparation. After a failure, callers get the same
error for `PREPARE_RETRY_S` (a broken requirements file is not retried per session), then one of them tries
again. `launch` starts an instance's process: forked from the template when there is a usable one, else (or
when forking fails) spawned.
"""

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import anyio
from anyio.abc import TaskGroup

from mcpsim.errors import StartError
from mcpsim.isolation import BuildObserver, Prepared, prepare
from mcpsim.pool.command import ServerCommand
from mcpsim.pool.config import PoolConfig
from mcpsim.proc.cgroups import Cgroup
from mcpsim.proc.child import ChildProcess
from mcpsim.proc.fork_client import ForkServer
from mcpsim.proc.sandbox import Sandbox, SandboxedStart
from mcpsim.proc.spawn import Spawner

logger = logging.getLogger(__name__)

PREPARE_RETRY_S = 60.0


class Preparation:
    def __init__(self, config: PoolConfig, spawner: Spawner, observer: BuildObserver | None) -> None:
        self.config = config
        self.sandbox: Sandbox | None = None
        """Set by the pool once its sandbox passed its probe: the fork template then runs inside one."""
        self.spawner = spawner
        self.observer = observer
        self.prepared: Prepared | None = None
        self.error: StartError | None = None
        self.forker: ForkServer | None = None
        self.fork_fallbacks = 0
        """Instances spawned although `--fork-server` was asked for (not Python, template unusable or gone)."""
        self.fork_error: str | None = None
        """The last fork request the template refused (that instance was spawned instead)."""
        self.fork_skipped: str | None = None
        """Why `--fork-server` is not used at all with this sandbox (reported as a fallback in /health)."""
        self._failed_at = 0.0
        self._lock = anyio.Lock()

    async def ready(self, task_group: TaskGroup) -> Prepared:
        """The prepared command, preparing it on first use (the fork server's reader runs in `task_group`)."""
        if self.prepared is not None:
            return self.prepared
        async with self._lock:
            if self.prepared is not None:
                return self.prepared
            if self.error is not None and time.monotonic() - self._failed_at < PREPARE_RETRY_S:
                raise self.error
            command = self.config.command
            try:
                prepared = await prepare(
                    command.argv, command.cwd, self.config.isolation, self.config.python, self.spawner, self.observer
                )
            except StartError as exc:
                self.error, self._failed_at = exc, time.monotonic()
                raise
            if self.config.fork_server and self.sandbox is not None and not self.sandbox.as_root:
                self.fork_skipped = "a sandboxed template needs root"
            if self.fork_skipped is not None:
                logger.warning("fork server not used: %s; instances are spawned", self.fork_skipped)
            elif self.config.fork_server:
                self.forker = ForkServer(
                    prepared.argv,
                    prepared.python,
                    self.spawner,
                    cwd=prepared.cwd,
                    label=command.label,
                    preload=self.config.fork_preload,
                    sandbox=self.sandbox,
                    isolating=self.sandbox is not None and command.transport != "stdio",
                )
                await self.forker.start(task_group)
            self.prepared, self.error = prepared, None
            return prepared

    def command(self, prepared: Prepared) -> ServerCommand:
        """The configured command with what preparing it changed (an installed Node project's copy; in a
        sandbox, an npx package's installed bin, as npx itself would need the registry)."""
        argv = prepared.offline_argv if self.config.sandbox.enabled and prepared.offline_argv else prepared.argv
        return dataclasses.replace(self.config.command, argv=argv, cwd=prepared.cwd)

    async def launch(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        log: Callable[[str], None],
        *,
        cwd: str | None,
        stdout_is_protocol: bool,
        line_limit: int,
        cgroup: Cgroup | None = None,
        sandbox: SandboxedStart | None = None,
    ) -> ChildProcess:
        """Fork from the template when there is a usable one, else (or if forking fails) spawn (a `Launcher`)."""
        if self.forker is not None and self.forker.usable:
            try:
                return await self.forker.spawn(argv, env, log, cwd, stdout_is_protocol, line_limit, cgroup, sandbox)
            except OSError as exc:
                self.fork_error = str(exc)
                logger.warning("fork server failed (%s); spawning instead", exc, extra={"event": "forkserver.fallback"})
        if self.config.fork_server:
            self.fork_fallbacks += 1
        return await self.spawner.spawn(
            argv,
            env,
            log,
            cwd=cwd,
            stdout_is_protocol=stdout_is_protocol,
            line_limit=line_limit,
            cgroup=cgroup,
            sandbox=sandbox,
        )

    def fork_status(self) -> dict[str, Any]:
        """`/health`'s `fork_server`: whether it was asked for and is in use, and if not why instances spawn, so a
        silent fallback (a 20x slower start) shows where operators look, not only in the log."""
        forker = self.forker
        if not self.config.fork_server:
            state, reason = "off", None
        elif self.fork_skipped is not None:
            state, reason = "fallback", self.fork_skipped
        elif forker is None or not (forker.usable or forker.reason):
            state, reason = "preparing", None  # environments being built, or the template preloading
        elif forker.usable:
            state, reason = "active", None
        else:
            state, reason = "fallback", forker.reason
        return {
            "enabled": self.config.fork_server,
            "active": state == "active",
            "state": state,
            "fallback_reason": reason,
            "spawned_instead": self.fork_fallbacks,
            "last_fork_error": self.fork_error,
            "cgroup_placement": forker.placement if forker is not None else None,
        }

    async def close(self) -> None:
        if self.forker is not None:
            await self.forker.close()
