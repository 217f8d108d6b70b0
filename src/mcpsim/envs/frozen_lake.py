"""FrozenLake as a production MCP server: `python -m mcpsim.envs.frozen_lake --seed N`.

The map is generated from the seed (same seed, same map), 4x4 unless the config sets `map_size`. Moves are
deterministic unless the config sets `"is_slippery": true`, so a seed and an action list replay exactly.
"""

from collections.abc import Mapping
from typing import Any

from gymnasium.envs.toy_text.frozen_lake import FrozenLakeEnv, generate_random_map
from mcp.types import ContentBlock, TextContent

from mcpsim.envs.gym_server import Episode, GymEnvSpec, main

ACTIONS = ("LEFT", "DOWN", "RIGHT", "UP")
CELL_NAMES = {"S": "start", "F": "frozen", "H": "hole", "G": "goal"}


def make_env(seed: int, config: Mapping[str, Any]) -> FrozenLakeEnv:
    size = int(config.get("map_size", 4))
    if not 2 <= size <= 32:
        raise ValueError(f"map_size must be between 2 and 32, got {size}")
    desc = generate_random_map(size=size, p=float(config.get("frozen_probability", 0.8)), seed=seed)
    return FrozenLakeEnv(desc=desc, is_slippery=bool(config.get("is_slippery", False)))


def board(episode: Episode) -> list[str]:
    return ["".join(cell.decode() for cell in row) for row in episode.env.unwrapped.desc]


def render(episode: Episode) -> list[ContentBlock]:
    rows = board(episode)
    size = len(rows)
    row, col = divmod(int(episode.observation), size)
    grid = [list(r) for r in rows]
    cell = grid[row][col]
    grid[row][col] = "@"
    text = (
        f"FrozenLake {size}x{size}. You are '@'. S=start, F=frozen (safe), H=hole, G=goal.\n"
        + "\n".join("".join(r) for r in grid)
        + f"\nPosition: row {row}, column {col} ({CELL_NAMES[cell]}). Steps taken: {episode.step_count}."
    )
    return [TextContent(type="text", text=text)]


SPEC = GymEnvSpec(
    name="frozen_lake",
    tool_name="lake_move",
    tool_description=(
        "Move one cell on the frozen lake: LEFT, DOWN, RIGHT or UP. Reach G without stepping into a hole H. "
        "Returns the map with your new position."
    ),
    actions=ACTIONS,
    make_env=make_env,
    render_observation=render,
    max_steps=100,
    instructions="Navigate from S to G on the frozen lake using the lake_move tool.",
)

if __name__ == "__main__":
    main(SPEC)
