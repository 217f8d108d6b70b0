"""The config of a new instance, as a client gives it (query string or JSON body), validated.

A config is a JSON object of at most `MAX_CONFIG_BYTES` (compact JSON) nested at most `MAX_CONFIG_DEPTH` deep
(the seed beside it is `mcpsim.wire.parse_seed`'s). Both reach the child only as values (the seed in its `{seed}`
argument and `MCPSIM_SEED`, the config as the one variable `MCPSIM_CONFIG`), never as text spliced into a command
line. The bounds keep one request from failing a spawn (the kernel refuses an environment string over 128 KiB)
or exhausting the parser, which would otherwise show as a server error.

Where they come from, first match wins per value: the query string (`/mcp?seed=42&config=...`), then extra
fields of the `initialize` request's `clientInfo` (`seed`, `config`, and `session_id`: the client's own key for
its episode, else the key reward-kit derives from seed and config, see `derived_key`), which is how
eval-protocol and reward-kit clients send them. Those clients build
`clientInfo` with pydantic, so the extras arrive either as plain fields or nested under `_extra`; both are read.
A query string with a trailing `/` (`/mcp?seed=42/`, as clients that append `/` to the URL send it) loses it.
"""

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from mcpsim.errors import ConfigTooLarge, InvalidParams, InvalidSeed, JsonTextError
from mcpsim.protocol.jsontext import parse_json_text
from mcpsim.wire import parse_seed

MAX_CONFIG_BYTES = 64 * 1024
"""Largest config, as compact JSON."""
MAX_CONFIG_DEPTH = 64
"""Deepest nesting of objects and lists in a config."""


def parse_config(raw: Any) -> dict[str, Any]:
    """A config from a query string (JSON text) or a JSON body (a value); `{}` for none."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str):
        if len(raw) > 4 * MAX_CONFIG_BYTES:
            raise ConfigTooLarge(f"config larger than {MAX_CONFIG_BYTES} bytes")
        try:
            raw = parse_json_text(raw)
        except JsonTextError as exc:
            raise InvalidParams(f"invalid config: not JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise InvalidParams(f"invalid config: must be a JSON object, got {type(raw).__name__}")
    if _depth(raw) > MAX_CONFIG_DEPTH:
        raise InvalidParams(f"invalid config: nested deeper than {MAX_CONFIG_DEPTH} levels")
    size = len(json.dumps(raw, separators=(",", ":")))
    if size > MAX_CONFIG_BYTES:
        raise ConfigTooLarge(f"config of {size} bytes is larger than {MAX_CONFIG_BYTES} bytes")
    return raw


def _depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value, without recursion (a hostile value may be nested very deeply)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


CLIENT_INFO_FIELDS = frozenset({"name", "title", "version", "websiteUrl", "icons", "description"})
"""The fields the MCP schema defines for `clientInfo`; any other is an extra (a hint for the environment)."""
MAX_CLIENT_KEY_LENGTH = 256
"""Longest client session key (`clientInfo.session_id`) kept; a longer one is ignored."""


@dataclass(frozen=True)
class StartParams:
    """What a new session asks of its instance: seed (None: random), config, and the client's own session key."""

    seed: int | None
    config: dict[str, Any]
    client_key: str | None = None
    client_info: dict[str, Any] | None = None
    """The client's `clientInfo` when it carries extras: the instance's server is initialized with it, so it sees
    the same hints (and the same key) as it would if the client spoke to it alone."""


def query_values(query_string: bytes) -> dict[str, str]:
    """The query string's values (the last one of a repeated name), a trailing `/` of the whole string dropped."""
    text = query_string.decode("latin-1").rstrip("/")
    return dict(parse_qsl(text, keep_blank_values=True))


def client_info_extras(params: Mapping[str, Any]) -> dict[str, Any]:
    """The extra fields of `initialize`'s `clientInfo`, plain ones over those nested under `_extra`."""
    info = params.get("clientInfo")
    if not isinstance(info, dict):
        return {}
    nested = info.get("_extra")
    extras = dict(nested) if isinstance(nested, dict) else {}
    extras.update({key: value for key, value in info.items() if key not in CLIENT_INFO_FIELDS and key != "_extra"})
    return extras


def start_params(query: Mapping[str, str], initialize_params: Mapping[str, Any] | None = None) -> StartParams:
    """Seed and config from the query string, else from `clientInfo` extras; `InvalidSeed`/`InvalidParams` naming
    where a bad value came from."""
    extras = client_info_extras(initialize_params or {})
    seed = parse_seed(query.get("seed"))
    if seed is None and extras.get("seed") is not None:
        try:
            seed = parse_seed(extras["seed"])
        except InvalidSeed as exc:
            raise InvalidSeed(f"clientInfo: {exc}") from None
    if query.get("config"):
        config = parse_config(query["config"])
    else:
        try:
            config = parse_config(extras.get("config"))
        except InvalidParams as exc:
            raise type(exc)(f"clientInfo: {exc}") from None
    info = initialize_params.get("clientInfo") if extras and initialize_params else None
    info = info if isinstance(info, dict) else None
    key = extras.get("session_id")
    if key is None and info is not None and ("seed" in extras or "config" in extras):
        key = derived_key(info, extras)
    key = key if isinstance(key, str) and 0 < len(key) <= MAX_CLIENT_KEY_LENGTH else None
    return StartParams(seed, config, key, info)


def derived_key(info: Mapping[str, Any], extras: Mapping[str, Any]) -> str:
    """The session key a client that sends no `session_id` uses (reward-kit 0.4): the MD5 of its seed, config,
    name and version as sorted JSON, which its servers compute from the same `clientInfo`."""
    stable = {
        "seed": extras.get("seed"),
        "config": extras.get("config", {}),
        "name": info.get("name"),
        "version": info.get("version"),
    }
    return hashlib.md5(json.dumps(stable, sort_keys=True).encode(), usedforsecurity=False).hexdigest()
