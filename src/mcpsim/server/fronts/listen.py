"""`subscriptions/listen` for a 2026-07-28 client on a handshake-era backend: its notifications become events.

A handshake-era server announces changes with notifications unrelated to any request
(`notifications/{tools,prompts,resources}/list_changed`, and `notifications/resources/updated` for the URIs its
client subscribed to). While a listen is open on an episode's handle, a `Hub` is that instance's primary channel
(the multiplexer sends it what relates to no request) and writes each change to every listen whose filter
admits it (the SDK's `event_from_wire` / `event_matches`), tagged with the listen's own request id as
`subscriptionId`. The acknowledgement comes first and names the honoured subset: a kind the backend's
capabilities do not announce (`listChanged`, `resources.subscribe`) is not honoured. For
`resourceSubscriptions` mcpsim sends `resources/subscribe` to the backend for each URI (counted over the
episode's open listens; `resources/unsubscribe` when the last one closes).

Never on a listen stream (2026-07-28): progress and log messages. A log message related to a request goes to
that request if it asked for logs (`exchange.py`); unrelated ones, and unrelated progress, are dropped.

Limits: `MAX_LISTENS` open listens per episode (one more is refused with -32602 naming the limit), `MAX_QUEUED`
frames waiting per listen (events are level triggers: a full queue drops the newest, and the client refetches
anyway), each listen at most `MAX_LISTEN` seconds. An open listen counts as use of its episode (the idle timeout
does not end it), and the stream ends when the episode ends.
"""

import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
from mcp.shared.message import SessionMessage
from mcp.shared.subscriptions import event_from_wire, event_matches
from mcp.types import JSONRPCNotification
from mcp_types import SubscriptionFilter

from mcpsim.errors import BackendError, ProtocolRejection
from mcpsim.pool import Instance
from mcpsim.protocol.messages import SUBSCRIPTION_ID_KEY

MAX_LISTENS = 16
MAX_QUEUED = 64
MAX_LISTEN = 3600.0
SUBSCRIBE_TIMEOUT = 10.0
INVALID_PARAMS = -32602


