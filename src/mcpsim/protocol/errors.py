"""JSON-RPC error codes mcpsim itself answers with, and the helper that builds such answers.

Codes live in the implementation-defined band -32000..-32019 that the MCP spec leaves to servers, above the
SDK's own -32000/-32001, so a client can tell "the proxy could not serve this" from a server's answer.
"""

from mcp.shared.message import SessionMessage
from mcp.types import ErrorData, JSONRPCError, RequestId

BACKEND_UNAVAILABLE = -32010
"""The instance's server process exited or its connection closed."""
BACKEND_START_FAILED = -32011
"""The instance could not be started or did not become ready."""
CAPACITY_EXHAUSTED = -32012
"""`--max-instances` reached or no free port in `--port-range`."""
BACKEND_TIMEOUT = -32013
"""The instance did not answer a request in time."""
NO_BACK_CHANNEL = -32014
"""The server sent a request, but no connected client can answer it."""
MESSAGE_TOO_LARGE = -32015
"""A message was larger than `--max-message-bytes` (the server's answer, or the client's request on stdio)."""
INTERNAL_FAILURE = -32016
"""mcpsim failed unexpectedly while serving this request (a bug: the log has its traceback)."""


def error_message(request_id: RequestId | None, code: int, message: str, data: object = None) -> SessionMessage:
    """A JSON-RPC error response; the front transports route it to the request's stream by its id."""
    return SessionMessage(
        JSONRPCError(jsonrpc="2.0", id=request_id, error=ErrorData(code=code, message=message, data=data))
    )
