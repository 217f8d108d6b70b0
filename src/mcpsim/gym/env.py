"""`mcpsim.gym.make(url, seed)`: one mcpsim episode at a time as a `gymnasium.Env` (passes `check_env`).

Every `reset` opens a fresh instance (a new MCP session; the managed server starts a new seeded instance and
ends the old one): with `reset(seed=s)` of seed `s`, with `reset()` of the seed given to `make` (the same map
every episode, as tabular methods want) or, without one, of a seed drawn from `np_random`. `step(action)`
calls the tool (see `spaces.ActionCodec`); reward and episode end come from the server's `_meta`.
"""

from typing import Any

import gymnasium as gym

from mcpsim.errors import ConfigError
from mcpsim.gym.runner import Runner
from mcpsim.gym.spaces import MAX_OBSERVATION_CHARS, ActionCodec, observation_space, observation_text
from mcpsim.wire import MAX_SEED


def check_seed(seed: Any, what: str = "seed") -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"{what} must be an integer between 0 and 2**63-1, got {seed!r}")
    return seed


class McpEnv(gym.Env[str, Any]):
    """A Gymnasium env whose episodes are sessions of an MCP environment server."""

    metadata = {"render_modes": []}

    def __init__(
        self,
        url: str,
        seed: int | None = None,
        *,
        tool: str | None = None,
        timeout: float = 120.0,
        max_observation_chars: int = MAX_OBSERVATION_CHARS,
    ) -> None:
        self.default_seed = check_seed(seed) if seed is not None else None
        self.max_observation_chars = max_observation_chars
        self._runner = Runner(url, 1, timeout=timeout)
        try:
            opened = self._runner.reset({0: self.default_seed or 0})[0]  # the tools: the spaces need them now
            self.codec = ActionCodec.for_tools(opened.tools, tool)
        except BaseException:
            self._runner.close()
            raise
        self.action_space = self.codec.space
        self.observation_space = observation_space(max_observation_chars)
        self.instance_seed: int | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            instance = check_seed(seed)
        elif self.default_seed is not None:
            instance = self.default_seed
        else:
            instance = int(self.np_random.integers(0, 2**31 - 1))
        opened = self._runner.reset({0: instance})[0]
        self.instance_seed = instance
        return observation_text(opened.observation, self.max_observation_chars), {"seed": instance}

    def step(self, action: Any) -> tuple[str, float, bool, bool, dict[str, Any]]:
        result = self._runner.step({0: self.codec.action(action)})[0]
        info = {"seed": self.instance_seed, "is_error": result.is_error}
        observation = observation_text(result.observation, self.max_observation_chars)
        return observation, result.reward, result.terminated, result.truncated, info

    def close(self) -> None:
        self._runner.close()
        super().close()