@dataclass(eq=False)
class Listener:
    request_id: Any
    honored: SubscriptionFilter
    uris: frozenset[str]
    send: Any = None
    frames: Any = None

    def __post_init__(self) -> None:
        self.send, self.frames = anyio.create_memory_object_stream[dict[str, Any]](MAX_QUEUED)

    def offer(self, notification: JSONRPCNotification) -> None:
        params = dict(notification.params or {})
        params["_meta"] = {**(params.get("_meta") or {}), SUBSCRIPTION_ID_KEY: self.request_id}
        frame = {"jsonrpc": "2.0", "method": notification.method, "params": params}
        with contextlib.suppress(anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self.send.send_nowait(frame)


@dataclass(eq=False)
class Hub:
    """The primary channel of a translated instance while listens are open on it."""

    instance: Instance
    name: str = "listen"
    accepts_server_requests: bool = False
    listeners: list[Listener] = field(default_factory=list)
    subscribed: Counter[str] = field(default_factory=Counter)

    async def deliver(self, message: SessionMessage) -> None:
        msg = message.message
        if not isinstance(msg, JSONRPCNotification):
            return
        event = event_from_wire(msg.method, msg.params)
        if event is None:  # logs, progress, anything else: never on a listen stream
            return
        for listener in self.listeners:
            if event_matches(listener.honored, listener.uris, event):
                listener.offer(msg)


def honored_filter(asked: SubscriptionFilter, capabilities: dict[str, Any]) -> SubscriptionFilter:
    """What of `asked` the backend can announce, by its capabilities."""

    def can(kind: str, flag: str) -> bool:
        value = capabilities.get(kind)
        return isinstance(value, dict) and value.get(flag) is True

    return SubscriptionFilter(
        tools_list_changed=True if asked.tools_list_changed and can("tools", "listChanged") else None,
        prompts_list_changed=True if asked.prompts_list_changed and can("prompts", "listChanged") else None,
        resources_list_changed=True if asked.resources_list_changed and can("resources", "listChanged") else None,
        resource_subscriptions=list(asked.resource_subscriptions or []) if can("resources", "subscribe") else None,
    )


class Listens:
    """The hubs of translated instances (by instance id), for the modern front."""

    def __init__(self) -> None:
        self.hubs: dict[str, Hub] = {}

    def open(self, instance: Instance, request_id: Any, params: Any) -> AsyncIterator[dict[str, Any]]:
        """One listen on `instance`: its frames, the acknowledgement and then the admitted events, until the
        episode ends or the caller closes them. The filter and the limit are checked here, before any frame."""
        try:
            asked = SubscriptionFilter.model_validate((params or {}).get("notifications") or {})
        except ValueError:
            reason = "Invalid params: notifications must be a SubscriptionFilter"
            raise ProtocolRejection(reason, INVALID_PARAMS) from None
        hub = self.hubs.get(instance.id)
        if hub is not None and len(hub.listeners) >= MAX_LISTENS:
            raise ProtocolRejection(f"at most {MAX_LISTENS} listens may be open on one episode", INVALID_PARAMS)
        return self._frames(instance, request_id, honored_filter(asked, instance.init_result.get("capabilities") or {}))

    async def _frames(
        self, instance: Instance, request_id: Any, honored: SubscriptionFilter
    ) -> AsyncIterator[dict[str, Any]]:
        hub = self._hub(instance)
        listener = Listener(request_id, honored, frozenset())
        hub.listeners.append(listener)  # first, so a failed subscribe below still leaves through _leave
        try:
            uris = await self._subscribe(instance, hub, listener, honored.resource_subscriptions or [])
            if honored.resource_subscriptions is not None:
                honored = honored.model_copy(update={"resource_subscriptions": sorted(uris)})
            listener.honored, listener.uris = honored, frozenset(uris)
            yield {
                "jsonrpc": "2.0",
                "method": "notifications/subscriptions/acknowledged",
                "params": {
                    "notifications": honored.model_dump(by_alias=True, exclude_none=True),
                    "_meta": {SUBSCRIPTION_ID_KEY: request_id},
                },
            }
            until = time.monotonic() + MAX_LISTEN
            while time.monotonic() < until and not instance.ended.is_set():
                if instance.mux is not None:  # an open listen is use of the episode: no idle timeout
                    instance.mux.last_activity = time.monotonic()
                frame = None
                with anyio.move_on_after(1.0):
                    frame = await listener.frames.receive()
                if frame is not None:
                    yield frame
        finally:
            with anyio.CancelScope(shield=True):
                await self._leave(instance, hub, listener)

    def _hub(self, instance: Instance) -> Hub:
        hub = self.hubs.get(instance.id)
        if hub is None:
            hub = self.hubs[instance.id] = Hub(instance, name=f"listen {instance.id}")
            if instance.mux is not None and instance.mux.primary is None:
                instance.mux.attach(hub, primary=True)
        return hub

    async def _subscribe(self, instance: Instance, hub: Hub, listener: Listener, uris: list[str]) -> set[str]:
        """The URIs the backend accepted `resources/subscribe` for (each once per episode), counted on the
        listener as they are (so `_leave` undoes exactly what was done, even if this is cancelled midway)."""
        accepted = set()
        for uri in dict.fromkeys(uris):
            if hub.subscribed[uri] == 0 and instance.mux is not None:
                try:
                    with anyio.fail_after(SUBSCRIBE_TIMEOUT):
                        await instance.mux.request("resources/subscribe", {"uri": uri})
                except (BackendError, TimeoutError):
                    continue
            hub.subscribed[uri] += 1
            accepted.add(uri)
            listener.uris = frozenset(accepted)
        return accepted

    async def _leave(self, instance: Instance, hub: Hub, listener: Listener) -> None:
        with contextlib.suppress(ValueError):
            hub.listeners.remove(listener)
        listener.send.close()
        for uri in listener.uris:
            hub.subscribed[uri] -= 1
            if hub.subscribed[uri] <= 0:
                del hub.subscribed[uri]
                if instance.mux is not None and not instance.ended.is_set():
                    with contextlib.suppress(BackendError, TimeoutError), anyio.fail_after(SUBSCRIBE_TIMEOUT):
                        await instance.mux.request("resources/unsubscribe", {"uri": uri})
        if not hub.listeners and not hub.subscribed:
            self.hubs.pop(instance.id, None)
            if instance.mux is not None:
                instance.mux.detach(hub)
