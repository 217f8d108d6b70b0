"""`mcpsim.gym.make_vec(url, seeds, num_envs=N)`: N mcpsim episodes at once as a `gymnasium.vector.VectorEnv`.

Each sub-env is an MCP session; `step` calls the tool in every env concurrently over one event loop (the
`Runner`'s thread). Episodes take their seeds from `seeds` in order, cycling (`seeds=[7]`: every episode on
map 7; `seeds=range(1000)`: a new map each episode); `reset(seed=s)` starts env i on seed `s + i` (a list: one
seed per env) and the following episodes go on from `seeds`.

Autoreset is Gymnasium 1.x's default, next-step: the step after an env's episode ends ignores that env's
action and starts its next episode instead (observation: the new initial one, reward 0, not terminated).
`infos["seed"]` is each env's current episode seed. With `announce=True` the seeds of the next `num_envs`
episodes are announced to a managed server, which starts their instances ahead; off by default because the
last announced instances are never claimed and live on until the server's idle timeout after `close()`.
"""

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from mcpsim.errors import ConfigError
from mcpsim.gym.env import check_seed
from mcpsim.gym.runner import Opened, Runner
from mcpsim.gym.spaces import MAX_OBSERVATION_CHARS, ActionCodec, observation_space, observation_text
from mcpsim.trajectory import Action


class McpVectorEnv(VectorEnv):
    """`num_envs` sessions of an MCP environment server, stepped together."""

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        url: str,
        seeds: Iterable[int],
        num_envs: int | None = None,
        *,
        tool: str | None = None,
        timeout: float = 120.0,
        max_observation_chars: int = MAX_OBSERVATION_CHARS,
        announce: bool = False,
    ) -> None:
        self.announce = announce
        self.seeds = [check_seed(s, "every seed") for s in seeds]
        if not self.seeds:
            raise ConfigError("seeds is empty: give the episode seeds, e.g. seeds=[7] or seeds=range(100)")
        self.num_envs = len(self.seeds) if num_envs is None else num_envs
        self.max_observation_chars = max_observation_chars
        self._cursor = 0
        self._runner = Runner(url, self.num_envs, timeout=timeout)
        try:
            opened = self._runner.reset(self._next_seeds(range(self.num_envs)))
            self.codec = ActionCodec.for_tools(opened[0].tools, tool)
        except BaseException:
            self._runner.close()
            raise
        self._cursor = 0  # the first reset() gets these seeds again (and the still-fresh sessions)
        self.single_observation_space = observation_space(max_observation_chars)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.single_action_space = self.codec.space
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.episode_seeds = np.zeros(self.num_envs, dtype=np.int64)
        self._autoreset = np.zeros(self.num_envs, dtype=np.bool_)

    def _next_seeds(self, envs: Iterable[int]) -> dict[int, int]:
        out = {}
        for index in envs:
            out[index] = self.seeds[self._cursor % len(self.seeds)]
            self._cursor += 1
        return out

    def _ahead(self, count: int) -> list[int]:
        """The seeds of the `count` episodes that start `num_envs` episodes from now (announced to a managed
        server, so their instances are up when those episodes begin)."""
        if not self.announce:
            return []
        start = self._cursor + self.num_envs - count
        return [self.seeds[(start + k) % len(self.seeds)] for k in range(count)]

    def _observations(self, opened: dict[int, Opened], current: Sequence[str] | None = None) -> tuple[str, ...]:
        out = list(current) if current is not None else [""] * self.num_envs
        for index, fresh in opened.items():
            out[index] = observation_text(fresh.observation, self.max_observation_chars)
            self.episode_seeds[index] = fresh.seed
        return tuple(out)

    def _infos(self) -> dict[str, Any]:
        return {"seed": self.episode_seeds.copy(), "_seed": np.ones(self.num_envs, dtype=np.bool_)}

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[tuple[str, ...], dict[str, Any]]:
        if isinstance(seed, int):
            self._np_random, self._np_random_seed = seeding.np_random(seed)
            seeds = {i: check_seed(seed + i) for i in range(self.num_envs)}
        elif seed is not None:
            if len(seed) != self.num_envs:
                raise ConfigError(f"reset(seed=[...]) needs {self.num_envs} seeds, got {len(seed)}")
            given = {i: check_seed(s) for i, s in enumerate(seed) if s is not None}
            seeds = {**self._next_seeds(i for i, s in enumerate(seed) if s is None), **given}
        else:
            seeds = self._next_seeds(range(self.num_envs))
        self._autoreset[:] = False
        opened = self._runner.reset(dict(sorted(seeds.items())), self._ahead(self.num_envs))
        self._last = self._observations(opened)
        return self._last, self._infos()

    def step(self, actions: Any) -> tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        resets = self._next_seeds(i for i in range(self.num_envs) if self._autoreset[i])
        calls: dict[int, Action] = {
            i: self.codec.action(actions[i]) for i in range(self.num_envs) if not self._autoreset[i]
        }
        opened, results = self._runner.act(resets, calls, self._ahead(len(resets)))
        observations = list(self._observations(opened, self._last))
        rewards = np.zeros(self.num_envs, dtype=np.float64)
        terminations = np.zeros(self.num_envs, dtype=np.bool_)
        truncations = np.zeros(self.num_envs, dtype=np.bool_)
        for index, result in results.items():
            observations[index] = observation_text(result.observation, self.max_observation_chars)
            rewards[index] = result.reward
            terminations[index], truncations[index] = result.terminated, result.truncated
        self._autoreset = terminations | truncations
        self._last = tuple(observations)
        return self._last, rewards, terminations, truncations, self._infos()

    def close_extras(self, **kwargs: Any) -> None:
        self._runner.close()
