"""The protocol layer: JSON-RPC messages as mcpsim handles them, below processes and the pool.

- `framing.py`: newline-delimited JSON-RPC for stdio peers, bounded lines.
- `mux.py`: `Multiplexer`, one server connection shared by client channels (ids, progress, deadlines).
- `channels.py`: what the multiplexer talks to: `Channel` (a client endpoint), `MuxObserver` (metrics hooks).
- `messages.py`: the error answers mcpsim sends, message kinds, the checks of peers' ids and results.
- `jsontext.py`: untrusted JSON text parsed within bounds (recordings, request bodies, datasets).
"""

from typing import TYPE_CHECKING

from mcpsim.faces import lazy_names

if TYPE_CHECKING:
    from mcpsim.protocol.channels import Channel, MuxObserver
    from mcpsim.protocol.framing import decode_line, encode_message, read_line
    from mcpsim.protocol.jsontext import parse_json_text
    from mcpsim.protocol.messages import IncomingMessages, OutgoingMessages, error_message
    from mcpsim.protocol.mux import Multiplexer

__all__ = [
    "Channel",
    "IncomingMessages",
    "Multiplexer",
    "MuxObserver",
    "OutgoingMessages",
    "decode_line",
    "encode_message",
    "error_message",
    "parse_json_text",
    "read_line",
]

__getattr__ = lazy_names(
    __name__,
    {
        "decode_line": "framing",
        "encode_message": "framing",
        "read_line": "framing",
        "parse_json_text": "jsontext",
        "IncomingMessages": "messages",
        "OutgoingMessages": "messages",
        "error_message": "messages",
        "Channel": "channels",
        "Multiplexer": "mux",
        "MuxObserver": "channels",
    },
)
