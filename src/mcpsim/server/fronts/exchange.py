"""One request to an instance and its answer, as a stateless 2026-07-28 request needs it.

The instance's multiplexer serves any number of client channels; a `ReplyChannel` lives for a single request
(a `Call`): it is not primary, so unrelated notifications never reach it, and it is detached when the call is
closed. What does reach it, besides the answer, are the notifications related to the request (progress; log
messages only at or above the request's own `_meta` logLevel, none without one, as 2026-07-28 requires) and,
for a translated call that can ask (`asks`), the backend's server requests (`rounds.py` turns them into
`input_required` rounds; otherwise they are refused at once, as on a JSON-response `/envs` request). At most
`MAX_EVENTS` are kept waiting, later ones are dropped. The multiplexer bounds the wait (`--request-timeout`)
and answers with an error if the backend exits meanwhile, so a call always ends.
"""

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream
from mcp.shared.message import SessionMessage
from mcp.types import ErrorData, JSONRPCError, JSONRPCNotification, JSONRPCRequest, JSONRPCResponse, RequestId

from mcpsim.errors import HandleEnded
from mcpsim.pool import Instance, eras

MAX_EVENTS = 256
LOG_LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
"""RFC 5424 severities, least severe first: a request's `_meta` logLevel admits that level and those after it."""
Reply = JSONRPCResponse | JSONRPCError
Event = JSONRPCNotification | JSONRPCRequest | Reply


def log_admitted(level: Any, wanted: str | None) -> bool:
    """Whether a log message at `level` may go to a request that asked for `wanted` (None: it asked for none,
    and 2026-07-28 says the server MUST NOT send it any)."""
    if wanted not in LOG_LEVELS:
        return False
    return level in LOG_LEVELS and LOG_LEVELS.index(level) >= LOG_LEVELS.index(wanted)


class ReplyChannel:
    def __init__(self, name: str, *, asks: bool = False, log_level: str | None = None) -> None:
        self.name = name
        self.accepts_server_requests = asks
        """A translated 2026 request that can turn the backend's server requests into input_required rounds."""
        self.log_level: str | None = None
        self.takes_logs = False
        self.want_logs(log_level)
        self._send, self.events = anyio.create_memory_object_stream[Event](MAX_EVENTS)
        self.answered = False

    def want_logs(self, level: str | None) -> None:
        """The least severe log level this request takes (None: none; the multiplexer routes logs by it)."""
        self.log_level = level if level in LOG_LEVELS else None
        self.takes_logs = self.log_level is not None

    async def deliver(self, message: SessionMessage) -> None:
        msg = message.message
        is_log = isinstance(msg, JSONRPCNotification) and msg.method == "notifications/message"
        if is_log and not log_admitted((msg.params or {}).get("level"), self.log_level):
            return
        if isinstance(msg, JSONRPCResponse | JSONRPCError | JSONRPCNotification | JSONRPCRequest):
            with contextlib.suppress(anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
                self._send.send_nowait(msg)
            if isinstance(msg, JSONRPCResponse | JSONRPCError):
                self.answered = True
                self._send.close()


class Call:
    """One request in flight on an instance, from `open_call` to `close`: usually the life of one HTTP request,
    longer when a translated call is held between `input_required` rounds (`rounds.py`)."""

    def __init__(self, instance: Instance, channel: ReplyChannel, request_id: RequestId) -> None:
        self.instance = instance
        self.channel = channel
        self.request_id = request_id
        self.events = channel.events

    async def answer(self, server_request_id: RequestId, result: dict[str, Any]) -> None:
        """Answer the backend's server request (its id as the backend sent it) with `result`."""
        reply = JSONRPCResponse(jsonrpc="2.0", id=server_request_id, result=result)
        await self._send_back(SessionMessage(reply))

    async def refuse(self, server_request_id: RequestId, code: int, message: str) -> None:
        reply = JSONRPCError(jsonrpc="2.0", id=server_request_id, error=ErrorData(code=code, message=message))
        await self._send_back(SessionMessage(reply))

    async def _send_back(self, message: SessionMessage) -> None:
        mux = self.instance.mux
        if mux is not None:
            await mux.from_client(self.channel, message)

    async def close(self) -> None:
        """Detach; if the backend has not answered (the client left, or a held call expired), cancel it."""
        mux = self.instance.mux
        if mux is None:
            return
        if not self.channel.answered:
            cancel = {"requestId": self.request_id, "reason": "the client closed its request"}
            with anyio.CancelScope(shield=True), anyio.move_on_after(1):
                notice = JSONRPCNotification(jsonrpc="2.0", method="notifications/cancelled", params=cancel)
                await mux.from_client(self.channel, SessionMessage(notice))
        mux.detach(self.channel)


async def open_call(
    instance: Instance,
    name: str,
    method: str,
    params: dict[str, Any] | None,
    request_id: RequestId,
    headers: dict[str, str] | None = None,
    *,
    asks: bool = False,
    log_level: str | None = None,
) -> Call:
    """Send `method` to `instance`; the `Call`'s events are its related notifications (and, with `asks`, the
    backend's server requests), ending with the answer. The caller closes it."""
    mux = instance.mux
    if mux is None or instance.ended.is_set():
        raise HandleEnded(f"the episode {instance.id} has ended", instance.id, instance.failure or "ended")
    channel = ReplyChannel(f"{name} {instance.id}", asks=asks, log_level=log_level)
    fields: dict[str, Any] = {"params": params} if params is not None else {}
    request = JSONRPCRequest(jsonrpc="2.0", id=request_id, method=method, **fields)
    call = Call(instance, channel, request_id)
    try:
        metadata = (
            eras.metadata_for(instance.transport, method, params, headers) if instance.era == eras.MODERN else None
        )
        await mux.from_client(channel, SessionMessage(request, metadata=metadata))
    except BaseException:
        await call.close()
        raise
    return call


@contextlib.asynccontextmanager
async def exchange(
    instance: Instance,
    name: str,
    method: str,
    params: dict[str, Any] | None,
    request_id: RequestId,
    headers: dict[str, str] | None = None,
    log_level: str | None = None,
) -> AsyncIterator[MemoryObjectReceiveStream[Event]]:
    """Send `method` to `instance`; yields the stream of its related notifications, ending with the answer."""
    call = await open_call(instance, name, method, params, request_id, headers, log_level=log_level)
    try:
        yield call.events
    finally:
        await call.close()


async def ask(
    instance: Instance, name: str, method: str, params: dict[str, Any] | None, request_id: RequestId
) -> Reply:
    """`method`'s answer from `instance` (notifications dropped)."""
    async with exchange(instance, name, method, params, request_id) as events:
        async for event in events:
            if isinstance(event, JSONRPCResponse | JSONRPCError):
                return event
    raise HandleEnded(f"the episode {instance.id} ended before answering", instance.id, "ended")
