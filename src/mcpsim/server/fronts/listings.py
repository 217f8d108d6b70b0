"""What a handle-less 2026-07-28 `server/discover` or list request is answered from: one probe per config.

A 2026-07-28 client discovers and lists before (and, for `call_tool`'s output validation, during) an episode,
always without a handle. Starting an instance for each of those would cost a process per request and leave
the episodes they named unused. Lists do not depend on an episode (SEP-2567), so per (server, config) mcpsim
starts one probe instance once, keeps its initialize result and its four listings, and ends it; later
handle-less discovers and lists of that config are answered from here without starting anything.

Bounded: at most `MAX_CONFIGS` configs are kept (least recently used goes first), and per config at most
`MAX_PAGES` extra listing pages (requests with a `cursor`, fetched from a probe when first asked).
A server whose listings depend on the seed must be listed with a handle (docs/transports.md).

Kept fresh: when any instance's server announces a list change (`notifications/{tools,prompts,resources}/
list_changed`, seen by the pool whoever it is routed to), its config's entry is dropped (the next handle-less
discover or list probes again), and that episode's own tools are looked up on it from then on (`tool`, for its
`Mcp-Param-*` checks), refetched after each further change; at most `MAX_CHANGED` such episodes are remembered.
"""

import json
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import anyio
from mcp.types import JSONRPCError
from starlette.types import Receive

from mcpsim.errors import CapacityError, ClientGone, NoFreshInstance
from mcpsim.pool import Instance, InstancePool
from mcpsim.pool.eras import MODERN, envelope
from mcpsim.server.fronts.exchange import ask
from mcpsim.server.fronts.starts import start_for_request
from mcpsim.server.fronts.translate import LISTING_METHODS

MAX_CONFIGS = 64
MAX_PAGES = 32
MAX_CHANGED = 256
CAPABILITY_OF = {
    "tools/list": "tools",
    "prompts/list": "prompts",
    "resources/list": "resources",
    "resources/templates/list": "resources",
}


@dataclass
class Listing:
    """One config's probe: the backend's initialize result and its answers (`{"result"}` or `{"error"}`)."""

    init_result: dict[str, Any]
    discovered: dict[str, Any] | None = None
    """The server's own `server/discover` result if it speaks 2026-07-28 (its answers are then passed as they
    are); None for a handshake-era server (its answers are translated)."""
    answers: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)


def find_tool(listing: Listing, name: Any) -> dict[str, Any] | None:
    answer = listing.answers.get(("tools/list", "null")) or {}
    tools = (answer.get("result") or {}).get("tools") or []
    return next((tool for tool in tools if isinstance(tool, dict) and tool.get("name") == name), None)


