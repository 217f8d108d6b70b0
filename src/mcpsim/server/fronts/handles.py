"""`/envs/{instance_id}/mcp`: an explicit handle to one instance, for clients with or without sessions.

Each HTTP request is served like the SDK's stateless streamable HTTP mode: a transport with no session id is
created for the request, bridged to the instance for as long as the request lasts, then terminated. Requests
from several clients may share the instance at once; the instance's multiplexer keeps their ids apart.
`initialize` is answered from the instance's handshake, so a client may (but need not) send it.

A handshake-era POST whose client accepts `text/event-stream` is answered as an SSE stream (else in JSON): what
the server sends while serving it, progress, logs and its own requests (sampling, elicitation, roots), goes on
that stream, and the client answers a server request by POSTing the response to the same handle (the
multiplexer knows the request by its id, whichever HTTP request carries the answer). An `initialize` opens a
protocol session on the handle (`handle_sessions.py`: `Mcp-Session-Id`, GET stream, DELETE ends the session);
requests without a session id are served one by one as above.
`DELETE` on the handle without a session id ends the instance. Another principal's handle answers 404, as a
missing one does.
"""

import re

import anyio
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER, StreamableHTTPServerTransport
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from mcpsim.errors import MCPSimError, NotFound, NotReady
from mcpsim.pool import InstancePool, State
from mcpsim.server.edge import respond_error
from mcpsim.server.fronts.bodies import parse_json, read_body, replaying
from mcpsim.server.fronts.handle_sessions import HandleSessions
from mcpsim.server.fronts.modern import ModernFront, modern_header, peek_json
from mcpsim.server.fronts.translate import is_modern
from mcpsim.server.principals import owned, principal_of
from mcpsim.server.proxy import bridge

INSTANCE_ID = re.compile(r"[0-9a-f]{32}")
FORWARD_GRACE_S = 5.0
"""How long a handle request's end waits for its last client message to be forwarded (a branch's gate can hold it)."""


class HandleFront:
    """ASGI app mounted at `/envs`; routes `/{instance_id}/mcp`."""

    def __init__(self, pool: InstancePool, sse: bool = True, modern: ModernFront | None = None) -> None:
        self.pool = pool
        self.sse = sse
        """Answer a handshake-era POST as an SSE stream when its client accepts one (False: always JSON)."""
        self.sessions = HandleSessions(pool, sse)
        """Handshake-era sessions opened by an `initialize` on a handle; the app's lifespan runs them."""
        self.modern = modern
        """Where 2026-07-28 requests go (`fronts/modern.py`); None: this front serves the handshake era only."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._serve(scope, receive, send)
        except MCPSimError as exc:
            await respond_error(exc, scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path_info") or scope["path"]
        parts = [part for part in path.split("/") if part]
        if parts and parts[0] == "envs":
            parts = parts[1:]
        if len(parts) != 2 or parts[1] != "mcp" or not INSTANCE_ID.fullmatch(parts[0]):
            raise NotFound("Not found: instance handles look like /envs/<32 hex digits>/mcp")
        request = Request(scope, receive)
        if self.modern is not None and request.method == "POST" and modern_header(request) is not None:
            body = await read_body(receive, self.pool.config.max_message_bytes, scope)
            await self.modern.serve(scope, receive, send, parse_json(body), url_handle=parts[0])
            return
        instance = owned(self.pool, parts[0], principal_of(scope))
        session_id = request.headers.get(MCP_SESSION_ID_HEADER)
        if session_id is not None:  # a session's own request, DELETE included (which ends the session only)
            await self.sessions.serve(instance, session_id, scope, receive, send)
            return
        if request.method == "DELETE":
            await self.pool.end(instance.id)
            await JSONResponse({"id": instance.id, "state": str(instance.state), "exit_code": instance.exit_code})(
                scope, receive, send
            )
            return
        if instance.state != State.READY and instance.mux is None:
            raise NotReady(f"instance {instance.id} is {instance.state}, not ready")
        body = await read_body(receive, self.pool.config.max_message_bytes, scope) if request.method == "POST" else b""
        message = peek_json(body) if body else None
        if self.modern is not None and body and is_modern(None, message):
            await self.modern.serve(scope, receive, send, message, url_handle=parts[0])
            return
        if isinstance(message, dict) and message.get("method") == "initialize" and "id" in message:
            await self.sessions.open(instance, body, scope, receive, send)
            return
        streams = self.sse and "text/event-stream" in request.headers.get("accept", "")
        transport = StreamableHTTPServerTransport(None, is_json_response_enabled=not streams)
        name = f"handle {instance.id}"
        bridged = anyio.Event()

        async def bridging() -> None:
            try:
                await bridge(instance, read_stream, write_stream, name=name, primary=False, back_channel=streams)
            finally:
                bridged.set()

        async with transport.connect() as (read_stream, write_stream), anyio.create_task_group() as tg:
            tg.start_soon(bridging)
            try:
                await transport.handle_request(scope, replaying(body, receive), send)
            finally:
                with anyio.CancelScope(shield=True):
                    await transport.terminate()
                    # a message answered 202 (the client's answer to a server request, a notification) is read by
                    # the bridge after the answer went out: let it reach the server before the bridge is cancelled
                    with anyio.move_on_after(FORWARD_GRACE_S):
                        await bridged.wait()
                tg.cancel_scope.cancel()
