"""`SessionEnvServer`: one process that keeps one episode per MCP session, the manual alternative to `mcpsim serve`.

`python -m mcpsim.envs.session_server --env frozen_lake --port 8000`, then `/mcp?seed=42` as with the managed
server: same tools, same `_meta`, same seeds (an episode is `Episode(spec, seed, config)` exactly as in the
one-episode server), at the cost of a few hundred KB and no process start per session. Episodes share one
process, so a crash or a leak in one env touches every session: the managed server stays the recommended way.

How state is keyed by session (MCP SDK 2.3): the SDK's `StreamableHTTPSessionManager` gives a handler no public
way to reach its session's `Connection` (whose `state`/`exit_stack` are per session) nor an event when a session
ends. So this module is its own session front, built like the SDK's manager from its public pieces: one
`StreamableHTTPServerTransport` per session (with the SDK's idle timeout), driven by `serve_loop` in a task of
ours, against one shared server. The session's episode is built when its `initialize` arrives (seed and config
from the query string) and dropped in that task's `finally`, which every end runs through: `DELETE /mcp`, the
idle timeout, a failed opening request, shutdown. Handlers find their episode through a `ContextVar` set around
`transport.handle_request`: the SDK carries the sending request's context to the handler (the mechanism its own
auth context relies on), and the transport has already checked that the request belongs to the session.

MCP 2026-07-28 requests (a non-handshake `MCP-Protocol-Version`) have no session: their episodes are keyed by
handles (`session_handles.py`), served by the SDK's own stateless entry.
"""

import argparse
import contextlib
import importlib
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import anyio
import uvicorn
from anyio.abc import TaskGroup, TaskStatus
from mcp.server.runner import serve_loop
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER, StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from mcp.types import INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, ErrorData, JSONRPCError
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from mcpsim.envs.gym_server import Episode, GymEnvSpec, episode_server, read_config
from mcpsim.envs.session_handles import HandleEpisodes, replay, stamping
from mcpsim.errors import InvalidSeed
from mcpsim.wire import parse_seed, random_seed

logger = logging.getLogger(__name__)


def refusal(status: int, message: str, code: int = INVALID_REQUEST) -> Response:
    """A request answered with an HTTP error status and a JSON-RPC error naming the cause.

    This is a production server below mcpsim's own server layer (it may import only `mcpsim.wire` and
    `mcpsim.errors`), so, like any MCP server, it words its own HTTP answers; the managed server's are
    `mcpsim.server.edge`'s."""
    body = JSONRPCError(jsonrpc="2.0", id=None, error=ErrorData(code=code, message=message))
    return Response(body.model_dump_json(by_alias=True), status, media_type="application/json")


@dataclass
class EnvSession:
    id: str
    seed: int
    episode: Episode
    transport: StreamableHTTPServerTransport
    started_at: float = field(default_factory=time.time)

    def describe(self) -> dict[str, Any]:
        e = self.episode
        return {"session_id": self.id, "seed": self.seed, "step": e.step_count, "done": e.done,
                "started_at": self.started_at}  # fmt: skip


def load_spec(name: str) -> GymEnvSpec:
    """A shipped env by name (`frozen_lake`), or any module with a `SPEC` (`mypkg.my_env`)."""
    module = importlib.import_module(name if "." in name else f"mcpsim.envs.{name}")
    spec = getattr(module, "SPEC", None)
    if not isinstance(spec, GymEnvSpec):
        raise ValueError(f"module {module.__name__} has no GymEnvSpec named SPEC")
    return spec


