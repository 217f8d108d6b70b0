"""The fronts: where clients reach instances. Each turns requests into instances and bridges them (`proxy.py`).

- `sessions.py`: `/mcp`, one instance per streamable-HTTP session. `handles.py`: `/envs/{id}/mcp`, a stateless
  handle to one instance. `sse.py`: `/sse` + `/messages/`, the legacy transport. `stdio.py`: `mcpsim serve
  --stdio`. `api.py`: `/api/instances`, start, announce, list and end over plain JSON.
- `starts.py` (a start abandoned by its client leaves nothing), `params.py` (the config of a request),
  `bodies.py` (bounded body reading, JSON parsing).
"""

from mcpsim.server.fronts.api import api_routes, describe
from mcpsim.server.fronts.handles import HandleFront
from mcpsim.server.fronts.sessions import SessionFront
from mcpsim.server.fronts.sse import SseFront
from mcpsim.server.fronts.stdio import serve_stdio

__all__ = ["HandleFront", "SessionFront", "SseFront", "api_routes", "describe", "serve_stdio"]
