"""Expose a Gymnasium environment as an ordinary MCP server.

A production environment server is described by a `GymEnvSpec`: how to build the env from a seed and a config,
the names of its discrete actions, and how an observation is shown to the model (text, and image blocks made
with `image_content`). `build_server` turns that into an `MCPServer` with one tool and a `game://initial_state`
resource (plus `game://initial_frame` for envs that show images); `main` gives it the standard command line
(`--seed N --transport stdio|http|sse --port P`). Nothing here depends on the managed server: the result runs
standalone under any MCP client.

Reward and episode end are never part of the text the model sees; they travel in the tool result's
`_meta["mcpsim"]` so a rollout client gets them without an extra round trip.

A step (env physics plus rendering, e.g. a PNG encode) runs in a worker thread so a slow env never blocks the
server's event loop; a per-episode lock keeps concurrent calls on one episode in order.
"""

import argparse
import base64
import io
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import anyio
import gymnasium as gym
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, ContentBlock, ImageContent, TextContent
from pydantic import Field

from mcpsim.errors import EpisodeOver
from mcpsim.wire import CONFIG_VARIABLE, INITIAL_STATE_URI, META_KEY, PORT_VARIABLE, SEED_VARIABLE

if TYPE_CHECKING:
    import numpy as np

# Gymnasium draws `rgb_array` frames with pygame: keep it off any display and sound device, and its greeting off
# stdout, which is the protocol channel of the stdio transport.
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

INITIAL_FRAME_URI = "game://initial_frame"


@dataclass(frozen=True)
class GymEnvSpec:
    """What a Gymnasium env needs to become an MCP server; a new env is a handful of these fields."""

    name: str
    tool_name: str
    tool_description: str
    actions: Sequence[str]
    """Action names in the order of the env's discrete action indices."""
    make_env: Callable[[int, Mapping[str, Any]], gym.Env]
    """Builds the env from the seed and the instance's config; `reset(seed=...)` follows."""
    render_observation: Callable[["Episode"], list[ContentBlock]]
    """The content blocks the model sees after reset and after every step (text, `image_content(...)`)."""
    max_steps: int = 100
    """Steps after which the episode is truncated, unless the config sets `max_steps`."""
    instructions: str = ""
    images: bool = False
    """The observation holds an image: also serve the first one as the `game://initial_frame` resource."""
    step_in_thread: bool | None = None
    """Run steps in a worker thread (slow steps: rendering, physics); default: when the observation has images.
    A step of a few microseconds runs inline, which saves the thread hop on every call."""


def text_content(text: str) -> TextContent:
    return TextContent(type="text", text=text)


def image_content(frame: "np.ndarray", compress_level: int = 1) -> ImageContent:
    """An RGB frame (H x W x 3, uint8) as MCP image content (PNG).

    zlib level 1 encodes a 600x400 LunarLander frame about 7x faster than the default level 6 for a file about
    twice as large (still a few KB), the better trade for a server answering every step.
    """
    from PIL import Image  # imported here: text-only envs start faster without it

    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG", compress_level=compress_level)
    return ImageContent(type="image", data=base64.b64encode(buffer.getvalue()).decode("ascii"), mime_type="image/png")


@dataclass
class Episode:
    """One seeded episode of a Gymnasium env: the state a production server keeps for its one client."""

    spec: GymEnvSpec
    seed: int
    config: Mapping[str, Any] = field(default_factory=dict)
    env: gym.Env = field(init=False)
    observation: Any = field(init=False)
    info: dict[str, Any] = field(init=False)
    initial_content: list[ContentBlock] = field(init=False)
    step_count: int = 0
    last_reward: float = 0.0
    total_reward: float = 0.0
    terminated: bool = False
    truncated: bool = False

    def __post_init__(self) -> None:
        self.env = self.spec.make_env(self.seed, self.config)
        self.observation, self.info = self.env.reset(seed=self.seed)
        self.max_steps = int(self.config.get("max_steps", self.spec.max_steps))
        self.initial_content = self.spec.render_observation(self)
        self._lock: anyio.Lock | None = None

    @property
    def done(self) -> bool:
        return self.terminated or self.truncated

    @property
    def lock(self) -> anyio.Lock:
        """Serializes steps of this episode (created lazily: an episode may be built outside the event loop)."""
        if self._lock is None:
            self._lock = anyio.Lock()
        return self._lock

    def parse_action(self, action: str) -> int:
        """Map an action name (case-insensitive) to its index, naming the valid ones on failure."""
        names = [a.upper() for a in self.spec.actions]
        key = str(action).strip().upper()
        if key not in names:
            raise ValueError(f"Invalid action {action!r}. Valid actions: {', '.join(self.spec.actions)}.")
        return names.index(key)

    def step(self, action: str) -> None:
        index = self.parse_action(action)
        if self.done:
            how = "terminated" if self.terminated else "was truncated"
            raise EpisodeOver(
                f"The episode {how} at step {self.step_count}; no more moves are accepted. "
                "Start a new episode (a new session) to play again."
            )
        self.observation, reward, terminated, truncated, self.info = self.env.step(index)
        self.step_count += 1
        self.last_reward = float(reward)
        self.total_reward += self.last_reward
        self.terminated = bool(terminated)
        self.truncated = bool(truncated) or (not self.terminated and self.step_count >= self.max_steps)

    def meta(self) -> dict[str, Any]:
        return {
            META_KEY: {
                "reward": self.last_reward,
                "terminated": self.terminated,
                "truncated": self.truncated,
                "step": self.step_count,
            }
        }

    def step_result(self, action: str) -> CallToolResult:
        """Play one action and answer as the tool does: observation as content, reward and end in `_meta`."""
        try:
            self.step(action)
        except (ValueError, EpisodeOver) as exc:
            return CallToolResult(content=[text_content(str(exc))], is_error=True, _meta=self.meta())
        return CallToolResult(content=self.spec.render_observation(self), _meta=self.meta())

    async def play(self, action: str) -> CallToolResult:
        """`step_result`, off the event loop for slow steps, one step at a time.

        The worker thread gets a job that drops its reference to the episode once run: an idle worker keeps
        its last job until it is reused, which must not keep an ended session's env alive.
        """
        threaded = self.spec.step_in_thread if self.spec.step_in_thread is not None else self.spec.images
        if not threaded:
            return self.step_result(action)
        job = [self]

        def run() -> CallToolResult:
            return job.pop().step_result(action)

        async with self.lock:
            return await anyio.to_thread.run_sync(run)

    def close(self) -> None:
        self.env.close()


