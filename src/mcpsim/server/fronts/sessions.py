"""`/mcp`: MCP over streamable HTTP where every session is its own instance.

Shaped like the SDK's `StreamableHTTPSessionManager`, but a new session is admitted only once its instance is
ready: the opening `initialize` is read first, the instance is started with the seed and config of the query
string (or of the `initialize`'s `clientInfo`, see `params.py`), and only then is an SDK
`StreamableHTTPServerTransport` created and given the request. So a request
that cannot be served (bad seed, no capacity, a server that fails to start) gets an HTTP error status and a
JSON-RPC error naming the cause, and never a session that hangs.

The session's task bridges the transport's streams to the instance. Whichever ends first ends the other:
`DELETE /mcp` or a dropped session stops the instance; an instance that ends (idle timeout, API delete,
shutdown) terminates the transport, so its session id answers 404 afterwards. A session id is bound to the
principal that opened the session: from another principal (but the admin) it answers 404 like an unknown one.
"""

import contextlib
import logging
import uuid
from dataclasses import dataclass

import anyio
from anyio.abc import TaskStatus
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER, StreamableHTTPServerTransport
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from mcpsim.errors import (
    BadRequest,
    MCPSimError,
    MethodNotServed,
    NotFound,
    PoolError,
    ShuttingDown,
    UnsupportedMediaType,
)
from mcpsim.pool import Instance, InstancePool
from mcpsim.server.edge import note_request_id, respond_error
from mcpsim.server.fronts.bodies import parse_json, read_body, replaying
from mcpsim.server.fronts.fastpost import SessionChannel, fast_request, serve_fast
from mcpsim.server.fronts.modern import ModernFront, modern_header
from mcpsim.server.fronts.params import query_values, start_params
from mcpsim.server.fronts.session_tasks import SessionTasks
from mcpsim.server.fronts.starts import start_for_request
from mcpsim.server.fronts.translate import is_modern
from mcpsim.server.principals import principal_of
from mcpsim.server.proxy import serve_client
from mcpsim.wire import MAX_VERSION_LENGTH

logger = logging.getLogger(__name__)


@dataclass
class Session:
    id: str
    transport: StreamableHTTPServerTransport
    instance: Instance
    client_key: str | None = None
    """The client's own key for its episode (`clientInfo.session_id`), if it sent one: see `control.py`."""
    channel: SessionChannel | None = None
    """The session's channel to its instance, once the session's task runs (`fastpost.py` uses it)."""


