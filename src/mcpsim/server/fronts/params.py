"""The config of a new instance, as a client gives it (query string or JSON body), validated.

A config is a JSON object of at most `MAX_CONFIG_BYTES` (compact JSON) nested at most `MAX_CONFIG_DEPTH` deep
(the seed beside it is `mcpsim.wire.parse_seed`'s). Both reach the child only as values (the seed in its `{seed}`
argument and `MCPSIM_SEED`, the config as the one variable `MCPSIM_CONFIG`), never as text spliced into a command
line. The bounds keep one request from failing a spawn (the kernel refuses an environment string over 128 KiB)
or exhausting the parser, which would otherwise show as a server error.
"""

import json
from typing import Any

from mcpsim.errors import ConfigTooLarge, InvalidParams, JsonTextError
from mcpsim.protocol.jsontext import parse_json_text

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
