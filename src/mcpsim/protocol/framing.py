"""Newline-delimited JSON-RPC framing for stdio backends, on the SDK's own message models.

The SDK's `stdio_client` owns process creation, but the pool must own it (process groups, parent-death signal,
stderr drained into the log), so the pool reads and writes the pipes itself and only needs these two
conversions. They use the same adapter and dump options as the SDK's stdio transports, so the bytes on the
wire are the ones an SDK client would send.
"""

from mcp.shared.message import SessionMessage
from mcp.types import jsonrpc_message_adapter


def decode_line(line: bytes) -> SessionMessage | Exception:
    """One line from a server's stdout; a line that is not a JSON-RPC message becomes the error, not a crash."""
    try:
        return SessionMessage(jsonrpc_message_adapter.validate_json(line, by_name=False))
    except ValueError as exc:
        return exc


def encode_message(message: SessionMessage) -> bytes:
    return message.message.model_dump_json(by_alias=True, exclude_unset=True).encode() + b"\n"
