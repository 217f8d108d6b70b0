"""Translation between a 2026-07-28 client and a handshake-era backend connection: pure functions, no I/O.

Every instance's backend connection was initialized by the pool (the handshake era). A 2026-07-28 request is
served on it by translating both ways:
- in: the per-request envelope (`io.modelcontextprotocol/*` keys of `params._meta`) is what the handshake
  already settled, so it is stripped, and so is every `mcpsim/*` key (the backend never sees handles); the rest
  of `_meta` (`progressToken`, the caller's own keys) passes.
- out: the result gains what the 2026 schema requires (`resultType`, and `ttlMs`/`cacheScope` on cacheable
  results), the backend's `serverInfo` stamp and the episode's handle and URL; it is then sieved through the
  SDK's per-version result schema, which drops fields 2026 no longer has. An error `-32002` (resource not
  found, which 2026 MUST NOT emit) becomes `-32602` with `data.uri`.

`server/discover` is built from the backend's initialize result (capabilities, instructions, server info).
"""

from typing import Any

from mcp_types import (
    CLIENT_CAPABILITIES_META_KEY,
    LOG_LEVEL_META_KEY,
    PROTOCOL_VERSION_META_KEY,
    SERVER_INFO_META_KEY,
)
from mcp_types.methods import CACHEABLE_METHODS, serialize_server_result
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS
from pydantic import ValidationError

from mcpsim.wire import HANDLE_META_KEY, URL_META_KEY

ENVELOPE_PREFIX = "io.modelcontextprotocol/"
MCPSIM_PREFIX = "mcpsim/"
RESOURCE_NOT_FOUND = -32002
"""The handshake era's resource-not-found code, which 2026-07-28 replaced by -32602 with `data.uri`."""
INVALID_PARAMS = -32602
LISTING_METHODS = ("tools/list", "prompts/list", "resources/list", "resources/templates/list")
"""Handle-less, these are answered from the listing cache: lists do not depend on an episode (SEP-2567)."""


def is_modern(version_header: str | None, message: Any) -> bool:
    """Whether a POST takes the 2026-07-28 path: a version header that is not a handshake one, or (without
    any header) a non-`initialize` request carrying the envelope. Anything else stays on the handshake path."""
    if version_header is not None:
        return version_header not in HANDSHAKE_PROTOCOL_VERSIONS
    if not isinstance(message, dict) or message.get("method") in (None, "initialize"):
        return False
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    return isinstance(meta, dict) and PROTOCOL_VERSION_META_KEY in meta


def handle_in(message: dict[str, Any]) -> Any:
    """The `_meta["mcpsim/handle"]` of a request (None if absent); not checked here."""
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    return meta.get(HANDLE_META_KEY) if isinstance(meta, dict) else None


def backend_params(params: Any) -> dict[str, Any] | None:
    """The request's params as the handshake-era backend gets them: envelope and `mcpsim/*` keys removed."""
    if not isinstance(params, dict):
        return None
    out = {k: v for k, v in params.items() if k not in ("inputResponses", "requestState")}  # rounds.py's
    meta = out.pop("_meta", None)
    if isinstance(meta, dict):
        kept = {k: v for k, v in meta.items() if not k.startswith((ENVELOPE_PREFIX, MCPSIM_PREFIX))}
        if kept:
            out["_meta"] = kept
    return out


def log_level(params: Any) -> str | None:
    """The request's `_meta` logLevel: the least severe log message it wants (None: it wants none)."""
    meta = params.get("_meta") if isinstance(params, dict) else None
    level = meta.get(LOG_LEVEL_META_KEY) if isinstance(meta, dict) else None
    return level if isinstance(level, str) else None


def client_capabilities(params: Any) -> dict[str, Any]:
    """The capabilities the request's envelope declares (what an `input_required` round may ask for)."""
    meta = params.get("_meta") if isinstance(params, dict) else None
    capabilities = meta.get(CLIENT_CAPABILITIES_META_KEY) if isinstance(meta, dict) else None
    return capabilities if isinstance(capabilities, dict) else {}


