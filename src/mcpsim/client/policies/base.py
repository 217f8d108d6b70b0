"""The policy interface: small and stable, like Gymnasium's.

A policy sees one `EpisodeContext` per environment (seed, row, tools, initial observation, the trajectory so
far, and a `memory` dict for its own per-episode state, e.g. an LLM conversation) and answers each observation
with an `Action` (a tool call) or `None` to end the episode. One policy object serves every environment of a
rollout concurrently, so per-episode state belongs in `episode.memory`, never on `self`.
"""

import copy as copy_module
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mcpsim.trajectory import Action, Observation, Row, Trajectory
from mcpsim.trajectory.format import add_usage


@dataclass
class EpisodeContext:
    """What a policy knows about one episode."""

    env_id: str
    seed: int
    row: Row
    tools: list[dict[str, Any]]
    """MCP tool definitions from `tools/list` (`name`, `description`, `inputSchema`)."""
    initial_observation: Observation
    trajectory: Trajectory
    instructions: str | None = None
    """The server's `instructions` from the MCP handshake."""
    memory: dict[str, Any] = field(default_factory=dict)
    unattributed_usage: dict[str, int] = field(default_factory=dict)
    """Usage reported since the last step; the rollout moves it onto the next step it records."""

    def add_usage(self, usage: Mapping[str, int] | None) -> None:
        """Report tokens (or any counters) a policy spent; they count for the episode and its next step."""
        add_usage(self.trajectory.usage, usage)
        add_usage(self.unattributed_usage, usage)

    @property
    def step(self) -> int:
        """Steps taken so far."""
        return len(self.trajectory.steps)


class Policy(ABC):
    """Base class of policies. Subclasses implement `act`; `reset`, `describe` and `aclose` are optional."""

    name = "policy"
    records_conversation = False
    """True for policies that keep their model calls on `trajectory.turns` (the run is then recorded as
    `mcpsim.trajectory/2`; other runs keep the `/1` shape)."""

    async def reset(self, episode: EpisodeContext) -> None:  # noqa: B027 (optional hook)
        """Called once per episode before the first `act` (the initial observation is on `episode`)."""

    async def branch(self, source: EpisodeContext, copy: EpisodeContext) -> None:
        """A copy of `source`'s episode goes on as `copy` (`rollout(..., branch_at=N, branches=K)`): give it its own
        per-episode state. The default deep-copies `source.memory`, so an LLM conversation carries on in every
        copy (each then samples its own continuation); override it when copied state would make the copies act
        alike (`RandomPolicy` starts each copy's generator afresh from the copy's env id)."""
        copy.memory = copy_module.deepcopy(source.memory)

    @abstractmethod
    async def act(self, episode: EpisodeContext, observation: Observation) -> Action | None:
        """The next tool call, given the latest observation (the initial one at first); `None` ends the episode."""

    def describe(self) -> dict[str, Any]:
        """Run metadata for the recording's header (policy name, model, ...)."""
        return {"policy": self.name}

    async def aclose(self) -> None:  # noqa: B027 (optional hook)
        """Release clients or files (the owner calls it; a rollout leaves the policy open for the next one)."""

    async def __aenter__(self) -> "Policy":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
