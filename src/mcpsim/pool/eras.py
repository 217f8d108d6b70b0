"""Opening a backend connection in the 2026-07-28 era when the server speaks it, as the SDK client's `auto` does.

An instance asked for at 2026-07-28 (by a 2026 client's handle-less request) sends `server/discover` first, with
the per-request envelope. A server that answers it speaks the stateless revision, and the instance's connection
stays in that era (a stdio process is locked to the era of its first request): mcpsim then passes 2026 requests
through, envelope included, and the server's own `input_required` results, `ttlMs` and `serverInfo` reach the
client unchanged. Any error means a handshake-era server: the pool initializes it on the same connection, and
the modern front translates. Stdio and streamable-HTTP backends are probed (an HTTP backend gets the 2026
routing headers per message, `modern_headers`); SSE backends speak only the handshake era.
"""

from typing import Any

from mcp.shared.inbound import (
    MCP_METHOD_HEADER,
    MCP_NAME_HEADER,
    MCP_PROTOCOL_VERSION_HEADER,
    NAME_BEARING_METHODS,
    encode_header_value,
)
from mcp.shared.message import ClientMessageMetadata
from mcp_types import (
    CLIENT_CAPABILITIES_META_KEY,
    CLIENT_INFO_META_KEY,
    PROTOCOL_VERSION_META_KEY,
    SERVER_INFO_META_KEY,
)
from mcp_types.version import LATEST_HANDSHAKE_VERSION, MODERN_PROTOCOL_VERSIONS

from mcpsim.errors import BackendError
from mcpsim.protocol.mux import Multiplexer
from mcpsim.wire import VERSION

MODERN = MODERN_PROTOCOL_VERSIONS[-1]


def envelope(capabilities: Any = None) -> dict[str, Any]:
    """The `_meta` envelope of mcpsim's own 2026-07-28 requests."""
    return {
        PROTOCOL_VERSION_META_KEY: MODERN,
        CLIENT_CAPABILITIES_META_KEY: capabilities or {},
        CLIENT_INFO_META_KEY: {"name": "mcpsim", "version": VERSION},
    }


def is_modern(protocol_version: str) -> bool:
    return protocol_version in MODERN_PROTOCOL_VERSIONS


def wants_modern(protocol_version: str, transport: str) -> bool:
    return protocol_version in MODERN_PROTOCOL_VERSIONS and transport in ("stdio", "http")


def modern_headers(method: str, params: Any, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The HTTP headers a 2026-07-28 POST of `method` carries (`MCP-Protocol-Version`, `Mcp-Method`,
    `Mcp-Name`), plus `extra` (the client's `Mcp-Param-*` headers, which the server checks itself)."""
    headers = {MCP_PROTOCOL_VERSION_HEADER: MODERN, MCP_METHOD_HEADER: method}
    key = NAME_BEARING_METHODS.get(method)
    name = params.get(key) if key is not None and isinstance(params, dict) else None
    if isinstance(name, str):
        headers[MCP_NAME_HEADER] = encode_header_value(name)
    return {**headers, **(extra or {})}


def metadata_for(transport: str, method: str, params: Any, extra: dict[str, str] | None = None) -> Any:
    """What a 2026-07-28 request to a backend carries besides its body: headers over HTTP, nothing on stdio."""
    if transport != "http":
        return None
    return ClientMessageMetadata(headers=modern_headers(method, params, extra))


def handshake_version(protocol_version: str) -> str:
    """The version offered in `initialize`: the client's own, or the latest handshake one for a 2026 client."""
    return LATEST_HANDSHAKE_VERSION if protocol_version in MODERN_PROTOCOL_VERSIONS else protocol_version


async def discover(mux: Multiplexer, transport: str) -> dict[str, Any] | None:
    """The server's `server/discover` result if it serves 2026-07-28, else None (then initialize it)."""
    try:
        params = {"_meta": envelope()}
        result = await mux.request("server/discover", params, metadata_for(transport, "server/discover", params))
    except BackendError:
        return None
    versions = result.get("supportedVersions")
    if not isinstance(versions, list) or MODERN not in versions:
        return None
    return result


def as_init_result(discovered: dict[str, Any]) -> dict[str, Any]:
    """A discover result in the shape of an initialize result (what listings and the dashboard read)."""
    meta = discovered.get("_meta") if isinstance(discovered.get("_meta"), dict) else {}
    answer = {
        "protocolVersion": MODERN,
        "capabilities": discovered.get("capabilities") or {},
        "serverInfo": meta.get(SERVER_INFO_META_KEY) or {"name": "unknown", "version": ""},
    }
    if isinstance(discovered.get("instructions"), str):
        answer["instructions"] = discovered["instructions"]
    return answer
