"""The hot path of a handshake-era `/mcp` session: a plain JSON-RPC request POSTed on an open session.

Such a POST used to go through the SDK's `StreamableHTTPServerTransport`: the body parsed and validated, the
message put on the session's read stream, taken off it by the bridge task, forwarded; the answer put on the
session's write stream, routed by the transport's router task onto a per-request stream, turned into an SSE event
by a writer task and written by sse-starlette's response with its own task group (a disconnect listener, a
pinger). That is four tasks, five memory-stream hops and a model round trip per call for a message mcpsim only
re-ids. Here the request is read as an envelope (`jsonrpc`, `id`, `method`, `params` and nothing else), forwarded
straight to the instance's multiplexer from the HTTP request's own task, and the messages for it (related
notifications and server requests, then the answer) are written as SSE events (or the answer alone as JSON in
`--json-response` mode) by that same task.

Only the plain case is taken, and only where the SDK would not decide anything: the headers pass the very checks
the SDK's transport makes (its DNS-rebinding guard, `check_accept_headers`, the JSON content type), the body is a
single request other than `initialize`, its id is not already in flight. Everything else - notifications,
responses, batches, anything malformed, GET and DELETE - still goes to the SDK transport, which answers it as
before; both paths feed the same multiplexer through the same channel (`SessionChannel`), so a request's
notifications and server requests reach its own stream whichever path carried it.
"""

from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER, check_accept_headers
from mcp.server.transport_security import TransportSecurityMiddleware
from mcp.shared.message import ServerMessageMetadata, SessionMessage
from mcp.types import INTERNAL_ERROR, ErrorData, JSONRPCError, JSONRPCRequest, JSONRPCResponse
from pydantic import ValidationError
from starlette.requests import Request
from starlette.types import Send

from mcpsim.errors import ParseError
from mcpsim.pool import Instance
from mcpsim.protocol.messages import OutgoingMessages
from mcpsim.server.fronts.bodies import parse_json
from mcpsim.server.proxy import ClientChannel, forward

ENVELOPE_KEYS = frozenset({"jsonrpc", "id", "method", "params"})
CLAIM_BUFFER = 64
"""Messages for one fast request waiting to be written (the SDK's per-request stream holds as many)."""
PING_S = 15.0
"""A comment line on a quiet stream this often, as sse-starlette sends, so proxies keep the stream open."""
_SECURITY = TransportSecurityMiddleware(None)
"""The guard every session's SDK transport has (mcpsim creates them with the default settings)."""


class SessionChannel(ClientChannel):
    """A session's channel: messages for a request taken by the fast path go to that request's stream, the
    rest to the SDK transport's write stream as before."""

    def __init__(self, write_stream: OutgoingMessages, name: str, accepts_server_requests: bool) -> None:
        super().__init__(write_stream, name, accepts_server_requests)
        self._claims: dict[str, MemoryObjectSendStream[SessionMessage]] = {}

    async def deliver(self, message: SessionMessage) -> None:
        if self._claims:
            msg = message.message
            key: Any = None
            if isinstance(msg, JSONRPCResponse | JSONRPCError):
                key = msg.id
            elif isinstance(message.metadata, ServerMessageMetadata):
                key = message.metadata.related_request_id
            stream = self._claims.get(str(key)) if key is not None else None
            if stream is not None:
                await stream.send(message)
                return
        await super().deliver(message)

    def claim(self, request_id: Any) -> MemoryObjectReceiveStream[SessionMessage] | None:
        """The stream of what arrives for `request_id`, or None if that id is in flight already."""
        key = str(request_id)
        if key in self._claims:
            return None
        self._claims[key], received = anyio.create_memory_object_stream[SessionMessage](CLAIM_BUFFER)
        return received

    def release(self, request_id: Any) -> None:
        stream = self._claims.pop(str(request_id), None)
        if stream is not None:
            stream.close()

    def close_claims(self) -> None:
        """The session ended: every waiting fast request ends its response (as the SDK's streams do)."""
        for key in list(self._claims):
            self.release(key)


