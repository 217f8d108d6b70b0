"""Request bodies read within a bound, and JSON parsed from them without trusting them.

A body larger than the limit (`--max-message-bytes`) is refused with `TooLarge` before it is held whole: at once
when `Content-Length` declares more, else as soon as the bytes read pass it. JSON is parsed by
`mcpsim.protocol.jsontext` (bounded depth, no huge integers), and any failure is a `ParseError` naming the cause.
"""

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import Message, Receive, Scope

from mcpsim.errors import BadRequest, JsonTextError, ParseError, TooLarge
from mcpsim.protocol.jsontext import parse_json_text
from mcpsim.wire import DEFAULT_MAX_MESSAGE_BYTES


def check_declared_length(scope: Scope, limit: int) -> None:
    """Refuse with `TooLarge` before reading anything when the declared `Content-Length` is over `limit`."""
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            if not value.isdigit():
                raise BadRequest("invalid Content-Length header")
            if int(value[:20]) > limit:
                raise TooLarge(f"request body larger than {limit} bytes (--max-message-bytes)")


async def read_body(receive: Receive, limit: int = DEFAULT_MAX_MESSAGE_BYTES, scope: Scope | None = None) -> bytes:
    """The whole request body, refusing more than `limit` bytes (at once if `scope` declares more)."""
    if scope is not None:
        check_declared_length(scope, limit)
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise BadRequest("the client disconnected before sending the whole request")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"request body larger than {limit} bytes (--max-message-bytes)")
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
    """The JSON value of a request body; a `ParseError` ("Parse error: ...") naming why it is not one."""
    try:
        return parse_json_text(body)
    except JsonTextError as exc:
        raise ParseError(f"Parse error: the body is not valid JSON ({exc})") from None
