"""Taxi as a production MCP server: `python -m mcpsim.envs.taxi --seed N`.

Gymnasium's Taxi-v3: pick the passenger up at one station (R, G, Y, B) and drop them off at another. The seed
places the taxi, the passenger and the destination. Config: `is_rainy`, `fickle_passenger` (Gymnasium's
options, off by default so a seed and an action list replay exactly), `max_steps` (200).
"""

from collections.abc import Mapping
from typing import Any

from gymnasium.envs.toy_text.taxi import MAP, TaxiEnv
from mcp.types import ContentBlock

from mcpsim.envs.gym_server import Episode, GymEnvSpec, main, text_content

ACTIONS = ("SOUTH", "NORTH", "EAST", "WEST", "PICKUP", "DROPOFF")
STATIONS = ("R", "G", "Y", "B")


def make_env(seed: int, config: Mapping[str, Any]) -> TaxiEnv:
    return TaxiEnv(is_rainy=bool(config.get("is_rainy", False)), fickle_passenger=bool(config.get("fickle_passenger")))


def render(episode: Episode) -> list[ContentBlock]:
    row, col, passenger, destination = episode.env.unwrapped.decode(int(episode.observation))
    grid = [list(line) for line in MAP]
    grid[1 + row][1 + 2 * col] = "T"
    where = "in the taxi" if passenger == 4 else f"waiting at {STATIONS[passenger]}"
    text = (
        "Taxi. You drive 'T' on a 5x5 grid; '|' is a wall, ':' is open. Stations: R, G, Y, B.\n"
        + "\n".join("".join(line) for line in grid)
        + f"\nTaxi at row {row}, column {col}. Passenger: {where}. Destination: {STATIONS[destination]}."
        + f" Steps taken: {episode.step_count}."
    )
    return [text_content(text)]


SPEC = GymEnvSpec(
    name="taxi",
    tool_name="taxi_move",
    tool_description=(
        "Drive the taxi one cell (SOUTH, NORTH, EAST, WEST), or PICKUP / DROPOFF the passenger at the taxi's cell. "
        "Deliver the passenger to the destination station. Returns the grid with the taxi's new position."
    ),
    actions=ACTIONS,
    make_env=make_env,
    render_observation=render,
    max_steps=200,
    instructions="Pick up the passenger and drop them off at the destination using the taxi_move tool.",
)

if __name__ == "__main__":
    main(SPEC)
