"""Route JSON-RPC messages between one server connection and the client channels attached to it.

An instance has one persistent connection to its server. Usually one client session is attached, but an
`/envs/{id}/mcp` handle or the proxy itself (its initialize handshake) may send requests over the same
connection, so request ids from different channels could collide. The multiplexer therefore gives every
client request a fresh id on the server side and restores the client's id on the response. Everything else
passes through untouched: server-initiated requests keep their ids (the client answers them with the same id)
and go to the primary channel, or, when it cannot take them, to the latest in-flight request whose channel can
(a translated 2026-07-28 call, which turns them into `input_required` rounds); notifications are routed to the
channel they concern (progress by its token, log messages to the latest request that asked for logs, the rest
to the primary channel, related to the request it is serving so a streamable-HTTP front puts them on that
request's stream).

When the connection ends, every pending request gets an error naming the cause, and later requests are answered
with it at once: a dead server never leaves a client waiting.

Deadlines: with a `request_timeout`, a client request that gets neither its answer nor a progress notification
for that long is answered with `BACKEND_TIMEOUT` and `on_timeout` is told (the instance then presumes its server
hung). `run_deadlines()` does that: one task per multiplexer, in the task group of the instance that owns it,
sleeping until the nearest deadline; no timer or stray task exists outside it. The requests in flight, their ids
and their clocks are kept by `inflight.py`; this module decides where each message goes.
"""

import itertools
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from mcp.shared.message import ServerMessageMetadata, SessionMessage
from mcp.types import (
    INTERNAL_ERROR,
    ErrorData,
    JSONRPCError,
    JSONRPCNotification,
    JSONRPCRequest,
    JSONRPCResponse,
    RequestId,
)

from mcpsim.errors import BackendError
from mcpsim.protocol.channels import Channel, InternalChannel, MuxObserver
from mcpsim.protocol.inflight import InFlight, Pending
from mcpsim.protocol.messages import (
    MESSAGE_KINDS,
    error_message,
    is_error,
    malformed_result,
    message_kind,
    request_id_of,
    retag_subscription,
    subscription_of,
)
from mcpsim.wire import BACKEND_TIMEOUT, BACKEND_UNAVAILABLE, NO_BACK_CHANNEL

logger = logging.getLogger(__name__)


