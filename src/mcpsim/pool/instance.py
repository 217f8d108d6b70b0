"""One instance of a production server: its process, its connection, its handshake and its end.

An instance lives as one task in the pool's task group, so everything it opened (process, pipes, HTTP client,
port lease, control group) is closed by the same task that opened it, on every path: a failed start, a crash,
an idle timeout, a session's end, or the server shutting down. Whatever its process started dies with it, even
what left its process group (see `tracking.py`): at the process's exit, and again at the instance's end.

Readiness is the MCP handshake: the pool sends `initialize` and the instance is ready when its server answers
(not after a sleep, not on a TCP connect). The result is kept and given to the client that attaches, so a
client's own `initialize` is answered at once, and an instance can be started before its client arrives.
How the server is opened, in which revision, is `handshake.py`.
"""

import json
import logging
import math
import secrets
import signal
import time
from typing import Any

import anyio
from anyio.abc import TaskStatus
from mcp.types import JSONRPCNotification

from mcpsim.errors import StartError
from mcpsim.pool.connection import ServerConnection, StdioConnection, open_http, wait_until_listening
from mcpsim.pool.exits import exit_reason, stderr_suffix
from mcpsim.pool.handshake import open_server
from mcpsim.pool.history import CallHistory
from mcpsim.pool.hooks import InstanceHooks
from mcpsim.pool.pump import pump
from mcpsim.pool.spec import ContextLog, InstanceSpec, State
from mcpsim.pool.stats import InstanceStats
from mcpsim.proc.cgroups import Cgroup
from mcpsim.proc.child import ChildProcess
from mcpsim.proc.sandbox import SandboxedStart
from mcpsim.proc.spawn import inherited_environment
from mcpsim.protocol.mux import Multiplexer
from mcpsim.wire import (
    CONFIG_VARIABLE,
    INSTANCE_VARIABLE,
    PORT_VARIABLE,
    SEED_VARIABLE,
)

logger = logging.getLogger(__name__)
LIST_CHANGED = frozenset(f"notifications/{kind}/list_changed" for kind in ("tools", "prompts", "resources"))


