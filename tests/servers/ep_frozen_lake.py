"""A FrozenLake server written to eval-protocol's conventions (its `McpGym` servers'), for the interop tests.

eval-protocol's own bundled FrozenLake server needs gymnasium and imports all of eval-protocol (litellm
included: about 5 s, and seen failing in concurrent starts), so this one follows its documented contract
instead, on the same SDK (FastMCP of the `mcp` 1.x that eval-protocol pins; it runs in the eval-protocol venv):

- tool `lake_move(action)` with `LEFT|DOWN|RIGHT|UP`; its result holds the observation only:
  `{"position", "grid", "action"}` as JSON text;
- the control plane on the same port, keyed by the `mcp-session-id` header, whose value is the client's own key
  (the `session_id` it put in `clientInfo`, plain or under `_extra`):
  `GET /control/initial_state` -> `{"position", "grid"}`; `GET /control/reward` -> `{"reward", "step_count"}`;
  `GET /control/status` -> `{"terminated", "truncated", "step_count", "total_reward"}`;
  `POST /control/reset_session` `{"seed": n}` -> a fresh episode for that key;
- the map comes from `--seed` (mcpsim's `{seed}`), its size from `MCPSIM_CONFIG`'s `map_size` (default 4).

`generate_map` is standard library only, so the tests import it to know the map a seed must give.

Run: `python ep_frozen_lake.py --port P --seed N`.
"""

import argparse
import hashlib
import json
import os
import random
from typing import Any

MOVES = {"LEFT": (0, -1), "DOWN": (1, 0), "RIGHT": (0, 1), "UP": (-1, 0)}


def generate_map(seed: int, size: int = 4) -> list[str]:
    """A `size` x `size` lake (S start, G goal, H holes, F ice) from `seed`, always with a path from S to G."""
    rng = random.Random(seed)
    while True:
        grid = [["H" if rng.random() < 0.2 else "F" for _ in range(size)] for _ in range(size)]
        grid[0][0], grid[-1][-1] = "S", "G"
        rows = ["".join(row) for row in grid]
        if shortest_path(rows) is not None:
            return rows


def shortest_path(rows: list[str]) -> list[str] | None:
    """The moves of a shortest safe path from S to G (breadth first), or None."""
    size = len(rows)
    frontier, seen = [((0, 0), [])], {(0, 0)}
    while frontier:
        next_frontier = []
        for (r, c), path in frontier:
            if rows[r][c] == "G":
                return path
            for name, (dr, dc) in MOVES.items():
                nr, nc = r + dr, c + dc
                if 0 <= nr < size and 0 <= nc < size and (nr, nc) not in seen and rows[nr][nc] != "H":
                    seen.add((nr, nc))
                    next_frontier.append(((nr, nc), [*path, name]))
        frontier = next_frontier
    return None


class Episode:
    def __init__(self, seed: int, size: int) -> None:
        self.rows = generate_map(seed, size)
        self.position = (0, 0)
        self.steps = 0
        self.reward = 0.0
        self.total_reward = 0.0
        self.terminated = False

    def observe(self) -> dict[str, Any]:
        r, c = self.position
        size = len(self.rows)
        return {"position": r * size + c, "grid": "\n".join(self.rows)}

    def move(self, action: str) -> dict[str, Any]:
        if self.terminated:
            raise ValueError("the episode is over: reset the session")
        dr, dc = MOVES[action]
        size = len(self.rows)
        r, c = self.position
        self.position = (min(max(r + dr, 0), size - 1), min(max(c + dc, 0), size - 1))
        self.steps += 1
        cell = self.rows[self.position[0]][self.position[1]]
        self.reward = 1.0 if cell == "G" else 0.0
        self.total_reward += self.reward
        self.terminated = cell in "GH"
        return {**self.observe(), "action": action}


def client_key(client_info: Any) -> str:
    """The client's own session key from `clientInfo` extras (pydantic keeps them plain or under `_extra`):
    its `session_id` (eval-protocol), else the MD5 of seed, config, name and version (reward-kit 0.4)."""
    extras = getattr(client_info, "_extra", None)
    if not isinstance(extras, dict):
        extras = getattr(client_info, "model_extra", None) or {}
    if extras.get("session_id"):
        return str(extras["session_id"])
    stable = {
        "seed": extras.get("seed"),
        "config": extras.get("config", {}),
        "name": getattr(client_info, "name", None),
        "version": getattr(client_info, "version", None),
    }
    return hashlib.md5(json.dumps(stable, sort_keys=True).encode()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    size = int(json.loads(os.environ.get("MCPSIM_CONFIG") or "{}").get("map_size", 4))

    from mcp.server.fastmcp import Context, FastMCP
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    mcp = FastMCP("ep-frozen-lake", host="127.0.0.1", port=args.port, log_level="WARNING")
    episodes: dict[str, Episode] = {}

    def episode(key: str) -> Episode:
        if key not in episodes:
            episodes[key] = Episode(args.seed, size)
        return episodes[key]

    @mcp.tool(description="Move on the frozen lake. Actions: LEFT, DOWN, RIGHT, UP.")
    def lake_move(action: str, ctx: Context) -> dict[str, Any]:
        action = action.strip().upper()
        if action not in MOVES:
            raise ValueError(f"invalid action {action!r}: use LEFT, DOWN, RIGHT or UP")
        params = ctx.request_context.session.client_params
        return episode(client_key(params.clientInfo if params else None)).move(action)

    def keyed(request: Request) -> str | None:
        return request.headers.get("mcp-session-id")

    @mcp.custom_route("/control/initial_state", methods=["GET"])
    async def initial_state(request: Request) -> JSONResponse:
        key = keyed(request)
        if key is None:
            return JSONResponse({"error": "Missing mcp-session-id header"}, status_code=400)
        return JSONResponse(episode(key).observe())

    @mcp.custom_route("/control/reward", methods=["GET"])
    async def reward(request: Request) -> JSONResponse:
        found = episodes.get(keyed(request) or "")
        if found is None:
            return JSONResponse({"error": f"Session {keyed(request)} not found"}, status_code=404)
        return JSONResponse({"reward": found.reward, "step_count": found.steps})

    @mcp.custom_route("/control/status", methods=["GET"])
    async def status(request: Request) -> JSONResponse:
        found = episodes.get(keyed(request) or "")
        if found is None:
            return JSONResponse({"error": f"Session {keyed(request)} not found"}, status_code=404)
        return JSONResponse(
            {
                "terminated": found.terminated,
                "truncated": False,
                "step_count": found.steps,
                "total_reward": found.total_reward,
            }
        )

    @mcp.custom_route("/control/reset_session", methods=["POST"])
    async def reset_session(request: Request) -> JSONResponse:
        key = keyed(request)
        if key is None:
            return JSONResponse({"error": "Missing mcp-session-id header"}, status_code=400)
        body = json.loads(await request.body() or b"{}")
        seed = body.get("seed")
        episodes[key] = Episode(args.seed if seed is None else int(seed), size)
        return JSONResponse({"message": "Session reset successfully"})

    mcp.run(transport="streamable-http")


if __name__ == "__main__":
    main()
