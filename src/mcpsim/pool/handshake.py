"""Opening a server the way its client would, in the client's revision.

A 2026-07-28 episode first asks `server/discover` (pool/eras.py); a server that answers is opened without a
handshake. Everything else is initialized: the pool declares the client capabilities it forwards (sampling,
elicitation; roots too for a 2026 client, whose roots/list becomes an input_required round), and, until the
pool has seen some `tools/list` answer, asks for the tool list once so the metrics know the declared tool names
before the first call. Kept apart from `instance.py`, which owns the process and connection this runs over.
"""

from dataclasses import dataclass
from typing import Any

import anyio

from mcpsim.errors import BackendError
from mcpsim.pool import eras
from mcpsim.pool.spec import ContextLog, InstanceSpec
from mcpsim.protocol.mux import Multiplexer
from mcpsim.wire import VERSION

HANDSHAKE_CAPABILITIES: dict[str, Any] = {"sampling": {}, "elicitation": {}}
"""What the pool declares for the client behind it, so the server may send these requests (they are forwarded)."""
MODERN_CLIENT_EXTRA: dict[str, Any] = {"roots": {}}
"""Declared too for an instance opened for a 2026-07-28 client: its roots/list becomes an input_required round."""
TOOLS_PROBE_TIMEOUT = 5.0
"""Seconds the handshake's own `tools/list` may take; past that the instance is ready without it."""


@dataclass
class Opened:
    """What opening the server gave: the result a client's `initialize` is answered with, the revision its
    connection speaks, the `server/discover` result (2026-07-28 only), or why it failed."""

    init_result: dict[str, Any]
    era: str | None = None
    discovered: dict[str, Any] | None = None
    refusal: str | None = None


async def open_server(mux: Multiplexer, spec: InstanceSpec, transport: str, log: ContextLog) -> Opened:
    if eras.wants_modern(spec.protocol_version, transport):
        discovered = await eras.discover(mux, transport)
        if discovered is not None:
            return Opened(eras.as_init_result(discovered), eras.MODERN, discovered)
    extra = MODERN_CLIENT_EXTRA if eras.is_modern(spec.protocol_version) else {}
    params = {
        "protocolVersion": eras.handshake_version(spec.protocol_version),
        "capabilities": HANDSHAKE_CAPABILITIES | extra,
        "clientInfo": spec.client_info or {"name": "mcpsim", "version": VERSION},
    }
    try:
        init_result = await mux.request("initialize", params)  # bounded by the startup timeout
    except BackendError as exc:
        return Opened({}, refusal=mux.closed_reason or f"the server refused initialize: {exc.message}")
    await mux.notify("notifications/initialized")
    capabilities = init_result.get("capabilities")
    if isinstance(capabilities, dict) and "tools" in capabilities and spec.tools.should_ask():
        with anyio.move_on_after(TOOLS_PROBE_TIMEOUT):
            try:
                await mux.request("tools/list")  # the stats learn the names from the answer
            except BackendError as exc:
                log.debug("tools/list refused: %s", exc, extra={"event": "instance.tools_unlisted"})
    return Opened(init_result, str(init_result.get("protocolVersion")))
