"""Newline-delimited JSON-RPC framing for stdio peers, on the SDK's own message models, with a size bound.

The SDK's `stdio_client` owns process creation, but the pool must own it (process groups, parent-death signal,
stderr drained into the log), so the pool reads and writes the pipes itself and only needs these conversions.
They use the same adapter and dump options as the SDK's stdio transports, so the bytes on the wire are the ones
an SDK client would send.

Lines are bounded (`--max-message-bytes`): a line over the limit is read through and dropped without ever being
held whole, and reported as a `MessageTooLarge` carrying the request id found at its start (SDK peers write
`{"jsonrpc":"2.0","id":...` first), so only the request it answered fails; the connection goes on.
"""

import asyncio
import re

from mcp.shared.message import SessionMessage
from mcp.types import RequestId, jsonrpc_message_adapter

from mcpsim.errors import MessageTooLarge

_ID_SNIFF_BYTES = 4096
_ID_AT_START = re.compile(rb'"id"\s*:\s*(-?\d{1,18}|"(?:[^"\\]|\\.){0,256}")')


def decode_line(line: bytes) -> SessionMessage | Exception:
    """One line from a peer; a line that is not a JSON-RPC message becomes the error, not a crash."""
    try:
        return SessionMessage(jsonrpc_message_adapter.validate_json(line, by_name=False))
    except ValueError as exc:
        return exc
    except RecursionError:
        return ValueError("the message is nested too deeply to parse")


def encode_message(message: SessionMessage) -> bytes:
    return message.message.model_dump_json(by_alias=True, exclude_unset=True).encode() + b"\n"


def sniff_request_id(head: bytes) -> RequestId | None:
    """The `id` member near the start of a JSON-RPC message, without parsing the (possibly huge) rest."""
    match = _ID_AT_START.search(head[:_ID_SNIFF_BYTES])
    if match is None:
        return None
    raw = match.group(1)
    if raw.startswith(b'"'):
        return raw[1:-1].decode(errors="replace")
    return int(raw)


async def read_line(reader: asyncio.StreamReader, limit: int) -> bytes | MessageTooLarge:
    """The next line of `reader` (its `limit` must be `limit`); raises `asyncio.IncompleteReadError` at EOF.

    A line over the limit is consumed chunk by chunk and dropped, so memory stays bounded by the limit.
    """
    try:
        return await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError as exc:
        head = await reader.readexactly(exc.consumed)
    size = len(head)
    while True:
        try:
            size += len(await reader.readuntil(b"\n"))
            return MessageTooLarge(size, limit, sniff_request_id(head))
        except asyncio.LimitOverrunError as exc:
            size += len(await reader.readexactly(exc.consumed))
