"""Gymnasium views of mcpsim episodes, for classic RL and for trainers that expect reset/step.

- `make(url, seed)`: one env (`env.McpEnv`, a `gymnasium.Env`; passes `gymnasium.utils.env_checker.check_env`).
- `make_vec(url, seeds, num_envs=N)`: N envs stepped together (`vector.McpVectorEnv`, a
  `gymnasium.vector.VectorEnv`, next-step autoreset).
- `spaces.py`: the Text observation space and the action space built from the tool (Discrete from an `enum`).
- `runner.py`: the event loop thread and one session-owning task per env behind both.
"""

from collections.abc import Iterable
from typing import Any

from mcpsim.gym.env import McpEnv
from mcpsim.gym.spaces import ActionCodec
from mcpsim.gym.vector import McpVectorEnv


def make(url: str, seed: int | None = None, **kwargs: Any) -> McpEnv:
    """One episode at a time against `url` (a managed server's `/mcp`, any MCP server URL, or `stdio:...`)."""
    return McpEnv(url, seed, **kwargs)


def make_vec(url: str, seeds: Iterable[int], num_envs: int | None = None, **kwargs: Any) -> McpVectorEnv:
    """`num_envs` (default: one per seed) episodes at once, their seeds taken from `seeds` in turn."""
    return McpVectorEnv(url, seeds, num_envs, **kwargs)


__all__ = ["ActionCodec", "McpEnv", "McpVectorEnv", "make", "make_vec"]
