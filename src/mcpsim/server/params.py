"""Seed and config of a new instance, as a client gives them (query string or JSON body), validated.

A seed is an integer in [0, 2**63); a config is a JSON object. Both reach the child only as values (the seed
in its `{seed}` argument and `MCPSIM_SEED`, the config as the one variable `MCPSIM_CONFIG`), never as text
spliced into a command line.
"""

import json
from typing import Any

from mcp.types import INVALID_PARAMS

from mcpsim.pool.seeds import MAX_SEED
from mcpsim.server.http_errors import HTTPRejection


def parse_seed(raw: Any) -> int | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        raise HTTPRejection(400, f"invalid seed {raw!r}: must be an integer", INVALID_PARAMS)
    if isinstance(raw, str):
        text = raw.strip()
        if not (text.isascii() and text.isdigit()):
            raise HTTPRejection(400, f"invalid seed {raw[:40]!r}: must be a non-negative integer", INVALID_PARAMS)
        raw = int(text)
    if not isinstance(raw, int) or not 0 <= raw <= MAX_SEED:
        raise HTTPRejection(400, f"invalid seed {str(raw)[:40]!r}: must be an integer in [0, 2**63)", INVALID_PARAMS)
    return raw


def parse_config(raw: Any) -> dict[str, Any]:
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise HTTPRejection(400, f"invalid config: not JSON ({exc})", INVALID_PARAMS) from None
    if not isinstance(raw, dict):
        raise HTTPRejection(400, f"invalid config: must be a JSON object, got {type(raw).__name__}", INVALID_PARAMS)
    return raw
