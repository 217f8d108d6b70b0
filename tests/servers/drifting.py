"""A production-style MCP server that is deterministic for a seed until step `drift_at`, then is not.

For the determinism audit: `advance(steps)` moves a counter and reports it; from step `drift_at` (config key,
default 3) on, the observation also carries fresh random bytes, as a server that seeds from the clock would.
"""

import json
import os

from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, TextContent
from pydantic import Field

seed = int(os.environ.get("MCPSIM_SEED", "0"))
config = json.loads(os.environ.get("MCPSIM_CONFIG") or "{}")
drift_at = int(config.get("drift_at", 3))
state = {"position": seed % 7, "step": 0}
server = MCPServer("drifting", log_level="WARNING")


@server.tool()
def advance(steps: int = Field(ge=1, le=3)) -> CallToolResult:
    """Move forward 1 to 3 steps."""
    state["position"] += steps
    state["step"] += 1
    text = f"position {state['position']}"
    if state["step"] >= drift_at:
        text += f" weather {os.urandom(4).hex()}"
    reward = 1.0 if state["position"] % 5 == 0 else 0.0
    done = state["position"] >= 30
    meta = {"mcpsim": {"reward": reward, "terminated": done, "truncated": False, "step": state["step"]}}
    return CallToolResult(content=[TextContent(type="text", text=text)], _meta=meta)


@server.resource("game://initial_state", name="initial_state")
def initial_state() -> str:
    return f"position {seed % 7}"


if __name__ == "__main__":
    server.run("stdio")
