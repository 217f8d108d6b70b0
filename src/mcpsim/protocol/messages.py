"""JSON-RPC messages as the multiplexer handles them: the error answers mcpsim sends (with the codes of
`mcpsim.wire`), and cheap checks of what peers send (request ids, results' shape)."""

from collections.abc import AsyncIterator
from typing import Any, Protocol

from mcp.shared.message import SessionMessage
from mcp.types import ErrorData, JSONRPCError, JSONRPCNotification, JSONRPCRequest, JSONRPCResponse, RequestId


class IncomingMessages(Protocol):
    """A front transport's read side: the client's messages, or the error a line that did not parse gave
    (anyio's `MemoryObjectReceiveStream[SessionMessage | Exception]`, or the SDK transports' own streams)."""

    def __aiter__(self) -> AsyncIterator[SessionMessage | Exception]: ...


class OutgoingMessages(Protocol):
    """A front transport's write side (`MemoryObjectSendStream[SessionMessage]`, or the SDK's own)."""

    async def send(self, item: SessionMessage, /) -> None: ...


MESSAGE_KINDS = tuple(
    f"{side}.{kind}" for side in ("client", "server") for kind in ("request", "response", "notification")
)
"""What the multiplexer counts, by `<sender>.<kind>` (the `mcpsim_messages` metric's labels)."""
_KINDS: dict[type, str] = {
    JSONRPCRequest: "request",
    JSONRPCResponse: "response",
    JSONRPCError: "response",
    JSONRPCNotification: "notification",
}


def message_kind(sender: str, message: object) -> str | None:
    """`client.request`, `server.notification`, ... for a JSON-RPC message from `sender` (client or server)."""
    kind = _KINDS.get(type(message))
    return None if kind is None else f"{sender}.{kind}"


def error_message(request_id: RequestId | None, code: int, message: str, data: object = None) -> SessionMessage:
    """A JSON-RPC error response; the front transports route it to the request's stream by its id."""
    return SessionMessage(
        JSONRPCError(jsonrpc="2.0", id=request_id, error=ErrorData(code=code, message=message, data=data))
    )


def hashable_token(token: Any) -> Any:
    """A progress token as a dict key (tokens are strings or numbers; anything else by its repr)."""
    return token if isinstance(token, str | int | float) else repr(token)


def request_id_of(value: Any) -> RequestId | None:
    """`value` if it can be a JSON-RPC request id (a string or an integer), else None."""
    return value if isinstance(value, str | int) and not isinstance(value, bool) else None


def is_error(msg: JSONRPCResponse | JSONRPCError) -> bool:
    """A JSON-RPC error, or a tool result flagged `isError`: both count as a failed call."""
    return isinstance(msg, JSONRPCError) or msg.result.get("isError") is True


def malformed_result(method: str, result: dict[str, Any]) -> str | None:
    """Why a `tools/call` result cannot be a CallToolResult, or None; a cheap check of the shape only.

    Clients validate results against the schema and fail with an opaque validation error, and mcpsim's own
    observers read `content` and `isError`; so a malformed result becomes one JSON-RPC error naming the problem.
    """
    if method != "tools/call":
        return None
    content = result.get("content", [])
    if not isinstance(content, list):
        return f"malformed: 'content' must be a list of content blocks, got {type(content).__name__}"
    for index, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            return f"malformed: content[{index}] must be an object with a string 'type'"
    flag = result.get("isError", False)
    if not isinstance(flag, bool):
        return f"malformed: 'isError' must be a boolean, got {type(flag).__name__}"
    return None


SUBSCRIPTION_ID_KEY = "io.modelcontextprotocol/subscriptionId"
"""`_meta` key of every frame of a 2026-07-28 `subscriptions/listen` stream: the listen request's id."""


def subscription_of(params: dict[str, Any]) -> Any:
    """The listen request id a server notification is tagged with (2026-07-28), else None."""
    meta = params.get("_meta")
    return meta.get(SUBSCRIPTION_ID_KEY) if isinstance(meta, dict) else None


def retag_subscription(msg: JSONRPCNotification, client_id: Any) -> JSONRPCNotification:
    """`msg` with its subscription id replaced by the client's id of the listen request."""
    params = msg.params or {}
    meta = {**params.get("_meta", {}), SUBSCRIPTION_ID_KEY: client_id}
    return msg.model_copy(update={"params": {**params, "_meta": meta}})