def fast_request(request: Request, body: bytes, json_response: bool) -> JSONRPCRequest | None:
    """The body as a request the fast path may carry, or None (then the SDK transport answers it)."""
    try:
        message = parse_json(body)
    except ParseError:
        return None
    if not isinstance(message, dict) or message.keys() - ENVELOPE_KEYS or message.get("jsonrpc") != "2.0":
        return None
    request_id, method, params = message.get("id"), message.get("method"), message.get("params", {})
    if isinstance(request_id, bool) or not isinstance(request_id, int | str) or not isinstance(method, str):
        return None
    if method == "initialize" or not isinstance(params, dict):
        return None
    content_type = request.headers.get("content-type", "")
    if not any(part.strip() == "application/json" for part in content_type.split(";")[0].split(",")):
        return None
    has_json, has_sse = check_accept_headers(request)
    if not has_json or not (has_sse or json_response):
        return None
    try:
        return JSONRPCRequest.model_validate(message)
    except ValidationError:
        return None


async def serve_fast(
    request: Request,
    msg: JSONRPCRequest,
    instance: Instance,
    channel: SessionChannel,
    session_id: str,
    json_response: bool,
    send: Send,
) -> bool:
    """Answer the POST of `msg`; False (nothing sent) when the SDK transport has to take it after all."""
    if instance.mux is None or await _SECURITY.validate_request(request, is_post=True) is not None:
        return False
    events = channel.claim(msg.id)
    if events is None:
        return False
    try:
        await forward(instance, instance.mux, channel, SessionMessage(msg))
        if json_response:
            await _answer_json(events, session_id, send)
        else:
            await _answer_sse(events, session_id, send)
    finally:
        channel.release(msg.id)
    return True


async def _answer_json(events: MemoryObjectReceiveStream[SessionMessage], session_id: str, send: Send) -> None:
    async for item in events:  # a JSON body carries the answer only: related messages are dropped, as the SDK does
        if isinstance(item.message, JSONRPCResponse | JSONRPCError):
            body = item.message.model_dump_json(by_alias=True, exclude_unset=True).encode()
            headers = [(b"content-type", b"application/json"), (MCP_SESSION_ID_HEADER.encode(), session_id.encode())]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
    await _failed(send, session_id)


async def _failed(send: Send, session_id: str) -> None:
    """The session ended with the request unanswered: the SDK's JSON mode answers 500 then, with this error."""
    error = ErrorData(code=INTERNAL_ERROR, message="Session terminated before the request completed")
    body = JSONRPCError(jsonrpc="2.0", id=None, error=error).model_dump_json(by_alias=True, exclude_unset=True).encode()
    headers = [(b"content-type", b"application/json"), (MCP_SESSION_ID_HEADER.encode(), session_id.encode())]
    await send({"type": "http.response.start", "status": 500, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _answer_sse(events: MemoryObjectReceiveStream[SessionMessage], session_id: str, send: Send) -> None:
    headers = [
        (b"content-type", b"text/event-stream; charset=utf-8"),
        (b"cache-control", b"no-cache, no-transform"),
        (b"connection", b"keep-alive"),
        (b"x-accel-buffering", b"no"),
        (MCP_SESSION_ID_HEADER.encode(), session_id.encode()),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    while True:
        item = None
        with anyio.move_on_after(PING_S):
            try:
                item = await events.receive()
            except anyio.EndOfStream:  # the session ended first: the stream ends without an answer
                break
        if item is None:
            await send({"type": "http.response.body", "body": b": ping\r\n\r\n", "more_body": True})
            continue
        data = item.message.model_dump_json(by_alias=True, exclude_unset=True)
        answered = isinstance(item.message, JSONRPCResponse | JSONRPCError)
        frame = f"event: message\r\ndata: {data}\r\n\r\n".encode()
        await send({"type": "http.response.body", "body": frame, "more_body": not answered})
        if answered:
            return
    await send({"type": "http.response.body", "body": b"", "more_body": False})