def passthrough_params(params: Any) -> dict[str, Any] | None:
    """The params a 2026-07-28 backend gets: as sent, but for `mcpsim/*` keys and mcpsim's requestState wrap."""
    if not isinstance(params, dict):
        return None
    out = dict(params)
    meta = out.get("_meta")
    if isinstance(meta, dict):
        out["_meta"] = {k: v for k, v in meta.items() if not k.startswith(MCPSIM_PREFIX)}
    state = out.get("requestState")
    if isinstance(state, str) and state.startswith(STATE_PREFIX):
        out["requestState"] = state.split(".", 2)[2]
    return out


STATE_PREFIX = "mcpsim1."
"""An `input_required` result's `requestState` is wrapped as `mcpsim1.<handle>.<the server's state>`, so the
retry reaches the same instance even if the client never learnt the handle; the inner state is the server's
own (it protects it: mcpsim only routes)."""


def wrap_state(result: Any, handle: str) -> Any:
    """`result` with its `requestState` (if any) wrapped with `handle`."""
    if isinstance(result, dict) and isinstance(result.get("requestState"), str):
        return {**result, "requestState": f"{STATE_PREFIX}{handle}.{result['requestState']}"}
    return result


def state_handle(params: Any) -> str | bool | None:
    """The handle a retry's wrapped `requestState` names; None if it carries no wrapped state, False if the
    wrap is malformed (answered like a tampered state)."""
    state = params.get("requestState") if isinstance(params, dict) else None
    if not isinstance(state, str) or not state.startswith("mcpsim"):
        return None
    parts = state.split(".", 2)
    if len(parts) != 3 or parts[0] + "." != STATE_PREFIX or len(parts[1]) != 32:
        return False
    return parts[1]


def stamp(result: dict[str, Any], server_info: Any, handle: str | None, url: str | None) -> dict[str, Any]:
    """`result` with the serverInfo stamp and, for an episode, its handle and URL in `_meta`."""
    meta = dict(result.get("_meta") or {}) if isinstance(result.get("_meta"), dict) else {}
    if server_info is not None:
        meta[SERVER_INFO_META_KEY] = server_info
    if handle is not None:
        meta[HANDLE_META_KEY] = handle
    if handle is not None and url is not None:  # over stdio an episode has no URL
        meta[URL_META_KEY] = url
    return {**result, "_meta": meta}


def modern_result(
    method: str, result: Any, server_info: Any, handle: str | None = None, url: str | None = None
) -> dict[str, Any]:
    """A handshake-era `result` of `method` as a 2026-07-28 result (see the module docstring)."""
    data = dict(result) if isinstance(result, dict) else {}
    data.setdefault("resultType", "complete")
    if method in CACHEABLE_METHODS:
        data.setdefault("ttlMs", 0)  # a translated backend says nothing about caching: do not cache
        data.setdefault("cacheScope", "private")
    data = stamp(data, server_info, handle, url)
    try:
        return serialize_server_result(method, MODERN_PROTOCOL_VERSIONS[-1], data)
    except (KeyError, ValueError, ValidationError):  # a method the schema lacks, or a result it rejects: as is
        return data


def modern_error(error: dict[str, Any], params: Any) -> dict[str, Any]:
    """A backend's JSON-RPC error as 2026-07-28 allows it (-32002 becomes -32602 naming the URI)."""
    if error.get("code") == RESOURCE_NOT_FOUND:
        uri = params.get("uri") if isinstance(params, dict) else None
        data = error.get("data") if isinstance(error.get("data"), dict) else {}
        return {**error, "code": INVALID_PARAMS, "data": {**data, "uri": uri}}
    return error


def discover_result(init_result: dict[str, Any]) -> dict[str, Any]:
    """The `server/discover` answer of a handshake-era backend, from its initialize result."""
    data: dict[str, Any] = {
        "supportedVersions": list(MODERN_PROTOCOL_VERSIONS),
        "capabilities": init_result.get("capabilities") or {},
    }
    if isinstance(init_result.get("instructions"), str):
        data["instructions"] = init_result["instructions"]
    return modern_result("server/discover", data, init_result.get("serverInfo"))