class SessionFront:
    """ASGI app for `/mcp`; serves while `running()` (the app's lifespan) is entered, which owns the task group
    every session's task runs in: leaving it ends every session, and so every session's instance."""

    def __init__(self, pool: InstancePool, json_response: bool = False, modern: ModernFront | None = None) -> None:
        self.pool = pool
        self.json_response = json_response
        self.modern = modern
        """Where 2026-07-28 requests go (`fronts/modern.py`); None: `/mcp` serves the handshake era only."""
        self.sessions: dict[str, Session] = {}
        self.client_keys: dict[str, str] = {}
        """Client key (`clientInfo.session_id`) -> session id; the newest session wins a key two sessions share."""
        self.tasks = SessionTasks()
        self.created = 0
        self.ended = 0
        self.fast_requests = 0
        """Requests answered by `fastpost.py` instead of the SDK transport (a metric)."""

    def running(self) -> contextlib.AbstractAsyncContextManager[None]:
        return self.tasks.running()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        session_id = request.headers.get(MCP_SESSION_ID_HEADER)
        try:
            if self.modern is not None and request.method == "POST" and modern_header(request) is not None:
                body = await read_body(receive, self.pool.config.max_message_bytes, scope)
                await self.modern.serve(scope, receive, send, parse_json(body))
            elif session_id is not None:
                await self._existing(session_id, scope, receive, send)
            elif request.method == "POST":
                await self._open(request, scope, receive, send)
            else:
                raise BadRequest(f"Bad Request: {request.method} /mcp needs an {MCP_SESSION_ID_HEADER} header")
        except MCPSimError as exc:
            await respond_error(exc, scope, receive, send)

    async def _existing(self, session_id: str, scope: Scope, receive: Receive, send: Send) -> None:
        session = self.sessions.get(session_id)
        if session is None or not principal_of(scope).may_use(session.instance):
            raise NotFound(f"Session not found: {session_id[:64]!r} ended or never existed")
        version = Request(scope).headers.get(MCP_PROTOCOL_VERSION_HEADER)
        if version is not None and version not in HANDSHAKE_PROTOCOL_VERSIONS:
            raise BadRequest(
                f"Unsupported {MCP_PROTOCOL_VERSION_HEADER} {version[:40]!r} for a session; "
                f"supported: {', '.join(HANDSHAKE_PROTOCOL_VERSIONS)}",
            )
        if scope["method"] == "POST":  # bounded here: the SDK transport would read any body whole
            body = await read_body(receive, self.pool.config.max_message_bytes, scope)
            if session.channel is not None and not session.transport.is_terminated:
                request = Request(scope, receive)
                msg = fast_request(request, body, self.json_response)
                if msg is not None and await serve_fast(
                    request, msg, session.instance, session.channel, session.id, self.json_response, send
                ):
                    self.fast_requests += 1
                    return
            receive = replaying(body, receive)
        await session.transport.handle_request(scope, receive, send)
        if session.transport.is_terminated:
            self._discard(session)

    def find(self, key: str) -> Session | None:
        """The live session under an `mcp-session-id` value: mcpsim's session id, or a client's own key."""
        session = self.sessions.get(key)
        if session is None and key in self.client_keys:
            session = self.sessions.get(self.client_keys[key])
        return session

    async def _open(self, request: Request, scope: Scope, receive: Receive, send: Send) -> None:
        query = query_values(scope.get("query_string", b""))
        start_params(query)  # a bad query string is refused before the body is read
        if not request.headers.get("content-type", "").startswith("application/json"):
            raise UnsupportedMediaType("Unsupported Media Type: Content-Type must be application/json")
        body = await read_body(receive, self.pool.config.max_message_bytes, scope)
        message = parse_json(body)
        request_id = message.get("id") if isinstance(message, dict) else None
        note_request_id(scope, request_id)  # an error answer from here on carries the request's id
        method = message.get("method") if isinstance(message, dict) else None
        if self.modern is not None and is_modern(None, message):  # the envelope without a version header
            await self.modern.serve(scope, receive, send, message)
            return
        if method != "initialize":
            if method == "server/discover":
                raise MethodNotServed(
                    "server/discover without the 2026-07-28 envelope: send it with the MCP-Protocol-Version header "
                    "and params._meta (the stateless path), or open a handshake-era session with initialize"
                )
            raise BadRequest("Bad Request: no session yet; the first request must be initialize")
        session_id = uuid.uuid4().hex
        params = message.get("params") if isinstance(message.get("params"), dict) else {}
        wanted = start_params(query, params)
        seed = wanted.seed
        version = params.get("protocolVersion")
        version = version if isinstance(version, str) and len(version) <= MAX_VERSION_LENGTH else None
        try:
            instance = await start_for_request(
                self.pool,
                receive,
                seed,
                wanted.config,
                session_id=session_id,
                protocol_version=version,
                owner=principal_of(scope).name,
                client_info=wanted.client_info,
            )
        except PoolError as exc:
            logger.warning(
                "session refused: %s",
                exc,
                extra={"event": "session.refused", "session_id": session_id, "request_id": request_id, "seed": seed},
            )
            raise
        if instance is None:
            logger.info(
                "session abandoned: the client left while its instance was starting",
                extra={"event": "session.abandoned", "session_id": session_id, "request_id": request_id},
            )
            return
        transport = StreamableHTTPServerTransport(session_id, is_json_response_enabled=self.json_response)
        session = Session(session_id, transport, instance, wanted.client_key)
        self.sessions[session_id] = session
        if wanted.client_key is not None:
            self.client_keys[wanted.client_key] = session_id
        self.created += 1
        instance.log.info("session opened", extra={"event": "session.opened", "request_id": request_id})
        try:
            await self.tasks.start(self._run, session)
        except ShuttingDown:  # the server began stopping while the instance started
            instance.stop()
            raise
        await transport.handle_request(scope, replaying(body, receive), send)

    async def _run(self, session: Session, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """The session's life: bridge until the client or the instance ends, then end the other.

        This task runs in the app's task group beside every other session, so nothing may escape it: an
        unexpected error ends this session alone, logged with its traceback and counted.
        """
        try:
            async with session.transport.connect() as (read_stream, write_stream):
                name, back_channel = f"session {session.id}", not self.json_response
                session.channel = SessionChannel(write_stream, name, accepts_server_requests=back_channel)
                task_status.started()
                try:
                    await serve_client(session.instance, read_stream, write_stream, name=name, channel=session.channel)
                finally:
                    session.channel.close_claims()
        except Exception:
            session.instance.log.exception("session failed unexpectedly", extra={"event": "session.failed"})
            self.pool.count_internal_error("session")
        finally:
            with anyio.CancelScope(shield=True):
                session.instance.stop()
                if not session.transport.is_terminated:
                    await session.transport.terminate()
                self._discard(session)

    def _discard(self, session: Session) -> None:
        if self.sessions.pop(session.id, None) is not None:
            if session.client_key is not None and self.client_keys.get(session.client_key) == session.id:
                del self.client_keys[session.client_key]
            self.ended += 1
            session.instance.log.info("session ended", extra={"event": "session.ended"})
            session.instance.stop()
