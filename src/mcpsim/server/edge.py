"""The one place where mcpsim's errors become HTTP answers: a status, a JSON-RPC code and a body.

Two bodies, by who is asking:
- MCP clients (`/mcp`, `/envs/{id}/mcp`, `/sse`, and the access guard in front of everything) get a JSON-RPC
  error, `{"jsonrpc": "2.0", "id": ..., "error": {"code", "message"}}`, which an SDK client turns into an error
  naming the cause. Those fronts are raw ASGI apps; they answer with `respond_error(exc, scope, receive, send)`.
  The id is the one of the request being served, when the front has read it (`note_request_id`).
- The REST routes (`/api/*`, the dashboard's frames, the viewer) get `{"error": {"message", "code"?}}`, through
  the Starlette exception handler `rest_error` that `exception_handlers()` registers on the app.

The table maps a class to its answer; a subclass not listed gets its nearest listed ancestor's. A code of None
means the error has no JSON-RPC code of its own: REST bodies then carry no `code`, JSON-RPC bodies
`INVALID_REQUEST`. Nothing else in mcpsim knows an HTTP status for an error.
"""

from collections.abc import Callable, Coroutine
from typing import Any

from mcp.shared.inbound import ERROR_CODE_HTTP_STATUS
from mcp.types import INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR, ErrorData
from mcp.types import JSONRPCError as JSONRPCErrorMessage
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from mcpsim import errors
from mcpsim.wire import (
    BACKEND_START_FAILED,
    BACKEND_UNAVAILABLE,
    CAPACITY_EXHAUSTED,
    HANDLE_CAPACITY,
    HANDLE_CONFLICT,
    HANDLE_ENDED,
    HANDLE_UNKNOWN,
    INTERNAL_FAILURE,
)

ANSWERS: dict[type[errors.MCPSimError], tuple[int, int | None]] = {
    errors.ParseError: (400, PARSE_ERROR),
    errors.InvalidParams: (400, INVALID_PARAMS),
    errors.MethodNotServed: (400, METHOD_NOT_FOUND),
    errors.UnknownHandle: (404, HANDLE_UNKNOWN),
    errors.HandleEnded: (404, HANDLE_ENDED),
    errors.HandleConflict: (400, HANDLE_CONFLICT),
    errors.NoFreshInstance: (503, HANDLE_CAPACITY),
    errors.BadRequest: (400, INVALID_REQUEST),
    errors.NotFound: (404, None),
    errors.NotReady: (409, INVALID_REQUEST),
    errors.ConfigTooLarge: (413, INVALID_PARAMS),
    errors.TooLarge: (413, INVALID_REQUEST),
    errors.UnsupportedMediaType: (415, INVALID_REQUEST),
    errors.Misdirected: (421, INVALID_REQUEST),
    errors.CrossOrigin: (403, INVALID_REQUEST),
    errors.ClientGone: (499, None),
    errors.TooManyInFlight: (429, CAPACITY_EXHAUSTED),
    errors.CapacityError: (503, CAPACITY_EXHAUSTED),
    errors.ShuttingDown: (503, CAPACITY_EXHAUSTED),
    errors.LimitExceeded: (502, BACKEND_UNAVAILABLE),
    errors.StartError: (502, BACKEND_START_FAILED),
    errors.InstanceGone: (404, BACKEND_UNAVAILABLE),
    errors.TooManySeeds: (413, INVALID_REQUEST),
    errors.QueueFull: (429, CAPACITY_EXHAUSTED),
    errors.BranchError: (409, None),
    errors.PoolError: (500, BACKEND_START_FAILED),
    errors.MalformedReply: (502, None),
    errors.ControlPlaneUnreachable: (502, None),
    errors.TrajectoryError: (422, None),
    errors.MCPSimError: (500, INTERNAL_FAILURE),
}
"""(HTTP status, JSON-RPC code) per error class; looked up along the class's MRO."""

REQUEST_ID_KEY = "mcpsim.request_id"
"""Where a front notes, in the ASGI scope, the JSON-RPC id of the request it is serving."""


def answer(exc: errors.MCPSimError) -> tuple[int, int | None]:
    """(HTTP status, JSON-RPC code or None) for `exc`: its own class's entry, else its nearest ancestor's.

    A `ProtocolRejection` carries the spec's code; its status is the one the SDK's table gives that code."""
    if isinstance(exc, errors.ProtocolRejection):
        return modern_status(exc.code, 400), exc.code
    for cls in type(exc).__mro__:
        if cls in ANSWERS:
            return ANSWERS[cls]  # type: ignore[index]
    return ANSWERS[errors.MCPSimError]


def modern_status(code: int, default: int = 200) -> int:
    """The HTTP status of a 2026-07-28 JSON-RPC error with `code` (the SDK's table: 400s, 404 for -32601),
    for errors mcpsim raises and for errors a backend answered; others keep `default`."""
    return ERROR_CODE_HTTP_STATUS.get(code, default)


def rpc_code(exc: errors.MCPSimError) -> int:
    """The JSON-RPC code an error is answered with (for fronts that answer in-band, like stdio)."""
    code = answer(exc)[1]
    return INVALID_REQUEST if code is None else code


def note_request_id(scope: Scope, request_id: Any) -> None:
    """The JSON-RPC id an error answer to this HTTP request should carry (a string or an integer, else none)."""
    if isinstance(request_id, str | int) and not isinstance(request_id, bool):
        scope[REQUEST_ID_KEY] = request_id


def rpc_error_response(exc: errors.MCPSimError, request_id: Any = None) -> Response:
    """The JSON-RPC error answer to `exc` (for MCP clients)."""
    status, _ = answer(exc)
    data = getattr(exc, "data", None)  # the modern front's errors say more (the spec's data, the handle)
    error = ErrorData(code=rpc_code(exc), message=str(exc), **({"data": data} if data is not None else {}))
    body = JSONRPCErrorMessage(jsonrpc="2.0", id=request_id, error=error)
    return Response(body.model_dump_json(by_alias=True), status, media_type="application/json")


async def respond_error(exc: errors.MCPSimError, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer an MCP front's request with the JSON-RPC error for `exc` (raw ASGI fronts and the access guard)."""
    await rpc_error_response(exc, scope.get(REQUEST_ID_KEY))(scope, receive, send)


def rest_body(exc: errors.MCPSimError) -> tuple[int, dict[str, Any]]:
    """(status, `{"error": {"message", "code"?}}`) of a REST route's answer to `exc`."""
    status, code = answer(exc)
    return status, {"error": {"message": str(exc), **({"code": code} if code is not None else {})}}


async def rest_error(request: Request, exc: Exception) -> Response:
    """Starlette exception handler: a REST route raised an mcpsim error."""
    assert isinstance(exc, errors.MCPSimError)
    status, body = rest_body(exc)
    return JSONResponse(body, status)


Handler = Callable[[Request, Exception], Coroutine[Any, Any, Response]]


def exception_handlers() -> dict[Any, Handler]:
    """What `Starlette(exception_handlers=...)` needs so every route's mcpsim error is answered here."""
    return {errors.MCPSimError: rest_error}