class Multiplexer:
    """One server connection shared by client channels; see the module docstring for the routing rules."""

    def __init__(
        self,
        send_to_server: Callable[[SessionMessage], Awaitable[None]],
        name: str = "",
        *,
        request_timeout: float | None = None,
        observer: MuxObserver | None = None,
        on_timeout: Callable[[str], None] | None = None,
        on_broken: Callable[[str], Awaitable[None]] | None = None,
        on_call: Callable[[Any, JSONRPCResponse | JSONRPCError], None] | None = None,
        on_notification: Callable[[JSONRPCNotification], None] | None = None,
    ) -> None:
        self._send_to_server = send_to_server
        self.name = name
        self.request_timeout = request_timeout
        """Seconds a client request may wait for its answer (progress notifications restart the clock); the
        deadlines are kept by `run_deadlines`, which the owner runs in its task group."""
        self.observer = observer
        """Told of every client request and its answer (the instance's stats, then the metrics)."""
        self.on_timeout = on_timeout
        """Told why, when a request runs out of time: the server is presumed hung."""
        self.on_broken = on_broken
        self.on_call = on_call
        """Told of every answered `tools/call` (its params and the reply): the instance's history, for branching."""
        """Awaited when sending fails, before the connection is closed, to close it with a better reason."""
        self.on_notification = on_notification
        """Told of every notification from the server before it is routed (the instance learns of list changes)."""
        self.primary: Channel | None = None
        """The channel of the session (see `attach`): server requests and unrelated notifications go there."""
        self.closed_reason: str | None = None
        self.last_activity = time.monotonic()
        self.message_counts: dict[str, int] = dict.fromkeys(MESSAGE_KINDS, 0)
        """Messages received, by `<from>.<kind>` (see `MESSAGE_KINDS`); plain ints, read by the metrics."""
        self._ids = itertools.count(1)
        self._server_requests: dict[RequestId, Channel] = {}
        self._internal = InternalChannel()
        self._pending = InFlight(request_timeout, self._internal)

    # -- client -> server -------------------------------------------------------------------------------------

    async def from_client(self, channel: Channel, message: SessionMessage) -> None:
        msg = message.message
        self.last_activity = time.monotonic()
        self._count("client", msg)
        if isinstance(msg, JSONRPCRequest):
            await self._forward_request(channel, msg, message.metadata)  # per-message HTTP headers (2026)
        elif isinstance(msg, JSONRPCResponse | JSONRPCError):
            if msg.id is not None and self._server_requests.pop(msg.id, None) is not None:
                self._pending.hold(channel, False)
            await self._to_server(SessionMessage(msg))
        elif isinstance(msg, JSONRPCNotification):
            if msg.method == "notifications/cancelled":
                # Ids are the client's; the server knows the request by ours. An id that is not a JSON-RPC id
                # (an object, a list, true) names nothing in flight, like an unknown one: the cancel is moot.
                request_id = request_id_of((msg.params or {}).get("requestId"))
                server_id = self._pending.server_id_of(channel, request_id) if request_id is not None else None
                if server_id is None:
                    return
                msg = msg.model_copy(update={"params": {**(msg.params or {}), "requestId": server_id}})
            await self._to_server(SessionMessage(msg))

    async def _forward_request(self, channel: Channel, msg: JSONRPCRequest, metadata: Any = None) -> None:
        if self.closed_reason is not None:
            await channel.deliver(error_message(msg.id, BACKEND_UNAVAILABLE, self.closed_reason))
            return
        server_id = next(self._ids)
        params = msg.params or {}
        meta = params.get("_meta")
        token = meta.get("progressToken") if isinstance(meta, dict) else None
        tool = params.get("name") if msg.method == "tools/call" and isinstance(params.get("name"), str) else None
        self._pending.add(
            server_id, Pending(channel, msg.id, msg.method, tool, token, params if tool is not None else None)
        )
        if self.observer is not None:
            self.observer.on_request(msg.method, tool)
        await self._to_server(SessionMessage(msg.model_copy(update={"id": server_id}), metadata=metadata))

    async def _to_server(self, message: SessionMessage) -> None:
        try:
            await self._send_to_server(message)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            detail = f"connection to the server failed: {exc!r}"
            if self.on_broken is not None:  # the owner may know better why (the process just exited, say)
                await self.on_broken(detail)
            await self.close(self.closed_reason or detail)

    # -- server -> client -------------------------------------------------------------------------------------

    async def from_server(self, message: SessionMessage) -> None:
        msg = message.message
        self.last_activity = time.monotonic()
        self._count("server", msg)
        if isinstance(msg, JSONRPCResponse | JSONRPCError):
            pending = self._pending.pop(msg.id)
            if pending is None:
                logger.debug("%s: response to unknown request id %r dropped", self.name, msg.id)
                return
            if isinstance(msg, JSONRPCResponse) and (problem := malformed_result(pending.method, msg.result)):
                error = ErrorData(code=INTERNAL_ERROR, message=f"the server's {pending.method} result is {problem}")
                msg = JSONRPCError(jsonrpc="2.0", id=msg.id, error=error)
            self._observe_response(pending, msg)
            if pending.params is not None and self.on_call is not None:
                self.on_call(pending.params, msg)
            await self._deliver(pending.channel, SessionMessage(msg.model_copy(update={"id": pending.client_id})))
        elif isinstance(msg, JSONRPCRequest):
            target = self.primary
            asking = None
            if target is None or not target.accepts_server_requests:  # a stateless request that can ask (2026)
                asking = self._pending.latest_channel(lambda channel: channel.accepts_server_requests)
                target = asking or target
            if asking is not None:  # the server now waits on that client, so its silence is not a hang
                self._pending.hold(asking, True)
            if target is None or not target.accepts_server_requests:
                if msg.method == "ping":
                    await self._to_server(SessionMessage(JSONRPCResponse(jsonrpc="2.0", id=msg.id, result={})))
                else:
                    await self._to_server(
                        error_message(msg.id, NO_BACK_CHANNEL, f"no connected client can answer {msg.method!r} now")
                    )
                return
            self._server_requests[msg.id] = target
            await self._deliver(target, SessionMessage(msg, self._pending.related(target)))
        elif isinstance(msg, JSONRPCNotification):
            await self._route_notification(msg)

    async def _route_notification(self, msg: JSONRPCNotification) -> None:
        if self.on_notification is not None:
            self.on_notification(msg)
        params = msg.params or {}
        if msg.method == "notifications/progress" and "progressToken" in params:
            pending = self._pending.by_progress(params["progressToken"])
            if pending is not None:
                if pending.deadline < math.inf:  # progress: not hung, the clock starts again
                    self._pending.restart(pending)
                meta = ServerMessageMetadata(related_request_id=pending.client_id)
                await self._deliver(pending.channel, SessionMessage(msg, meta))
                return
        listen = subscription_of(params)  # a 2026 listen stream's frame: to the listen's channel, retagged
        if isinstance(listen, int) and (pending := self._pending.get(listen)) is not None:
            meta = ServerMessageMetadata(related_request_id=pending.client_id)
            await self._deliver(pending.channel, SessionMessage(retag_subscription(msg, pending.client_id), meta))
            return
        if msg.method == "notifications/cancelled":
            request_id = request_id_of(params.get("requestId"))
            channel = self._server_requests.pop(request_id, None) if request_id is not None else None
            if channel is not None:
                await self._deliver(channel, SessionMessage(msg))
            return
        target = self.primary or self._pending.latest_channel()
        if msg.method == "notifications/message":  # a log: to the request that asked for logs, if any (2026)
            target = self._pending.latest_channel(lambda channel: getattr(channel, "takes_logs", False)) or target
        if target is None:
            logger.debug("%s: %s with no client attached dropped", self.name, msg.method)
            return
        await self._deliver(target, SessionMessage(msg, self._pending.related(target)))

    async def _deliver(self, channel: Channel, message: SessionMessage) -> None:
        try:
            await channel.deliver(message)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            logger.debug("%s: channel %s closed; message dropped", self.name, channel.name)
            self.detach(channel)

    def _observe_response(self, pending: Pending, reply: JSONRPCResponse | JSONRPCError) -> None:
        """Tell the observer; a failing observer (metrics, dashboard) is logged and never stops the routing."""
        if self.observer is None:
            return
        seconds = time.perf_counter() - pending.started
        try:
            self.observer.on_response(
                pending.method, pending.tool, seconds, is_error(reply), request_id=pending.client_id, reply=reply
            )
        except Exception:
            logger.exception("%s: observer failed on a %s answer", self.name, pending.method)

    async def fail_request(self, server_id: RequestId | None, code: int, reason: str) -> bool:
        """Answer one pending request with an error instead of the server's answer (which could not be read).

        Returns whether a request was pending under `server_id`; the connection and every other request go on.
        """
        pending = self._pending.pop(server_id)
        if pending is None:
            return False
        reply = JSONRPCError(jsonrpc="2.0", id=server_id, error=ErrorData(code=code, message=reason))
        self._observe_response(pending, reply)
        await self._deliver(pending.channel, SessionMessage(reply.model_copy(update={"id": pending.client_id})))
        return True

    # -- deadlines --------------------------------------------------------------------------------------------

    async def run_deadlines(self) -> None:
        """Answer requests that ran out of time, until cancelled (a task of the owner's task group)."""
        await self._pending.run_deadlines(self._expire)

    async def _expire(self, pending: Pending) -> None:
        reason = (
            f"{self.name}: the server did not answer {pending.method!r}"
            f"{f' ({pending.tool})' if pending.tool else ''} within {self.request_timeout:g} s"
        )
        if self.on_timeout is not None:
            self.on_timeout(reason)
        await self._deliver(pending.channel, error_message(pending.client_id, BACKEND_TIMEOUT, reason))

    def _count(self, sender: str, msg: object) -> None:
        kind = message_kind(sender, msg)
        if kind is not None:
            self.message_counts[kind] += 1

    # -- lifecycle --------------------------------------------------------------------------------------------

    def attach(self, channel: Channel, *, primary: bool) -> None:
        """A client arrives (after the multiplexer exists: the one binding that is late by nature). A primary
        channel (a session) takes the server's requests and unrelated notifications; others (one HTTP request
        on an `/envs` handle) only get the answers to what they send, and need no attaching."""
        if primary:
            self.primary = channel

    def detach(self, channel: Channel) -> None:
        """Forget a client: its pending requests are dropped when answered; the primary slot is freed."""
        if self.primary is channel:
            self.primary = None
        self._pending.drop_channel(channel)

    async def close(self, reason: str) -> None:
        """The connection is gone: answer everything pending with `reason` and every later request too."""
        if self.closed_reason is None:
            self.closed_reason = reason
        for item in self._pending.take_all():
            await self._deliver(item.channel, error_message(item.client_id, BACKEND_UNAVAILABLE, self.closed_reason))

    # -- the proxy's own traffic ------------------------------------------------------------------------------

    async def request(self, method: str, params: dict[str, Any] | None = None, metadata: Any = None) -> dict[str, Any]:
        """Send a request of the proxy's own over the connection and wait for its result.

        The caller bounds the wait (`anyio.fail_after`); a cancelled wait leaves nothing pending behind.
        """
        client_id = f"mcpsim-{next(self._ids)}"
        event = anyio.Event()
        box: list[JSONRPCResponse | JSONRPCError] = []
        self._internal.waiting[client_id] = (event, box)
        try:
            await self._forward_request(
                self._internal, JSONRPCRequest(jsonrpc="2.0", id=client_id, method=method, params=params), metadata
            )
            await event.wait()
        finally:
            self._internal.waiting.pop(client_id, None)
            if not box:
                self._pending.drop_client_id(self._internal, client_id)
        reply = box[0]
        if isinstance(reply, JSONRPCError):
            raise BackendError(reply.error.message, reply.error.code, reply.error.data)
        return reply.result

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        # no params: leave the field unset so it is omitted; `"params": null` is not valid JSON-RPC, and the
        # TypeScript SDK drops such a notification (a server would never see `notifications/initialized`)
        fields = {"params": params} if params is not None else {}
        await self._to_server(SessionMessage(JSONRPCNotification(jsonrpc="2.0", method=method, **fields)))

    @property
    def in_flight(self) -> int:
        return len(self._pending)
