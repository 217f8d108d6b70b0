"""Messages mcpsim itself sends: JSON-RPC error answers (with the codes of `mcpsim.wire`)."""

from mcp.shared.message import SessionMessage
from mcp.types import ErrorData, JSONRPCError, RequestId


def error_message(request_id: RequestId | None, code: int, message: str, data: object = None) -> SessionMessage:
    """A JSON-RPC error response; the front transports route it to the request's stream by its id."""
    return SessionMessage(
        JSONRPCError(jsonrpc="2.0", id=request_id, error=ErrorData(code=code, message=message, data=data))
    )
