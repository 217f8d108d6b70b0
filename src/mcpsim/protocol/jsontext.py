"""Untrusted JSON text (one line of a recording, a file a user points us at) parsed without crashing the reader.

`json.loads` recurses in C and gives up with `RecursionError` on a line nested ~1000 deep, and raises a bare
`ValueError` (not a `JSONDecodeError`) for an integer of more than 4300 digits; both used to escape readers
that only expected `JSONDecodeError`. pydantic-core's parser, the one the MCP SDK reads every message with,
bounds nesting at `MAX_DEPTH` without Python recursion and refuses over-long integers, always as a
`ValueError` with the column. `NaN` and `Infinity` are accepted, as Python writes them.
"""

from typing import Any

import pydantic_core

from mcpsim.errors import JsonTextError

MAX_DEPTH = 200
"""Nesting depth (arrays and objects) pydantic-core's parser allows; deeper text is refused."""


def parse_json_text(text: str | bytes) -> Any:
    """The value of one JSON text (a single line, as in JSONL files); raises `JsonTextError`."""
    try:
        return pydantic_core.from_json(text)
    except ValueError as exc:
        raise JsonTextError(_reason(str(exc))) from None


def _reason(text: str) -> str:
    text = text.replace(" at line 1 column ", " at column ")
    if text.startswith("recursion limit exceeded"):
        return f"nested more than {MAX_DEPTH} levels deep ({text})"
    if text.startswith("number out of range"):
        return f"a number too large to read, over 4300 digits ({text})"
    return text
