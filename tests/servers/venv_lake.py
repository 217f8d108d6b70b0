"""FrozenLake from an isolated venv (gymnasium and the SDK installed there, mcpsim not): for the
`--isolation venv --sandbox` test. `where` tells which interpreter runs it and whether its prefix is writable."""

import json
import sys
from pathlib import Path

import gymnasium
from mcp.server.mcpserver import MCPServer

ACTIONS = {"LEFT": 0, "DOWN": 1, "RIGHT": 2, "UP": 3}
seed = int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else 0
env = gymnasium.make("FrozenLake-v1", map_name="4x4", is_slippery=True)
env.reset(seed=seed)
server = MCPServer("venv-lake", log_level="WARNING")


@server.tool()
def lake_move(action: str) -> str:
    """One step: LEFT, DOWN, RIGHT or UP (slippery, so the seed decides where it lands)."""
    state, reward, terminated, truncated, _ = env.step(ACTIONS[action])
    return json.dumps({"state": int(state), "reward": float(reward), "done": bool(terminated or truncated)})


@server.tool()
def where() -> str:
    """The interpreter's prefix, and what writing a file into it does."""
    try:
        (Path(sys.prefix) / "mcpsim-venv-write-test").write_text("x")
        written = "written"
    except OSError as exc:
        written = f"refused: {exc.strerror}"
    return json.dumps({"prefix": sys.prefix, "write": written})


if __name__ == "__main__":
    server.run("stdio")
