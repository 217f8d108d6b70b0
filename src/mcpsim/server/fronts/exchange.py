"""One request to an instance and its answer, as a stateless 2026-07-28 request needs it.

The instance's multiplexer serves any number of client channels; a `ReplyChannel` lives for a single request:
it is not primary, so the backend's own requests and unrelated notifications never reach it (a server request
related to it is refused at once, as on a JSON-response `/envs` request), and it is detached when the answer
arrives. What does reach it, besides the answer, are the notifications related to the request (progress): at
most `MAX_EVENTS` are kept waiting, later ones are dropped. The multiplexer bounds the wait
(`--request-timeout`) and answers with an error if the backend exits meanwhile, so an exchange always ends.
"""

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream
from mcp.shared.message import SessionMessage
from mcp.types import JSONRPCError, JSONRPCNotification, JSONRPCRequest, JSONRPCResponse, RequestId
from starlette.responses import JSONResponse, StreamingResponse
from starlette.types import Receive, Scope, Send

from mcpsim.errors import HandleEnded
from mcpsim.pool import Instance, eras

MAX_EVENTS = 256
Reply = JSONRPCResponse | JSONRPCError
Event = JSONRPCNotification | Reply


class ReplyChannel:
    accepts_server_requests = False

    def __init__(self, name: str) -> None:
        self.name = name
        self._send, self.events = anyio.create_memory_object_stream[Event](MAX_EVENTS)
        self.answered = False

    async def deliver(self, message: SessionMessage) -> None:
        msg = message.message
        if isinstance(msg, JSONRPCResponse | JSONRPCError | JSONRPCNotification):
            with contextlib.suppress(anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
                self._send.send_nowait(msg)
            if not isinstance(msg, JSONRPCNotification):
                self.answered = True
                self._send.close()


@contextlib.asynccontextmanager
async def exchange(
    instance: Instance,
    name: str,
    method: str,
    params: dict[str, Any] | None,
    request_id: RequestId,
    headers: dict[str, str] | None = None,
) -> AsyncIterator[MemoryObjectReceiveStream[Event]]:
    """Send `method` to `instance`; yields the stream of its related notifications, ending with the answer."""
    mux = instance.mux
    if mux is None or instance.ended.is_set():
        raise HandleEnded(f"the episode {instance.id} has ended", instance.id, instance.failure or "ended")
    channel = ReplyChannel(f"{name} {instance.id}")
    fields: dict[str, Any] = {"params": params} if params is not None else {}
    request = JSONRPCRequest(jsonrpc="2.0", id=request_id, method=method, **fields)
    try:
        metadata = (
            eras.metadata_for(instance.transport, method, params, headers) if instance.era == eras.MODERN else None
        )
        await mux.from_client(channel, SessionMessage(request, metadata=metadata))
        yield channel.events
    finally:
        if not channel.answered:  # the client left first (a listen stream closed): the server stops too
            cancel = {"requestId": request_id, "reason": "the client closed its request"}
            with anyio.CancelScope(shield=True), anyio.move_on_after(1):
                notice = JSONRPCNotification(jsonrpc="2.0", method="notifications/cancelled", params=cancel)
                await mux.from_client(channel, SessionMessage(notice))
        mux.detach(channel)


async def ask(
    instance: Instance, name: str, method: str, params: dict[str, Any] | None, request_id: RequestId
) -> Reply:
    """`method`'s answer from `instance` (notifications dropped)."""
    async with exchange(instance, name, method, params, request_id) as events:
        async for event in events:
            if not isinstance(event, JSONRPCNotification):
                return event
    raise HandleEnded(f"the episode {instance.id} ended before answering", instance.id, "ended")


def sse_frame(message: dict[str, Any]) -> bytes:
    return f"event: message\ndata: {json.dumps(message, separators=(',', ':'))}\n\n".encode()


async def relay(
    events: MemoryObjectReceiveStream[Event],
    finish: Callable[[Reply], tuple[dict[str, Any], int]],
    streaming: bool,
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    """Answer the HTTP request: JSON if the answer comes first (or the client takes no stream), else an SSE
    stream of the related notifications, then the answer. `finish` turns the answer into (body, status)."""
    first = await events.receive()
    while not streaming and isinstance(first, JSONRPCNotification):
        first = await events.receive()
    if not isinstance(first, JSONRPCNotification):
        body, status = finish(first)
        await JSONResponse(body, status)(scope, receive, send)
        return

    async def frames() -> AsyncIterator[bytes]:
        yield sse_frame(first.model_dump(by_alias=True, exclude_none=True))
        async for event in events:
            if isinstance(event, JSONRPCNotification):
                yield sse_frame(event.model_dump(by_alias=True, exclude_none=True))
            else:
                yield sse_frame(finish(event)[0])
                return

    headers = {"cache-control": "no-cache, no-transform", "x-accel-buffering": "no"}
    await StreamingResponse(frames(), media_type="text/event-stream", headers=headers)(scope, receive, send)
