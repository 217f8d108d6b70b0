"""HTTP answers that carry a JSON-RPC error body, so MCP clients and plain HTTP clients both read the cause."""

import json
from collections.abc import Awaitable, Callable
from typing import Any

from mcp.types import INVALID_REQUEST, PARSE_ERROR, ErrorData, JSONRPCError, RequestId
from starlette.responses import Response
from starlette.types import Message, Receive, Scope

from mcpsim.protocol.framing import DEFAULT_MAX_MESSAGE_BYTES

MAX_BODY_BYTES = DEFAULT_MAX_MESSAGE_BYTES


class HTTPRejection(Exception):
    """A request refused before it reaches an instance: status, JSON-RPC code and a readable message."""

    def __init__(
        self, status: int, message: str, code: int = INVALID_REQUEST, request_id: RequestId | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.request_id = status, code, request_id

    def response(self, headers: dict[str, str] | None = None) -> Response:
        return rpc_error_response(self.status, self.code, str(self), self.request_id, headers)


def rpc_error_response(
    status: int, code: int, message: str, request_id: RequestId | None = None, headers: dict[str, str] | None = None
) -> Response:
    body = JSONRPCError(jsonrpc="2.0", id=request_id, error=ErrorData(code=code, message=message))
    return Response(body.model_dump_json(by_alias=True), status, headers=headers, media_type="application/json")


def check_declared_length(scope: Scope, limit: int) -> None:
    """Refuse with 413 before reading anything when the declared `Content-Length` is over `limit`."""
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            if not value.isdigit():
                raise HTTPRejection(400, "invalid Content-Length header")
            if int(value[:20]) > limit:
                raise HTTPRejection(413, f"request body larger than {limit} bytes (--max-message-bytes)")


async def read_body(receive: Receive, limit: int = MAX_BODY_BYTES, scope: Scope | None = None) -> bytes:
    """The whole request body, refusing more than `limit` bytes with 413 (at once if `scope` declares more)."""
    if scope is not None:
        check_declared_length(scope, limit)
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise HTTPRejection(400, "the client disconnected before sending the whole request")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise HTTPRejection(413, f"request body larger than {limit} bytes (--max-message-bytes)")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def replaying(body: bytes, receive: Receive) -> Callable[[], Awaitable[Message]]:
    """A `receive` that yields the already-read body once, then defers to the real one (for disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HTTPRejection(400, f"Parse error: the body is not valid JSON ({exc})", PARSE_ERROR) from None
    except RecursionError:
        raise HTTPRejection(400, "Parse error: the body is nested too deeply", PARSE_ERROR) from None
