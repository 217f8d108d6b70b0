"""`/control/*`: the HTTP control plane of eval-protocol / reward-kit servers, forwarded to the session's instance.

Servers written for those frameworks (`McpGym` and the like) keep reward and episode end out of the tool
result: the client asks `GET /control/reward`, `/control/status`, `/control/initial_state` and
`POST /control/reset_session` on the server's own port, with an `mcp-session-id` header holding the client's
own key for the episode (the `session_id` it put in `clientInfo`), not the transport's session id. Behind
mcpsim every session is its own instance on a private port, so these routes are forwarded to the instance of
the session the header names: either that client key (remembered when the session opened) or mcpsim's own
session id. The server was initialized with the client's `clientInfo` (see `params.py`), so it knows the key;
the header it receives is that key whenever the session has one.

Bounded: the request body by `--max-message-bytes`, the answer by the same, the whole exchange by
`CONTROL_TIMEOUT`. Only streamable-HTTP and SSE backends have a port to forward to; a stdio instance answers 404.
"""

import httpx2
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mcpsim.errors import BadRequest, ControlPlaneUnreachable, NotFound, TooLarge
from mcpsim.server.fronts.bodies import read_body
from mcpsim.server.fronts.sessions import SessionFront
from mcpsim.server.principals import principal_of

CONTROL_TIMEOUT = 30.0
"""Seconds a forwarded control request may take, connect to last byte."""
FORWARDED_HEADERS = ("content-type", "accept")
"""Request headers passed on besides the session header; the answer keeps only its content type."""


def control_routes(sessions: SessionFront) -> list[Route]:
    """The `/control/{path}` route, every method, forwarded for the session named by `mcp-session-id`."""

    async def forward(request: Request) -> Response:
        key = request.headers.get(MCP_SESSION_ID_HEADER)
        if not key:
            raise BadRequest(f"Bad Request: /control/* needs an {MCP_SESSION_ID_HEADER} header naming the session")
        session = sessions.find(key)
        if session is None or not principal_of(request.scope).may_use(session.instance):
            raise NotFound(f"Session not found: {key[:64]!r} ended or never existed")
        instance = session.instance
        if instance.port is None or instance.transport == "stdio":
            raise NotFound(f"instance {instance.id} has a stdio server: /control/* is forwarded only to HTTP backends")
        limit = sessions.pool.config.max_message_bytes
        body = await read_body(request.receive, limit, request.scope) if request.method in ("POST", "PUT") else b""
        headers = {name: request.headers[name] for name in FORWARDED_HEADERS if name in request.headers}
        headers[MCP_SESSION_ID_HEADER] = session.client_key or key
        path = request.url.path
        query = request.url.query
        url = f"http://127.0.0.1:{instance.port}{path}{'?' + query if query else ''}"
        client = sessions.pool.http_client
        if client is None:
            raise ControlPlaneUnreachable("the server is not serving yet")
        try:
            async with client.stream(
                request.method, url, content=body, headers=headers, timeout=CONTROL_TIMEOUT
            ) as answer:
                chunks, size = [], 0
                async for chunk in answer.aiter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise TooLarge(f"the server's {path} answer is larger than --max-message-bytes ({limit})")
                    chunks.append(chunk)
        except httpx2.HTTPError as exc:
            raise ControlPlaneUnreachable(
                f"instance {instance.id}: {request.method} {path} could not be forwarded: {exc!r}"
            ) from None
        instance.log.debug(
            "control %s %s -> %s", request.method, path, answer.status_code, extra={"event": "control.forwarded"}
        )
        media = answer.headers.get("content-type")
        return Response(b"".join(chunks), answer.status_code, media_type=media)

    return [Route("/control/{path:path}", forward, methods=["GET", "POST", "PUT", "DELETE"])]
