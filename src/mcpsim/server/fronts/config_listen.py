"""A handle-less `subscriptions/listen`: the list changes of the handle-less listings of its config.

Without a handle a 2026-07-28 request names no episode, and its lists (`tools/list`, ...) are answered from the
listing cache of its config (`listings.py`). What such a listener can be told, then, is when those answers
change: whenever any instance of that config (whatever its handle) announces
`notifications/{tools,prompts,resources}/list_changed`, the cached listing is dropped and every handle-less
listen of the config whose filter asks for that kind gets the notification, tagged with its `subscriptionId`.
Resource updates belong to one episode's subscriptions, so they are never honoured here (a listen with a
handle gets them: `listen.py`); a list kind is honoured if the config's server announces `listChanged` for it.

A handshake-era backend announces its list changes unsolicited. A 2026-07-28 backend announces them only on a
listen opened on it, so while handle-less listens of a config are open, each instance a handle-less request
mints for it gets one from mcpsim (`follow`), acknowledged before that request is served (the request may be
the very change); the backend's events then reach the pool's list watchers like any notification.

Limits: `MAX_CONFIG_LISTENS` open handle-less listens in all (one more is refused with -32602 naming it),
`MAX_QUEUED` frames waiting per listen (a full queue drops the newest: the client refetches anyway), each open
at most `MAX_LISTEN` seconds.
"""

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
from anyio.abc import TaskStatus
from mcp.types import JSONRPCNotification
from mcp_types import SubscriptionFilter

from mcpsim.errors import ProtocolRejection
from mcpsim.pool import Instance, InstancePool
from mcpsim.pool.eras import envelope
from mcpsim.protocol.messages import SUBSCRIPTION_ID_KEY
from mcpsim.server.fronts.exchange import open_call
from mcpsim.server.fronts.listen import INVALID_PARAMS, MAX_LISTEN, Listener, honored_filter

MAX_CONFIG_LISTENS = 256
"""Handle-less listens open at once, over every config."""
ACKNOWLEDGED = "notifications/subscriptions/acknowledged"
ACK_TIMEOUT = 10.0
"""How long a minted instance's request waits for mcpsim's own listen on it to be acknowledged."""


def config_key(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, separators=(",", ":"))


class ConfigListens:
    """The handle-less listens, by config; told of every list change by the pool."""

    def __init__(self, pool: InstancePool) -> None:
        self._by_config: dict[str, list[Listener]] = {}
        pool.list_watchers.append(self.changed)

    @property
    def open_count(self) -> int:
        return sum(len(listeners) for listeners in self._by_config.values())

    def wants(self, config: dict[str, Any]) -> SubscriptionFilter | None:
        """The list kinds the open handle-less listens of `config` follow, or None if none is open."""
        listeners = self._by_config.get(config_key(config))
        if not listeners:
            return None
        kinds = ("tools_list_changed", "prompts_list_changed", "resources_list_changed")
        wanted = {kind: True for kind in kinds if any(getattr(each.honored, kind, None) for each in listeners)}
        return SubscriptionFilter(**wanted) if wanted else None

    async def follow(
        self,
        instance: Instance,
        asked: SubscriptionFilter,
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Hold a listen open on a minted 2026-07-28 instance for its life (at most `MAX_LISTEN` seconds); started
        once the backend acknowledged it, refused it, or `ACK_TIMEOUT` passed.

        It runs in the modern front's task group: an error before it started goes to the minting request (which
        `start` waits in), and once started nothing it does may end that group, so a failure is logged and
        counted, ending this listen only."""
        params = {"notifications": asked.model_dump(by_alias=True, exclude_none=True), "_meta": envelope()}
        call = await open_call(
            instance, "config listen", "subscriptions/listen", params, f"mcpsim-listen-{instance.id}"
        )
        try:
            with anyio.move_on_after(ACK_TIMEOUT):
                async for message in call.events:
                    if not isinstance(message, JSONRPCNotification) or message.method == ACKNOWLEDGED:
                        break  # acknowledged, or answered (refused, ended): either way the request goes on
        except BaseException:
            await call.close()
            raise
        task_status.started()
        try:
            with anyio.move_on_after(MAX_LISTEN):
                await instance.ended.wait()
        finally:
            try:
                await call.close()
            except Exception:
                instance.log.exception("mcpsim's own listen on the instance failed to close")
                instance.count_internal_error("config listen")

    def changed(self, instance: Instance, method: str) -> None:
        for listener in self._by_config.get(config_key(instance.config), []):
            listener.offer(JSONRPCNotification(jsonrpc="2.0", method=method))

    def open(
        self, config: dict[str, Any], capabilities: dict[str, Any], request_id: Any, params: Any
    ) -> AsyncIterator[dict[str, Any]]:
        """The listen's frames: the acknowledgement, then the config's list changes it asked for. The filter and
        the limit are checked here, before any frame."""
        try:
            asked = SubscriptionFilter.model_validate((params or {}).get("notifications") or {})
        except ValueError:
            reason = "Invalid params: notifications must be a SubscriptionFilter"
            raise ProtocolRejection(reason, INVALID_PARAMS) from None
        if self.open_count >= MAX_CONFIG_LISTENS:
            reason = f"at most {MAX_CONFIG_LISTENS} listens without a handle may be open at once"
            raise ProtocolRejection(reason, INVALID_PARAMS)
        honored = honored_filter(asked, capabilities).model_copy(update={"resource_subscriptions": None})
        return self._frames(config_key(config), Listener(request_id, honored, frozenset()))

    async def _frames(self, key: str, listener: Listener) -> AsyncIterator[dict[str, Any]]:
        listeners = self._by_config.setdefault(key, [])
        listeners.append(listener)
        try:
            yield {
                "jsonrpc": "2.0",
                "method": ACKNOWLEDGED,
                "params": {
                    "notifications": listener.honored.model_dump(by_alias=True, exclude_none=True),
                    "_meta": {SUBSCRIPTION_ID_KEY: listener.request_id},
                },
            }
            until = time.monotonic() + MAX_LISTEN
            while time.monotonic() < until:
                frame = None
                with anyio.move_on_after(1.0):  # (no cancel scope spans a yield of this generator)
                    frame = await listener.frames.receive()
                if frame is not None and _admitted(listener.honored, frame["method"]):
                    yield frame
        finally:
            listeners.remove(listener)
            if not listeners:
                self._by_config.pop(key, None)
            listener.send.close()


def _admitted(honored: SubscriptionFilter, method: str) -> bool:
    kind = method.removeprefix("notifications/").removesuffix("/list_changed")
    return bool(getattr(honored, f"{kind}_list_changed", None))
