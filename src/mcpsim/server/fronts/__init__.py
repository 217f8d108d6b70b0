"""The fronts: where clients reach instances. Each turns requests into instances and bridges them (`proxy.py`).

- `sessions.py`: `/mcp`, one instance per streamable-HTTP session. `handles.py`: `/envs/{id}/mcp`, a stateless
  handle to one instance. `sse.py`: `/sse` + `/messages/`, the legacy transport. `stdio.py`: `mcpsim serve
  --stdio`. `api.py`: `/api/instances`, start, announce, list and end over plain JSON. `control.py`:
  `/control/*`, an eval-protocol server's control plane, forwarded to the session's instance.
- `starts.py` (a start abandoned by its client leaves nothing), `params.py` (the config of a request),
  `bodies.py` (bounded body reading, JSON parsing).
- `modern.py`: the 2026-07-28 core (episodes addressed by handles) and its HTTP adapter for `/mcp` and
  `/envs/{handle}/mcp`, with `stateless.py` (what the core takes and gives, without ASGI), `replies.py` (its
  frames as JSON or SSE), `calls.py` (the frames of a call or a round), `stdio_translated.py` (the core for a
  2026 stdio client of a handshake-only server), `translate.py` (one request and its answer in each era),
  `exchange.py` (one request to an instance), `listings.py` (handle-less discover and lists, from one probe per
  config), `rounds.py` (`input_required`), `listen.py` (`subscriptions/listen`).
"""

from typing import TYPE_CHECKING

from mcpsim.faces import lazy_names

if TYPE_CHECKING:
    from mcpsim.server.fronts.api import api_routes, describe
    from mcpsim.server.fronts.control import control_routes
    from mcpsim.server.fronts.handles import HandleFront
    from mcpsim.server.fronts.modern import ModernFront
    from mcpsim.server.fronts.sessions import SessionFront
    from mcpsim.server.fronts.sse import SseFront
    from mcpsim.server.fronts.stdio import serve_stdio

__all__ = [
    "HandleFront",
    "ModernFront",
    "SessionFront",
    "SseFront",
    "api_routes",
    "control_routes",
    "describe",
    "serve_stdio",
]

__getattr__ = lazy_names(
    __name__,
    {
        "api_routes": "api",
        "describe": "api",
        "control_routes": "control",
        "HandleFront": "handles",
        "ModernFront": "modern",
        "SessionFront": "sessions",
        "SseFront": "sse",
        "serve_stdio": "stdio",
    },
)
