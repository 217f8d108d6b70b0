"""The two interfaces the multiplexer talks to, and its own channel.

`Channel` is a client-facing endpoint (a session's stream, an `/envs/{id}/mcp` handle, a translated 2026-07-28
call); `MuxObserver` gets the per-request hooks metrics and the dashboard feed on; `InternalChannel` is where the
proxy's own requests (the initialize handshake, health pings) are answered. Kept apart from `mux.py` so that
fronts, the pool and ops can name these types without the routing code they do not use.
"""

from typing import Protocol

import anyio
from mcp.shared.message import SessionMessage
from mcp.types import JSONRPCError, JSONRPCResponse, RequestId


class Channel(Protocol):
    """A client-facing endpoint: where messages for one client go."""

    name: str
    accepts_server_requests: bool
    """Whether the client can receive and answer server-initiated requests (sampling, elicitation, ...)."""

    async def deliver(self, message: SessionMessage) -> None: ...


class MuxObserver(Protocol):
    """Hooks for metrics and the dashboard; called on the event loop, so they must not block.

    `on_response` gets the client's request id (for log correlation) and the reply itself, so an observer can
    keep a reference to what the server answered (the dashboard's latest frame) without parsing anything here.
    """

    def on_request(self, method: str, tool: str | None) -> None: ...

    def on_response(
        self,
        method: str,
        tool: str | None,
        seconds: float,
        is_error: bool,
        *,
        request_id: RequestId | None = None,
        reply: JSONRPCResponse | JSONRPCError | None = None,
    ) -> None: ...


class InternalChannel:
    """The proxy's own requests (the initialize handshake, health pings) resolve futures here."""

    name = "mcpsim"
    accepts_server_requests = False

    def __init__(self) -> None:
        self.waiting: dict[RequestId, tuple[anyio.Event, list[JSONRPCResponse | JSONRPCError]]] = {}

    async def deliver(self, message: SessionMessage) -> None:
        msg = message.message
        if isinstance(msg, JSONRPCResponse | JSONRPCError) and msg.id in self.waiting:
            event, box = self.waiting[msg.id]
            box.append(msg)
            event.set()
