"""Seed and config of a new instance, as a client gives them (query string or JSON body), validated.

A seed is an integer in [0, 2**63); a config is a JSON object of at most `MAX_CONFIG_BYTES` (compact JSON)
nested at most `MAX_CONFIG_DEPTH` deep. Both reach the child only as values (the seed in its `{seed}` argument
and `MCPSIM_SEED`, the config as the one variable `MCPSIM_CONFIG`), never as text spliced into a command line.
The bounds keep one request from failing a spawn (the kernel refuses an environment string over 128 KiB) or
exhausting the parser, which would otherwise show as a server error.
"""

import json
from typing import Any

from mcp.types import INVALID_PARAMS

from mcpsim.pool.seeds import MAX_SEED
from mcpsim.server.http_errors import HTTPRejection

MAX_CONFIG_BYTES = 64 * 1024
"""Largest config, as compact JSON."""
MAX_CONFIG_DEPTH = 64
"""Deepest nesting of objects and lists in a config."""
_MAX_SEED_DIGITS = len(str(MAX_SEED))


def parse_seed(raw: Any) -> int | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        raise HTTPRejection(400, f"invalid seed {raw!r}: must be an integer", INVALID_PARAMS)
    if isinstance(raw, str):
        text = raw.strip()
        if not (text.isascii() and text.isdigit()):
            raise HTTPRejection(400, f"invalid seed {raw[:40]!r}: must be a non-negative integer", INVALID_PARAMS)
        if len(text.lstrip("0")) > _MAX_SEED_DIGITS:  # before int(): Python refuses to convert 4301+ digits
            raise HTTPRejection(400, f"invalid seed {text[:40]!r}...: must be an integer in [0, 2**63)", INVALID_PARAMS)
        raw = int(text)
    if not isinstance(raw, int) or not 0 <= raw <= MAX_SEED:
        shown = repr(raw)[:40] if not isinstance(raw, int) else f"with {raw.bit_length()} bits"
        raise HTTPRejection(400, f"invalid seed {shown}: must be an integer in [0, 2**63)", INVALID_PARAMS)
    return raw


def parse_config(raw: Any) -> dict[str, Any]:
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str):
        if len(raw) > 4 * MAX_CONFIG_BYTES:
            raise HTTPRejection(413, f"config larger than {MAX_CONFIG_BYTES} bytes", INVALID_PARAMS)
        try:
            raw = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            why = f"not JSON ({exc})" if isinstance(exc, ValueError) else "nested too deeply"
            raise HTTPRejection(400, f"invalid config: {why}", INVALID_PARAMS) from None
    if not isinstance(raw, dict):
        raise HTTPRejection(400, f"invalid config: must be a JSON object, got {type(raw).__name__}", INVALID_PARAMS)
    if _depth(raw) > MAX_CONFIG_DEPTH:
        raise HTTPRejection(400, f"invalid config: nested deeper than {MAX_CONFIG_DEPTH} levels", INVALID_PARAMS)
    size = len(json.dumps(raw, separators=(",", ":")))
    if size > MAX_CONFIG_BYTES:
        raise HTTPRejection(413, f"config of {size} bytes is larger than {MAX_CONFIG_BYTES} bytes", INVALID_PARAMS)
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