class SessionEnvServer:
    """ASGI app for `/mcp` (and a Starlette app around it via `app()`); one `Episode` per MCP session."""

    def __init__(
        self,
        spec: GymEnvSpec | str,
        *,
        idle_timeout: float | None = 600.0,
        max_sessions: int = 1024,
        json_response: bool = False,
    ) -> None:
        if idle_timeout is not None and not (math.isfinite(idle_timeout) and idle_timeout > 0):
            raise ValueError("idle_timeout must be a positive number of seconds, or None")
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        self.spec = load_spec(spec) if isinstance(spec, str) else spec
        self.idle_timeout = idle_timeout
        self.max_sessions = max_sessions
        self.json_response = json_response
        self.sessions: dict[str, EnvSession] = {}
        self.opened = 0
        self.closed = 0
        self._current: ContextVar[str] = ContextVar(f"mcpsim_{self.spec.name}_session")
        self.mcp = episode_server(self.spec, self._episode)
        # The SDK's session drivers take the low-level server; MCPServer keeps it in this attribute.
        self._server = self.mcp._lowlevel_server
        self._task_group: TaskGroup | None = None
        self._lifespan_state: Any = None
        self.handles = HandleEpisodes(lambda seed, config: Episode(self.spec, seed, config), read_config)
        """The 2026-07-28 episodes, keyed by handle (`session_handles.py`)."""
        self._modern = StreamableHTTPSessionManager(self._server, json_response=True)

    def _episode(self) -> Episode:
        session_id = self._current.get(None)
        if session_id is None:
            raise RuntimeError("no session for this request (not served through SessionEnvServer)")
        session = self.sessions.get(session_id)
        episode = session.episode if session is not None else self.handles.get(session_id)
        if episode is None:
            raise RuntimeError(f"session or handle {session_id} has ended")
        return episode

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The sessions' task group (and the server's lifespan); every session ends when this exits."""
        async with (
            self._server.lifespan(self._server) as state,
            self._modern.run(),
            anyio.create_task_group() as tg,
        ):
            self._lifespan_state, self._task_group = state, tg
            tg.start_soon(self._reap_handles)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()
                self._task_group = None

    async def _reap_handles(self) -> None:
        interval = 1.0 if self.idle_timeout is None else max(0.05, min(1.0, self.idle_timeout / 4))
        while True:
            await anyio.sleep(interval)
            self.handles.reap(self.idle_timeout)

    async def _stateless(self, request: Request, scope: Scope, send: Send) -> None:
        """A 2026-07-28 request: routed to its handle's episode (minted if it has none and touches state)."""
        room = len(self.sessions) + len(self.handles.episodes) < self.max_sessions
        body, handle, refused = await self.handles.route(request, room)
        if refused is not None:
            await refused(scope, replay(body), send)
            return
        with self._serving(handle or ""):
            await self._modern.handle_request(scope, replay(body), stamping(send, handle) if handle else send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        session_id = request.headers.get(MCP_SESSION_ID_HEADER)
        version = request.headers.get(MCP_PROTOCOL_VERSION_HEADER)
        if (
            self._task_group is not None
            and request.method == "POST"
            and version not in (None, *HANDSHAKE_PROTOCOL_VERSIONS)
        ):
            await self._stateless(request, scope, send)
            return
        if self._task_group is None:
            refused = refusal(503, "the session server is not running (use app() or running())", INTERNAL_ERROR)
        elif session_id is not None:
            refused = await self._existing(session_id, scope, receive, send)
        elif request.method == "POST":
            refused = await self._open(request, scope, receive, send)
        else:
            refused = refusal(400, f"Bad Request: {request.method} /mcp needs an {MCP_SESSION_ID_HEADER} header")
        if refused is not None:
            await refused(scope, receive, send)

    async def _existing(self, session_id: str, scope: Scope, receive: Receive, send: Send) -> Response | None:
        """Serve a request of an open session; the refusal to send instead, if any."""
        session = self.sessions.get(session_id)
        if session is None:
            return refusal(404, f"Session not found: {session_id[:64]!r} ended or never existed")
        with self._serving(session.id):
            await session.transport.handle_request(scope, receive, send)
        if session.transport.is_terminated:
            self._discard(session)
        return None

    async def _open(self, request: Request, scope: Scope, receive: Receive, send: Send) -> Response | None:
        """Open a session with its `initialize`; the refusal to send instead, if any."""
        version = request.headers.get(MCP_PROTOCOL_VERSION_HEADER)
        if version is not None and version not in HANDSHAKE_PROTOCOL_VERSIONS:
            # e.g. the `server/discover` probe of a client in auto mode: an MCPError makes it fall back
            return refusal(
                400, "only session-based MCP is served here: open a session with initialize", METHOD_NOT_FOUND
            )
        if len(self.sessions) >= self.max_sessions:
            return refusal(503, f"too many open sessions ({self.max_sessions}); end one first", INTERNAL_ERROR)
        try:
            parsed = parse_seed(request.query_params.get("seed"))
        except InvalidSeed as exc:
            return refusal(400, str(exc), INVALID_PARAMS)
        seed = random_seed() if parsed is None else parsed
        try:
            config = read_config(request.query_params.get("config"))
        except ValueError as exc:
            return refusal(400, f"invalid config: {exc}", INVALID_PARAMS)
        try:
            episode = await anyio.to_thread.run_sync(Episode, self.spec, seed, config)
        except (ValueError, TypeError, KeyError) as exc:
            return refusal(400, f"invalid config for {self.spec.name}: {exc}", INVALID_PARAMS)
        transport = StreamableHTTPServerTransport(
            uuid.uuid4().hex, is_json_response_enabled=self.json_response, idle_timeout=self.idle_timeout
        )
        session = EnvSession(transport.mcp_session_id or "", seed, episode, transport)
        self.sessions[session.id] = session
        self.opened += 1
        established = False
        try:
            assert self._task_group is not None
            await self._task_group.start(self._run, session)
            with self._serving(session.id):
                status = await _answer_with_status(transport.handle_request, scope, receive, send)
            established = status is not None and status < 400
        finally:
            if not established:  # not an initialize, or it failed: no session was established
                self._discard(session)
                with anyio.CancelScope(shield=True):
                    await transport.terminate()
        return None

    @contextlib.contextmanager
    def _serving(self, session_id: str) -> Iterator[None]:
        """Mark the request as the session's (the id, not the episode: copies of this context may outlive it)."""
        token = self._current.set(session_id)
        try:
            yield
        finally:
            self._current.reset(token)

    async def _run(self, session: EnvSession, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """The session's life; its end (DELETE, idle timeout, shutdown) frees its episode."""
        transport = session.transport
        try:
            async with transport.connect() as (read_stream, write_stream):
                task_status.started()
                with transport.idle_scope or anyio.CancelScope():
                    await serve_loop(
                        self._server,
                        read_stream,
                        write_stream,
                        lifespan_state=self._lifespan_state,
                        session_id=session.id,
                    )
                if transport.idle_scope is not None and transport.idle_scope.cancelled_caught:
                    logger.info("session %s (seed %d) idle for %ss: ended", session.id, session.seed, self.idle_timeout)
        except Exception:
            logger.exception("session %s crashed", session.id)
        finally:
            with anyio.CancelScope(shield=True):
                if not transport.is_terminated:
                    await transport.terminate()
                self._discard(session)

    def _discard(self, session: EnvSession) -> None:
        if self.sessions.pop(session.id, None) is not None:
            self.closed += 1
            session.episode.close()

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "env": self.spec.name, "sessions": len(self.sessions), "opened": self.opened,
                "closed": self.closed, "max_sessions": self.max_sessions,
                "handles": len(self.handles.episodes)}  # fmt: skip

    def app(self) -> Starlette:
        """`/mcp`, `/health` and `/api/sessions` (the seed of every open session, random ones included)."""

        async def health(_: Request) -> JSONResponse:
            return JSONResponse(self.health())

        async def sessions(_: Request) -> JSONResponse:
            return JSONResponse([s.describe() for s in self.sessions.values()])

        async def end_episode(request: Request) -> JSONResponse:
            ended = self.handles.end(request.path_params["handle"])
            return JSONResponse({"ended": ended}, 200 if ended else 404)

        @contextlib.asynccontextmanager
        async def lifespan(_: Starlette) -> AsyncIterator[None]:
            async with self.running():
                yield

        routes = [
            Route("/mcp", self, methods=["GET", "POST", "DELETE"]),
            Route("/health", health),
            Route("/api/sessions", sessions),
            Route("/episodes/{handle}", end_episode, methods=["DELETE"]),
        ]
        return Starlette(routes=routes, lifespan=lifespan)

    def uvicorn_config(self, host: str = "127.0.0.1", port: int = 8000) -> uvicorn.Config:
        return uvicorn.Config(
            self.app(), host=host, port=port, log_config=None, access_log=False, timeout_graceful_shutdown=2
        )

    @contextlib.asynccontextmanager
    async def serving(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
        """Serve in a background task of the current event loop; yields the base URL (port 0: a free one)."""
        server = _QuietServer(self.uvicorn_config(host, port))
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve)
            while not server.started:
                if server.should_exit:
                    raise RuntimeError("the session server failed to start")
                await anyio.sleep(0.01)
            bound = server.servers[0].sockets[0].getsockname()[1]
            try:
                yield f"http://{host}:{bound}"
            finally:
                server.should_exit = True


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the program hosting it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _answer_with_status(app: Any, scope: Scope, receive: Receive, send: Send) -> int | None:
    status: int | None = None

    async def watch(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        await send(message)

    await app(scope, receive, watch)
    return status


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m mcpsim.envs.session_server", description="One process, one episode per MCP session."
    )
    parser.add_argument("--env", default="frozen_lake", help="frozen_lake, taxi, lunar_lander, or a module with SPEC")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--idle-timeout", type=float, default=600.0, help="seconds without requests before a session ends"
    )
    parser.add_argument("--max-sessions", type=int, default=1024)
    args = parser.parse_args(argv)
    try:
        server = SessionEnvServer(args.env, idle_timeout=args.idle_timeout, max_sessions=args.max_sessions)
    except (ImportError, ValueError) as exc:
        parser.error(str(exc))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logger.info("serving %s on http://%s:%d/mcp (one episode per session)", server.spec.name, args.host, args.port)
    uvicorn.Server(server.uvicorn_config(args.host, args.port)).run()


if __name__ == "__main__":
    main()
