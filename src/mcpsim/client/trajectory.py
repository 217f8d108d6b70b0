"""Actions, steps and trajectories: what a rollout returns, a recording stores and a replay re-creates.

The record dicts here are the trajectory file format (`mcpsim.trajectory/1`), minus the image-blob swap that
`recording.py` does on the way to disk.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mcpsim.client.content import Observation
from mcpsim.client.dataset import Row

OUTCOMES = ("terminated", "truncated", "max_steps", "stopped", "error", "running")
"""How an episode ended: by the server (`terminated`, `truncated`), by the client's step limit (`max_steps`), by
the policy (`stopped`), by a failure (`error`); `running` only in a file cut short."""


@dataclass
class Action:
    """A tool call chosen by a policy. `usage` holds the tokens spent choosing it (LLM policies)."""

    tool: str
    arguments: dict[str, Any] = field(default_factory=dict)
    call_id: str | None = None
    usage: dict[str, int] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def coerce(cls, value: Any) -> "Action | None":
        """Accept an `Action`, `{"tool", "arguments"}`, `(tool, arguments)` or `None` (= stop the episode)."""
        if value is None or isinstance(value, Action):
            return value
        if isinstance(value, Mapping) and "tool" in value:
            return cls(str(value["tool"]), value.get("arguments") or {})
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
            return cls(value[0], value[1] if value[1] is not None else {})
        raise TypeError(f"a policy must return an Action, a {{'tool', 'arguments'}} dict or None, got {value!r}")

    def to_record(self) -> dict[str, Any]:
        return {"tool": self.tool, "arguments": self.arguments}


def add_usage(total: dict[str, int], usage: Mapping[str, int] | None) -> None:
    for key, value in (usage or {}).items():
        if isinstance(value, int | float):
            total[key] = total.get(key, 0) + int(value)


@dataclass
class Step:
    """One tool call and what came back: the observation (MCP content), reward and end flags from `_meta`."""

    step: int
    action: Action
    observation: Observation
    reward: float = 0.0
    terminated: bool = False
    truncated: bool = False
    is_error: bool = False
    latency_ms: float = 0.0
    policy_ms: float = 0.0
    usage: dict[str, int] | None = None
    meta: dict[str, Any] | None = None

    def to_record(self, env_id: str, seed: int) -> dict[str, Any]:
        record: dict[str, Any] = {
            "type": "step",
            "env_id": env_id,
            "seed": seed,
            "step": self.step,
            "action": self.action.to_record(),
            "observation": self.observation,
            "reward": self.reward,
            "terminated": self.terminated,
            "truncated": self.truncated,
            "latency_ms": round(self.latency_ms, 3),
            "policy_ms": round(self.policy_ms, 3),
        }
        if self.is_error:
            record["is_error"] = True
        if self.usage:
            record["usage"] = self.usage
        if self.meta:
            record["meta"] = self.meta
        if self.action.info:
            record["policy_info"] = self.action.info
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> "Step":
        action = record.get("action") or {}
        return cls(
            step=int(record["step"]),
            action=Action(
                str(action.get("tool", "")), dict(action.get("arguments") or {}), info=record.get("policy_info") or {}
            ),
            observation=list(record.get("observation") or []),
            reward=float(record.get("reward") or 0.0),
            terminated=bool(record.get("terminated")),
            truncated=bool(record.get("truncated")),
            is_error=bool(record.get("is_error")),
            latency_ms=float(record.get("latency_ms") or 0.0),
            policy_ms=float(record.get("policy_ms") or 0.0),
            usage=record.get("usage"),
            meta=record.get("meta"),
        )


@dataclass
class Trajectory:
    """One episode: where it started (seed, row, initial observation), every step, and how it ended."""

    env_id: str
    seed: int
    row: Row | None = None
    initial_observation: Observation = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    total_reward: float = 0.0
    terminated: bool = False
    truncated: bool = False
    outcome: str = "running"
    error: dict[str, Any] | None = None
    usage: dict[str, int] = field(default_factory=dict)
    """Tokens over every policy call of the episode, including calls that produced no step."""
    connect_ms: float | None = None
    reward_source: str = "environment"
    """`environment` (summed `_meta` rewards) or `reward_fn` (the rollout's reward function set the total)."""
    started_at: float | None = None
    finished_at: float | None = None
    complete: bool = True
    """False for an episode read from a file that ends before its episode line."""

    @property
    def success(self) -> bool:
        """Terminated by the environment with a positive total reward (goal reached, for the shipped envs)."""
        return self.terminated and self.total_reward > 0

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at

    @property
    def actions(self) -> list[Action]:
        return [step.action for step in self.steps]

    @property
    def rewards(self) -> list[float]:
        return [step.reward for step in self.steps]

    def add_step(self, step: Step) -> None:
        self.steps.append(step)
        if math.isfinite(step.reward):
            self.total_reward += step.reward
        self.terminated = step.terminated
        self.truncated = step.truncated

    def episode_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "type": "episode",
            "env_id": self.env_id,
            "seed": self.seed,
            "total_reward": self.total_reward,
            "steps": len(self.steps),
            "terminated": self.terminated,
            "truncated": self.truncated,
            "outcome": self.outcome,
            "success": self.success,
            "initial_observation": self.initial_observation,
        }
        if self.row is not None:
            record["row_id"] = self.row.id
        if self.reward_source != "environment":
            record["reward_source"] = self.reward_source
        if self.error:
            record["error"] = self.error
        if self.usage:
            record["usage"] = self.usage
        if self.connect_ms is not None:
            record["connect_ms"] = round(self.connect_ms, 3)
        if self.duration_s is not None:
            record["duration_s"] = round(self.duration_s, 4)
        return record