class ListingCache:
    def __init__(self, pool: InstancePool) -> None:
        self.pool = pool
        self._entries: OrderedDict[str, Listing] = OrderedDict()
        self._lock = anyio.Lock()  # one probe at a time: a burst of first discovers costs one instance
        self._changed: OrderedDict[str, Listing | None] = OrderedDict()
        """Episodes whose server changed a list: their own tools page (None: to fetch again)."""
        self.probes = 0
        self.refreshes = 0
        pool.list_watchers.append(self.changed)

    def changed(self, instance: Instance, method: str) -> None:
        """An instance's server announced a list change: forget what its config's lists were."""
        self.refreshes += 1
        self._entries.pop(self._key(instance.config), None)
        self._changed[instance.id] = None
        self._changed.move_to_end(instance.id)
        while len(self._changed) > MAX_CHANGED:
            self._changed.popitem(last=False)

    @staticmethod
    def _key(config: dict[str, Any]) -> str:
        return json.dumps(config, sort_keys=True, separators=(",", ":"))

    async def listing(self, config: dict[str, Any], receive: Receive) -> Listing:
        """The probe of `config`'s server (probing once if needed)."""
        return await self._listing(config, receive, None)

    async def tool(self, instance: Instance, name: Any) -> dict[str, Any] | None:
        """The tool `name` of `instance`'s server (for its `x-mcp-header` arguments): from the cached listing of
        its config, else from the instance itself (once per config)."""
        if instance.id in self._changed:  # its lists are its own now
            own = self._changed[instance.id]
            if own is None:
                seen = self.refreshes
                own = Listing(dict(instance.init_result), instance.discovered)
                own.answers[("tools/list", "null")] = await self._fetch(instance, "tools/list", None)
                if self.refreshes == seen and instance.id in self._changed:  # no change meanwhile: keep it
                    self._changed[instance.id] = own
            return find_tool(own, name)
        key = self._key(instance.config)
        listing = self._entries.get(key)
        if listing is None:
            listing = Listing(dict(instance.init_result), instance.discovered)
            listing.answers[("tools/list", "null")] = await self._fetch(instance, "tools/list", None)
            self._entries[key] = listing  # only the tools page: a discover or other list still probes
        return find_tool(listing, name)

    async def config_tool(self, config: dict[str, Any], name: Any, receive: Receive) -> dict[str, Any] | None:
        """The tool `name` as `config`'s cached listing has it: a handle-less call's `Mcp-Param-*` headers are
        checked before an instance is started for it (a request that will be refused costs no instance)."""
        listing, _ = await self.answer("tools/list", None, config, receive)
        return find_tool(listing, name)

    async def answer(self, method: str, params: Any, config: dict[str, Any], receive: Receive) -> Listing | Any:
        """(`Listing`, `{"result"}` or `{"error"}`) for a handle-less list request of `config`."""
        cursor = params.get("cursor") if isinstance(params, dict) else None
        page = (method, json.dumps(cursor))
        listing = await self._listing(config, receive, page)
        return listing, listing.answers[page]

    async def _listing(self, config: dict[str, Any], receive: Receive, page: tuple[str, str] | None) -> Listing:
        key = self._key(config)
        listing = self._entries.get(key)
        if listing is not None and (page is None or page in listing.answers) and len(listing.answers) > 1:
            self._entries.move_to_end(key)
            return listing
        async with self._lock:
            listing = self._entries.get(key)
            if listing is None or len(listing.answers) <= 1 or (page is not None and page not in listing.answers):
                listing = await self._probe(config, receive, listing, page)
                self._entries[key] = listing
                while len(self._entries) > MAX_CONFIGS:
                    self._entries.popitem(last=False)
            return listing

    async def _probe(
        self, config: dict[str, Any], receive: Receive, listing: Listing | None, page: tuple[str, str] | None
    ) -> Listing:
        try:
            instance = await start_for_request(
                self.pool, receive, None, config, protocol_version=MODERN, claim_warm=False
            )
        except CapacityError as exc:
            raise NoFreshInstance(f"no instance free to answer a handle-less listing: {exc}") from exc
        if instance is None:
            raise ClientGone("the client left while mcpsim probed the server")
        self.probes += 1
        try:
            return await self._fill(instance, listing, page)
        finally:  # its slot under --max-instances is free once it has ended: the episode after it may need it
            instance.stop()
            with anyio.CancelScope(shield=True), anyio.move_on_after(10):
                await instance.ended.wait()

    async def _fill(self, instance: Instance, listing: Listing | None, page: tuple[str, str] | None) -> Listing:
        if listing is None or len(listing.answers) <= 1:
            listing = Listing(dict(instance.init_result), instance.discovered)
            capabilities = listing.init_result.get("capabilities") or {}
            for method in LISTING_METHODS:
                if CAPABILITY_OF[method] in capabilities:
                    listing.answers[(method, "null")] = await self._fetch(instance, method, None)
                else:  # what a backend without the capability answers, without asking it
                    listing.answers[(method, "null")] = {"error": {"code": -32601, "message": "Method not found"}}
        if page is not None and page not in listing.answers:
            if len(listing.answers) >= len(LISTING_METHODS) + MAX_PAGES:
                listing.answers.pop(next(k for k in listing.answers if k[1] != "null"))
            cursor = json.loads(page[1])
            listing.answers[page] = await self._fetch(instance, page[0], None if cursor is None else {"cursor": cursor})
        return listing

    @staticmethod
    async def _fetch(instance: Instance, method: str, params: dict[str, Any] | None) -> dict[str, Any]:
        if instance.era == MODERN:
            params = {**(params or {}), "_meta": envelope()}
        reply = await ask(instance, "probe", method, params, "probe")
        if isinstance(reply, JSONRPCError):
            return {"error": reply.error.model_dump(exclude_none=True)}
        return {"result": reply.result}
