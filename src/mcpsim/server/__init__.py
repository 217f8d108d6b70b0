"""The managed simulation server (`mcpsim serve`): an MCP server whose every session is its own instance.

- `config.py`: `ServeConfig`. `app.py`: `create_app`, the Starlette app and its lifespan. `run.py`: `serve`
  (foreground) and `running` (in the background of a program, yields the URL).
- `fronts/`: `/mcp`, `/envs/{id}/mcp`, `/sse`, stdio and `/api/instances`. `proxy.py`: a client connection bridged
  to its instance.
- `edge.py`: the one place mcpsim's errors become HTTP statuses, JSON-RPC codes and bodies.
- `auth.py` (the access guard: tokens, loopback `Host`, same `Origin`) and `principals.py` (who may see what).
- `ops/`: health, metrics, resources, logs, the dashboard, and the trajectory viewer (`mcpsim view`).

The faces of `server`, `server.fronts` and `server.ops` import on first use (`mcpsim.faces`).
"""

from typing import TYPE_CHECKING

from mcpsim.faces import lazy_names

if TYPE_CHECKING:
    from mcpsim.server.app import create_app
    from mcpsim.server.config import ServeConfig
    from mcpsim.server.run import running, serve

__all__ = [
    "ServeConfig",
    "create_app",
    "running",
    "serve",
]

__getattr__ = lazy_names(
    __name__,
    {
        "create_app": "app",
        "ServeConfig": "config",
        "running": "run",
        "serve": "run",
    },
)