def read_config(raw: str | None) -> dict[str, Any]:
    """Parse `MCPSIM_CONFIG`-style JSON; a config must be a JSON object."""
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except RecursionError:  # json.loads recurses in C; a hostile config must be a clear error, not a crash
        raise ValueError("the config is nested too deeply") from None
    if not isinstance(value, dict):
        raise ValueError(f"config must be a JSON object, got {type(value).__name__}")
    return value


def episode_server(spec: GymEnvSpec, episode_for: Callable[[], Episode]) -> MCPServer:
    """An MCP server for `spec` whose handlers act on `episode_for()`: the one episode of a standalone server,
    or the episode of the calling session in `SessionEnvServer`."""
    server = MCPServer(spec.name, instructions=spec.instructions or None, log_level="WARNING")
    action_type = Annotated[
        str,
        Field(description=f"One of: {', '.join(spec.actions)}", json_schema_extra={"enum": list(spec.actions)}),
    ]

    async def move(action: str) -> CallToolResult:
        return await episode_for().play(action)

    move.__annotations__ = {"action": action_type, "return": CallToolResult}
    server.add_tool(move, name=spec.tool_name, description=spec.tool_description)

    @server.resource(INITIAL_STATE_URI, name="initial_state", description="The observation before the first move.")
    def initial_state() -> str:
        return "\n".join(c.text for c in episode_for().initial_content if isinstance(c, TextContent))

    if spec.images:

        @server.resource(
            INITIAL_FRAME_URI, name="initial_frame", mime_type="image/png", description="The first frame (PNG)."
        )
        def initial_frame() -> bytes:
            images = [c for c in episode_for().initial_content if isinstance(c, ImageContent)]
            if not images:
                raise ValueError("this episode shows no images (its config turned them off)")
            return base64.b64decode(images[0].data)

    return server


def build_server(spec: GymEnvSpec, seed: int, config: Mapping[str, Any] | None = None) -> MCPServer:
    """An MCP server holding one episode of `spec` for `seed`: the production server of one instance."""
    episode = Episode(spec, seed, dict(config or {}))
    server = episode_server(spec, lambda: episode)
    server.episode = episode  # type: ignore[attr-defined]  # for in-process tests
    return server


def main(spec: GymEnvSpec, argv: Sequence[str] | None = None) -> None:
    """Command line shared by every shipped env: seed and port also come from `MCPSIM_SEED`/`MCPSIM_PORT`."""
    parser = argparse.ArgumentParser(prog=f"python -m mcpsim.envs.{spec.name}", description=spec.tool_description)
    parser.add_argument("--seed", type=int, default=int(os.environ.get(SEED_VARIABLE, "0")))
    parser.add_argument("--transport", choices=["stdio", "http", "sse"], default="stdio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get(PORT_VARIABLE, "8000")))
    parser.add_argument(
        "--config", default=os.environ.get(CONFIG_VARIABLE), help="JSON object, e.g. '{\"map_size\": 8}'"
    )
    args = parser.parse_args(argv)
    try:
        config = read_config(args.config)
    except ValueError as exc:
        parser.error(f"invalid --config/MCPSIM_CONFIG: {exc}")
    try:
        server = build_server(spec, args.seed, config)
    except (ValueError, TypeError) as exc:
        print(f"{spec.name}: cannot start: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    if args.transport == "stdio":
        from mcpsim.envs.loop_stdio import run_stdio

        run_stdio(server)
    elif args.transport == "sse":
        server.run("sse", host=args.host, port=args.port)
    else:
        server.run("streamable-http", host=args.host, port=args.port, session_idle_timeout=None)
