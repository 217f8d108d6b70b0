"""LunarLander as a production MCP server: `python -m mcpsim.envs.lunar_lander --seed N` (needs `.[vision]`).

Gymnasium's LunarLander-v3 (discrete engines, Box2D). Each result holds a text summary (position, velocity,
angle, legs) and the rendered frame as MCP image content (PNG, 600x400), drawn off-screen: no display needed.
Config: `images` (default true; false gives text only), `gravity`, `enable_wind`, `wind_power`,
`turbulence_power` (Gymnasium's options), `max_steps` (1000).
"""

import math
from collections.abc import Mapping
from typing import Any

from gymnasium.envs.box2d.lunar_lander import LunarLander
from mcp.types import ContentBlock

from mcpsim.envs.gym_server import Episode, GymEnvSpec, image_content, main, text_content

ACTIONS = ("NOTHING", "FIRE_LEFT", "FIRE_MAIN", "FIRE_RIGHT")
FRAME_SIZE = (600, 400)
"""Width and height of the frames, in pixels."""


def make_env(seed: int, config: Mapping[str, Any]) -> LunarLander:
    return LunarLander(
        render_mode="rgb_array" if config.get("images", True) else None,
        gravity=float(config.get("gravity", -10.0)),
        enable_wind=bool(config.get("enable_wind", False)),
        wind_power=float(config.get("wind_power", 15.0)),
        turbulence_power=float(config.get("turbulence_power", 1.5)),
    )


def summary(episode: Episode) -> str:
    x, y, vx, vy, angle, spin, left, right = (float(v) for v in episode.observation)
    legs = {(False, False): "none", (True, False): "left", (False, True): "right", (True, True): "both"}
    return (
        "LunarLander. Land gently on the pad between the flags at x=0, y=0 (units: half the screen width).\n"
        f"Position: x={x:+.3f}, y={y:+.3f}. Velocity: vx={vx:+.3f}, vy={vy:+.3f}.\n"
        f"Angle: {math.degrees(angle):+.1f} degrees (positive = tilted left), angular velocity {spin:+.3f}.\n"
        f"Legs touching the ground: {legs[(left > 0.5, right > 0.5)]}. Steps taken: {episode.step_count}."
    )


def render(episode: Episode) -> list[ContentBlock]:
    blocks: list[ContentBlock] = [text_content(summary(episode))]
    if episode.config.get("images", True):
        blocks.append(image_content(episode.env.render()))
    return blocks


SPEC = GymEnvSpec(
    name="lunar_lander",
    tool_name="lander_action",
    tool_description=(
        "Fire the lander's engines for one step: NOTHING, FIRE_LEFT (left orientation engine), FIRE_MAIN "
        "(main engine) or FIRE_RIGHT (right orientation engine). Returns the lander's state and a picture."
    ),
    actions=ACTIONS,
    make_env=make_env,
    render_observation=render,
    max_steps=1000,
    instructions="Land the lunar lander on the pad between the flags using the lander_action tool.",
    images=True,
)

if __name__ == "__main__":
    main(SPEC)
