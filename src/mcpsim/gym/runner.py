"""The event loop behind the Gymnasium views: one background thread, one MCP session per env, run concurrently.

Gymnasium's API is synchronous, mcpsim's client is async. A `Runner` owns an anyio blocking portal (an event
loop in a thread it starts) and, in it, one worker task per env that owns that env's session: opening a
session (`reset`) and calling its tool (`step`) are commands sent to the worker, so a session's context is
entered and left in one task, as anyio requires, and the envs of a vector step run at once. `close()` ends
every session (the managed server ends their instances), then the loop and its thread.

`announce(seeds)` tells a managed server the seeds of episodes to come (as a rollout does), so their instances
start while the current episodes play; a server without the endpoint answers once and announcing stops.
"""

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.from_thread
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from mcpsim.client.announce import api_url
from mcpsim.client.env import Environment, EnvSession, StepResult, shared_http_client
from mcpsim.client.urls import check_url
from mcpsim.errors import ConfigError, EnvError
from mcpsim.trajectory import Action, Observation, Row

MAX_ENVS = 1024
"""Sessions one runner holds open at once (each is an instance on the server and a stream here)."""


@dataclass
class Opened:
    """What a reset returns: the initial observation and the tools of the fresh session."""

    seed: int
    observation: Observation
    tools: list[dict[str, Any]]


@dataclass
class _Command:
    kind: str
    argument: Any = None
    done: anyio.Event = field(default_factory=anyio.Event)
    result: Any = None
    error: BaseException | None = None


class _Worker:
    """Owns one env's session; runs the commands sent to it, one at a time, in its own task."""

    def __init__(self, index: int, url: str, timeout: float, initial_resource: str | None) -> None:
        self.index = index
        self.url = url
        self.timeout = timeout
        self.initial_resource = initial_resource
        self.send: MemoryObjectSendStream[_Command]
        self.receive: MemoryObjectReceiveStream[_Command]
        self.send, self.receive = anyio.create_memory_object_stream(1)
        self.session: EnvSession | None = None
        self.opened: Opened | None = None
        self.steps = 0

    async def run(self, http_client: Any) -> None:
        self.stack = contextlib.AsyncExitStack()
        try:
            async with self.receive:
                async for command in self.receive:
                    if command.kind == "close":
                        await self._close_session()
                        command.done.set()
                        break
                    try:
                        if command.kind == "reset":
                            command.result = await self._reset(http_client, command.argument)
                        else:
                            command.result = await self._step(command.argument)
                    except Exception as exc:
                        command.error = exc
                    command.done.set()
        finally:
            with anyio.CancelScope(shield=True):
                await self._close_session()

    async def _close_session(self) -> None:
        self.session, self.opened = None, None
        stack, self.stack = self.stack, contextlib.AsyncExitStack()
        await stack.aclose()

    async def _reset(self, http_client: Any, seed: int) -> Opened:
        if self.opened is not None and self.steps == 0 and self.opened.seed == seed:
            return self.opened  # still fresh: the same as a new instance
        await self._close_session()
        env = Environment(self.url, Row(f"env{self.index}", seed), self.initial_resource, self.timeout, "mcpsim-gym")
        session = await self.stack.enter_async_context(env.connect(http_client))
        self.session, self.steps = session, 0
        self.opened = Opened(seed, session.initial_observation, session.tools)
        return self.opened

    async def _step(self, action: Action) -> StepResult:
        if self.session is None:
            raise EnvError(f"env {self.index}: step before reset (call reset() first)")
        self.steps += 1
        return await self.session.step(action, self.steps)


class Runner:
    """`num_envs` sessions against `url`, driven from synchronous code (see the module doc)."""

    def __init__(self, url: str, num_envs: int, *, timeout: float = 120.0, initial_resource: str | None = None) -> None:
        check_url(url)
        if not 1 <= num_envs <= MAX_ENVS:
            raise ConfigError(f"num_envs must be between 1 and {MAX_ENVS}, got {num_envs}")
        self.num_envs = num_envs
        self._workers = [_Worker(i, url, timeout, initial_resource) for i in range(num_envs)]
        self._portal_cm = anyio.from_thread.start_blocking_portal()
        self._portal = self._portal_cm.__enter__()
        self._served = None
        self._http: Any = None
        self._announce_to = api_url(url)
        try:
            self._served, _ = self._portal.start_task(self._serve)
        except BaseException:
            self._portal_cm.__exit__(None, None, None)
            raise
        self.closed = False

    async def _serve(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        async with shared_http_client(self.num_envs) as http_client, anyio.create_task_group() as tg:
            self._http = http_client
            for worker in self._workers:
                tg.start_soon(worker.run, http_client)
            task_status.started()

    async def _announce(self, seeds: list[int]) -> None:
        if self._announce_to is None or not seeds:
            return
        try:
            response = await self._http.post(self._announce_to, json={"seeds": seeds, "config": {}}, timeout=10.0)
            ok = response.status_code == 202
        except Exception:
            ok = False
        if not ok:
            self._announce_to = None  # not a managed server (or it refuses): stop asking

    async def _send(self, commands: Sequence[tuple[int, _Command]], announce: Sequence[int] = ()) -> list[Any]:
        async def one(index: int, command: _Command) -> None:
            await self._workers[index].send.send(command)
            await command.done.wait()

        async with anyio.create_task_group() as tg:
            tg.start_soon(self._announce, list(announce))
            for index, command in commands:
                tg.start_soon(one, index, command)
        for index, command in commands:
            if command.error is not None:
                command.error.add_note(f"(in env {index} of {self.num_envs})")
                raise command.error
        return [command.result for _, command in commands]

    def _call(self, kinds: Sequence[tuple[int, str, Any]], announce: Sequence[int] = ()) -> list[Any]:
        if self.closed:
            raise ConfigError("the environment is closed")
        return self._portal.call(self._send, [(i, _Command(kind, argument)) for i, kind, argument in kinds], announce)

    def act(
        self, resets: dict[int, int], actions: dict[int, Action], announce: Sequence[int] = ()
    ) -> tuple[dict[int, Opened], dict[int, StepResult]]:
        """At once: a fresh session for each env index -> seed in `resets` (the old one is closed), a tool call
        for each env index -> action in `actions`, and an announcement of the seeds `announce`."""
        kinds = [(i, "reset", seed) for i, seed in resets.items()] + [(i, "step", a) for i, a in actions.items()]
        results = self._call(kinds, announce)
        return dict(zip(resets, results, strict=False)), dict(zip(actions, results[len(resets) :], strict=True))

    def reset(self, seeds: dict[int, int], announce: Sequence[int] = ()) -> dict[int, Opened]:
        return self.act(seeds, {}, announce)[0]

    def step(self, actions: dict[int, Action]) -> dict[int, StepResult]:
        return self.act({}, actions)[1]

    def close(self) -> None:
        """End every session, then the loop and its thread (idempotent)."""
        if self.closed:
            return
        self.closed = True
        try:
            self._portal.call(self._send, [(i, _Command("close")) for i in range(self.num_envs)])
            if self._served is not None:
                self._served.result(timeout=60)
        finally:
            self._portal_cm.__exit__(None, None, None)