class Instance:
    def __init__(
        self, spec: InstanceSpec, hooks: InstanceHooks, session_id: str | None = None, warm: bool = False
    ) -> None:
        self.id = secrets.token_hex(16)  # 128 bits: the id is a bearer handle (SEP-2567)
        self.spec = spec
        self.seed = spec.seed
        self.config = spec.config
        self.transport = spec.command.transport
        self.port = spec.port
        self.warm = warm
        """Started ahead of its session (announced seed or `--warm`); cleared when a session claims it."""
        self.owner: str | None = None
        """The principal that started or claimed it (`mcpsim.server.principals`); None: only the admin sees it."""
        self.state = State.STARTING
        self.started_at = time.time()
        self.ready_at: float | None = None
        self.pid: int | None = None
        self.init_result: dict[str, Any] = {}
        self.era: str | None = None
        """The revision its connection speaks once ready: 2026-07-28 (pool/eras.py) or the handshake's version."""
        self.discovered: dict[str, Any] | None = None
        self.failure: str | None = None
        self.exit_code: int | None = None
        self.process: ChildProcess | None = None
        self.directory: str | None = None  # its private `{instance_dir}`, removed at its end
        self.cgroup: Cgroup | None = None
        self.box: SandboxedStart | None = None
        """Its sandbox (`--sandbox`): work dir, limit groups; names the limit that ended it."""
        self.mux: Multiplexer | None = None
        self.ready = anyio.Event()
        self.ended = anyio.Event()
        self._stop = anyio.Event()
        self._scope = anyio.CancelScope()
        self._hooks = hooks
        self._hang_reason: str | None = None
        self._log_ids: dict[str, Any] = {"instance_id": self.id, "seed": self.seed}
        self.log = ContextLog(logger, self._log_ids)  # the same dict: a session id set later shows on every line
        self.stats = InstanceStats(spec.mux_observer, self.log, self._request_failed, spec.tools)
        self.session_id = session_id
        self.history = CallHistory()
        """Its answered `tools/call` requests, for replaying them on a copy (`branching.py`)."""
        self.parent: str | None = None
        self.branched_at_step: int | None = None
        self.branch_method: str | None = None
        """A copy's source instance, its step then, and "fork" or "replay" (`branching.py`)."""
        self.adopted: ChildProcess | None = None
        """A process made for it (a live fork's copy, already initialized): run instead of starting one."""
        self.gate: anyio.Event | None = None
        """Set while a branch holds the client's requests back; they wait for it (`proxy.forward`)."""

    @property
    def session_id(self) -> str | None:
        """The `/mcp` session this instance serves, if any; part of every log line about the instance."""
        return self._session_id

    @session_id.setter
    def session_id(self, value: str | None) -> None:
        self._session_id = value
        if value is None:
            self._log_ids.pop("session_id", None)
        else:
            self._log_ids["session_id"] = value

    def count_internal_error(self, where: str) -> None:
        """Something serving this instance failed unexpectedly (a bug, already logged): count it."""
        self._hooks.count_internal_error(where)

    def _request_failed(self, entry: dict[str, Any]) -> None:
        self._hooks.record_error({**entry, **self._ids()})

    def _ids(self) -> dict[str, Any]:
        return {"instance_id": self.id, "session_id": self.session_id, "seed": self.seed, "owner": self.owner}

    # -- what the outside sees --------------------------------------------------------------------------------

    @property
    def last_used_at(self) -> float:
        """Wall-clock time of the last message either way (the idle timeout counts from it)."""
        if self.mux is None:
            return self.started_at
        return time.time() - (time.monotonic() - self.mux.last_activity)

    def idle_for(self) -> float:
        if self.mux is None or self.mux.in_flight:
            return 0.0
        return time.monotonic() - self.mux.last_activity

    @property
    def alive(self) -> bool:
        """Whether a process of this instance may still exist (what `--max-instances` counts)."""
        return self.state in (State.STARTING, State.READY, State.STOPPING) and not self.ended.is_set()

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "session_id": self.session_id,
            "seed": self.seed,
            "pid": self.pid,
            "transport": self.transport,
            "port": self.port,
            "state": str(self.state),
            "started_at": self.started_at,
            "last_used_at": self.last_used_at,
            "exit_code": self.exit_code,
            "warm": self.warm,
            "error": self.failure,
            "parent": self.parent,
            "branched_at_step": self.branched_at_step,
            "branch_method": self.branch_method,
            "sandbox": self.spec.sandbox.describe() if self.spec.sandbox is not None else None,
            **self.stats.describe(),
        }

    def claim(self, session_id: str | None, owner: str | None = None) -> None:
        """A session (of principal `owner`) takes this (warm) instance over."""
        self.warm = False
        self.session_id = session_id
        self.owner = owner
        self.log.info("claimed by a session", extra={"event": "instance.claimed"})

    def output_log(self, line: str) -> None:
        self.log.info(line, extra={"event": "instance.output"})

    def stop(self) -> None:
        """Ask the instance to end; returns at once, `ended` is set when its process is gone."""
        self._stop.set()
        self._scope.cancel()

    # -- the instance's own task ------------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            with self._scope:
                await self._run()
            if self._scope.cancelled_caught and self.state == State.STARTING:
                self._fail(f"instance {self.id} was ended before it was ready")
        except StartError as exc:
            self._fail(str(exc))
        except Exception as exc:  # a bug or an unexpected transport failure must still end the instance cleanly
            self.log.exception("instance failed")
            self._fail(f"instance {self.id} failed: {exc!r}")
        finally:
            with anyio.CancelScope(shield=True):
                await self._cleanup()

    def _fail(self, reason: str) -> None:
        self.failure = self.failure or reason
        if self.state == State.STARTING:
            self.state = State.FAILED

    async def _run(self) -> None:
        spec = self.spec
        env = inherited_environment({**spec.env, SEED_VARIABLE: spec.seed, INSTANCE_VARIABLE: self.id})
        if spec.dirs is not None and self.adopted is None:  # StartError if it cannot be made; a copy has its source's
            self.directory, env = await anyio.to_thread.run_sync(spec.dirs.prepare, self.id, env, spec.views)
        argv = spec.command.expand(seed=spec.seed, port=spec.port, python=spec.python, instance_dir=self.directory)
        if spec.port is not None:
            env[PORT_VARIABLE] = str(spec.port)
        if spec.config:
            env[CONFIG_VARIABLE] = json.dumps(spec.config)
        if self.adopted is None:
            self.log.info("starting %s", argv[0], extra={"event": "instance.starting", "argv": argv})
        if spec.tracker is not None and self.adopted is None:
            self.cgroup = await spec.tracker.instance_group(self.id)  # StartError if it cannot be created
        if spec.sandbox is not None:  # StartError if it cannot be built
            relay_port = spec.port if spec.command.transport != "stdio" else None
            self.box = await spec.sandbox.open(
                self.id, argv, spec.command.cwd, env, spec.python, self.directory, relay_port
            )
        try:
            self.process = self.adopted or await spec.launch(
                argv,
                env,
                self.output_log,
                cwd=spec.command.cwd,
                stdout_is_protocol=spec.command.transport == "stdio",
                line_limit=spec.max_message_bytes,
                cgroup=self.cgroup,
                sandbox=self.box,
            )
        except FileNotFoundError:
            raise StartError(f"cannot start the server: command not found: {argv[0]!r}") from None
        except PermissionError:
            raise StartError(f"cannot start the server: permission denied for {argv[0]!r}") from None
        except OSError as exc:
            raise StartError(f"cannot start the server {argv[0]!r}: {exc}") from None
        self.pid = self.process.pid
        self._hooks.process_started(self.process.pgid, self.id)
        with anyio.move_on_after(spec.startup_timeout) as startup:
            if spec.command.transport == "stdio":
                await self._serve(StdioConnection(self.process, spec.max_message_bytes), startup)
                return
            assert spec.port is not None
            uds = self.box.socket_path if self.box is not None else None  # sandboxed: through its relay
            await wait_until_listening(self.process, spec.port, uds)
            if not self.process.running:
                raise StartError(self._exit_reason("before it was ready"))
            url, transport = spec.command.url(spec.port), spec.command.transport
            async with open_http(url, transport, spec.http_client, uds) as connection:
                await self._serve(connection, startup)
                return
        if startup.cancelled_caught:
            raise StartError(
                f"the server did not answer initialize within {spec.startup_timeout:g} s" + stderr_suffix(self.process)
            )

    async def _serve(self, connection: ServerConnection, startup: anyio.CancelScope) -> None:
        assert self.process is not None
        mux = Multiplexer(
            connection.send,
            name=f"instance {self.id}",
            request_timeout=self.spec.request_timeout,
            observer=self.stats,
            on_timeout=self._hung,
            on_broken=lambda detail: self._connection_lost(mux, detail),
            on_call=self.history.record,
            on_notification=self._notified,
        )
        self.mux = mux
        async with anyio.create_task_group() as tg:
            tg.start_soon(pump, connection, mux, self.log, self.id, lambda detail: self._connection_lost(mux, detail))
            tg.start_soon(self._watch_exit, mux)
            tg.start_soon(mux.run_deadlines)
            refusal = None if self.adopted is not None else await self._handshake(mux)
            if refusal is None:
                startup.deadline = math.inf
                self.state = State.READY
                self.ready_at = time.time()
                self.ready.set()
                self.log.info(
                    "ready in %.0f ms", (self.ready_at - self.started_at) * 1000, extra={"event": "instance.ready"}
                )
                await anyio.sleep_forever()  # until stop() cancels the instance's scope
            tg.cancel_scope.cancel()
        raise StartError(refusal)

    def _notified(self, msg: JSONRPCNotification) -> None:
        if msg.method in LIST_CHANGED:
            self._hooks.lists_changed(self, msg.method)

    async def _handshake(self, mux: Multiplexer) -> str | None:
        """Open the server as its client would (`handshake.py`); returns why it failed, or None when ready."""
        opened = await open_server(mux, self.spec, self.transport, self.log)
        if opened.refusal is None:
            self.init_result, self.era, self.discovered = opened.init_result, opened.era, opened.discovered
        return opened.refusal

    def _hung(self, reason: str) -> None:
        """A request ran out of time: the server is presumed hung, so its process group is killed. The usual
        exit path then answers this session's later requests with the reason."""
        self._hang_reason = f"{reason}; the instance was presumed hung and ended"
        self.log.warning(self._hang_reason, extra={"event": "instance.hung"})
        if self.process is not None:
            self.process.signal_group(signal.SIGKILL)

    async def _watch_exit(self, mux: Multiplexer) -> None:
        assert self.process is not None
        await self.process.exited.wait()
        await self._connection_lost(mux, None)  # waiting clients get the reason first
        await self._end_descendants()

    async def _end_descendants(self) -> None:
        """Kill what the (exited or killed) process left running: daemons that left its process group."""
        if self.spec.tracker is not None:
            await self.spec.tracker.moves_settled()  # a live-fork copy may be moving out of this group, or into its
        if self.spec.tracker is not None and (self.process is not None or self.cgroup is not None):
            pgid = self.process.pgid if self.process is not None else None
            await self.spec.tracker.end_instance(self.id, pgid, self.cgroup)

    async def _connection_lost(self, mux: Multiplexer, detail: str | None) -> None:
        assert self.process is not None
        if self._stop.is_set():
            return
        # stdout closes a moment before the exit status is known; wait briefly so the error can name the code.
        with anyio.move_on_after(0.5):
            await self.process.exited.wait()
        when = "" if self.state == State.READY else "before it was ready"
        exited = self._exit_reason(when) if not self.process.running else None
        reason = self._hang_reason or exited or detail or self._exit_reason(when)
        if mux.closed_reason is None:
            self.log.warning(reason, extra={"event": "instance.exited"})
            if self.state == State.READY:  # a failed start is recorded by the pool as such
                self._hooks.record_error({"event": "instance.exited", "message": reason, **self._ids()})
        self.exit_code = self.process.returncode
        self.failure = self.failure or reason
        await mux.close(reason)
        if self.state == State.READY:
            self.state = State.EXITED  # stays listed, answering with the reason, until its session ends
        elif self.state == State.STARTING:
            self._stop.set()

    def _exit_reason(self, when: str) -> str:
        assert self.process is not None
        return exit_reason(f"instance {self.id} (seed {self.seed})", self.process, when, self.box)

    async def _cleanup(self) -> None:
        if self.state == State.READY:
            self.state = State.STOPPING
        elif self.state == State.STARTING:
            self.state = State.FAILED
        if self.mux is not None and self.mux.closed_reason is None:
            await self.mux.close(f"instance {self.id} has ended")
        if self.process is not None:
            self.exit_code = await self.process.stop()
        await self._end_descendants()
        if self.process is not None:
            self._hooks.process_ended(self.process.pgid)
        if self.cgroup is not None and self.spec.tracker is not None:
            await self.spec.tracker.remove_group(self.cgroup)
        if self.directory is not None and self.spec.dirs is not None:  # no process can write to it any more
            await anyio.to_thread.run_sync(self.spec.dirs.remove, self.directory)
        if self.box is not None:
            await anyio.to_thread.run_sync(self.box.close)
        if self.state != State.FAILED:
            self.state = State.EXITED
        self.ready.set()
        self.ended.set()
        self.log.info(
            "ended (exit code %s)%s",
            self.exit_code,
            f": {self.failure}" if self.failure else "",
            extra={"event": "instance.ended"},
        )
        self._hooks.instance_ended(self)
