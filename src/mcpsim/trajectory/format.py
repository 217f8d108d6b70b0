"""The trajectory file (`mcpsim.trajectory/2`, and `/1` without conversations; JSONL) and its records.

Lines, in the order a rollout writes them (lines of concurrent episodes interleave):
- one `header`: `{"type": "header", "format": FORMAT, "mcpsim_version", "created_at", ...run metadata}`, with
  the `dataset` (every `Row.to_record()`, so the same episodes can be started again);
- per step: `Step.to_record()`, `{"type": "step", "env_id", "seed", "step", "action": {"tool", "arguments"},
  "observation": [MCP content blocks], "reward", "terminated", "truncated", "latency_ms", ...}`;
- per binary block (image, audio) not yet in the file, before the first line using it: `{"type": "blob",
  "sha256", "mimeType", "data": base64}`; lines using it hold `{"type": "image", "mimeType", "blob": sha256}`;
- `/2` only, per model call of an LLM policy, before the step it chose: `Turn.to_record()` (`turns.py`),
  `{"type": "turn", "env_id", "seed", "turn", "step", "messages": [the new chat messages], "completion", ...token
  data}`;
- per episode: `Trajectory.episode_record()`, `{"type": "episode", "env_id", "seed", "total_reward", "steps",
  "terminated", "truncated", "outcome", "group_id", ...}` (`/2` adds `sampling`, the model's sampling parameters).
A run whose policy keeps no conversation (random, scripted, playback) is written as `/1`, so readers of `/1` are
unaffected; `/2` readers read both.
No line repeats history, so a file grows linearly with its steps. `writer.py` writes it, `reader.py` reads it.
The records here are also what a rollout returns and a replay re-creates.
"""

import base64
import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mcpsim.errors import DatasetError, JsonTextError
from mcpsim.protocol.jsontext import parse_json_text
from mcpsim.trajectory.turns import Message, Turn
from mcpsim.wire import MAX_SEED

FORMAT = "mcpsim.trajectory/2"
"""The newest `format` of the header (runs with conversations); readers accept every one of `FORMATS`."""
FORMAT_V1 = "mcpsim.trajectory/1"
"""The format of runs without conversations (the shape every earlier mcpsim reads)."""
FORMATS = (FORMAT_V1, FORMAT)

Observation = list[dict[str, Any]]
"""A list of MCP content blocks as JSON dicts (the wire shape: `{"type": "text", "text": ...}`, ...)."""

BINARY_BLOCKS = ("image", "audio")
"""Content blocks whose base64 `data` is stored once per file, as a blob."""

KNOWN_ROW_FIELDS = ("id", "seed", "system_prompt", "user_prompt", "config", "env_id")


def sha256_of_data(data_b64: str) -> str:
    """A blob's id: the hash of the decoded bytes (the same image has the same id however its base64 was wrapped)."""
    return hashlib.sha256(base64.b64decode(data_b64)).hexdigest()


def dumps(record: Mapping[str, Any]) -> str:
    """One line of the file."""
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False, default=str) + "\n"


@dataclass(frozen=True)
class Row:
    """One dataset row; unknown keys are kept in `extra` (e.g. a reference answer for a `reward_fn`)."""

    id: str
    seed: int
    system_prompt: str | None = None
    user_prompt: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    env_id: str | None = None

    def to_record(self) -> dict[str, Any]:
        """The row as stored in a recording's header; `make()` accepts it back unchanged."""
        record: dict[str, Any] = {"env_id": self.env_id, "id": self.id, "seed": self.seed}
        if self.config:
            record["config"] = self.config
        if self.system_prompt is not None:
            record["system_prompt"] = self.system_prompt
        if self.user_prompt is not None:
            record["user_prompt"] = self.user_prompt
        record.update(self.extra)
        return record


def _seed(value: Any, where: str) -> int:
    if value is None:
        raise DatasetError(f"{where} has no 'seed'; every row needs an integer seed (e.g. {{\"seed\": 0}})")
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise DatasetError(f"{where}: 'seed' must be an integer, got {value!r}")
    try:
        seed = int(value)
    except ValueError:
        raise DatasetError(f"{where}: 'seed' must be an integer, got {value!r}") from None
    if seed < 0:
        raise DatasetError(f"{where}: 'seed' must be non-negative, got {seed}")
    if seed > MAX_SEED:
        raise DatasetError(f"{where}: 'seed' must be below 2**63, got one of {seed.bit_length()} bits")
    return seed


def _optional_text(raw: Mapping[str, Any], key: str, where: str) -> str | None:
    value = raw.get(key)
    if value is not None and not isinstance(value, str):
        raise DatasetError(f"{where}: {key!r} must be a string, got {type(value).__name__}")
    return value


def parse_row(raw: Any, index: int, where: str | None = None) -> Row:
    """Validate one raw row; `where` names it in errors (defaults to its position)."""
    where = where or f"dataset row {index}"
    if not isinstance(raw, Mapping):
        raise DatasetError(f"{where} must be a JSON object, got {type(raw).__name__}")
    seed = _seed(raw.get("seed"), where)
    config = raw.get("config") or {}
    if isinstance(config, str):
        try:
            config = parse_json_text(config)
        except JsonTextError as exc:
            raise DatasetError(f"{where}: 'config' is not valid JSON: {exc}") from None
    if not isinstance(config, Mapping):
        raise DatasetError(f"{where}: 'config' must be a JSON object, got {type(config).__name__}")
    row_id = raw.get("id")
    env_id = raw.get("env_id")
    return Row(
        id=str(row_id) if row_id is not None else f"row{index}",
        seed=seed,
        system_prompt=_optional_text(raw, "system_prompt", where),
        user_prompt=_optional_text(raw, "user_prompt", where),
        config=dict(config),
        extra={k: v for k, v in raw.items() if k not in KNOWN_ROW_FIELDS},
        env_id=str(env_id) if env_id is not None else None,
    )


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
    protocol: str | None = None
    """The MCP revision the episode's session spoke (`2026-07-28`, `2025-11-25`, ...); optional in the format."""
    reward_source: str = "environment"
    """`environment` (summed `_meta` rewards) or `reward_fn` (the rollout's reward function set the total)."""
    started_at: float | None = None
    finished_at: float | None = None
    complete: bool = True
    """False for an episode read from a file that ends before its episode line."""
    group_id: str | None = None
    """Episodes of the same dataset row (`samples=k`) share it: the group of GRPO-style advantages."""
    turns: list[Turn] = field(default_factory=list)
    """The model calls of an LLM policy (`/2`), in order; empty for other policies."""
    sampling: dict[str, Any] | None = None
    """The sampling parameters of those calls (model, temperature, ...), when a policy reported them."""
    tools: list[dict[str, Any]] | None = None
    """The function tools the model was offered (Chat Completions `tools`), for LLM policies."""
    parent: str | None = None
    """For a branch (`rollout(..., branch_at=N, branches=K)`): the env id of the episode it was copied from."""
    branched_at_step: int | None = None
    """And the step it was copied at: its first `branched_at_step` steps are its parent's (not repeated in the
    file: a `branch` line says so, and readers copy them from the parent)."""

    def branch(self, env_id: str, group_id: str) -> "Trajectory":
        """A copy of this episode so far, to be continued as `env_id` (the prefix is shared, not played again)."""
        row = dataclasses.replace(self.row, env_id=env_id) if self.row is not None else None
        return Trajectory(
            env_id,
            self.seed,
            row,
            initial_observation=self.initial_observation,
            steps=list(self.steps),
            total_reward=self.total_reward,
            terminated=self.terminated,
            truncated=self.truncated,
            protocol=self.protocol,
            group_id=group_id,
            turns=list(self.turns),
            sampling=self.sampling,
            tools=self.tools,
            parent=self.env_id,
            branched_at_step=len(self.steps),
        )

    def branch_record(self) -> dict[str, Any]:
        """The `branch` line written when this copy starts: which episode and step its prefix is taken from."""
        return {
            "type": "branch",
            "env_id": self.env_id,
            "seed": self.seed,
            "parent": self.parent,
            "step": self.branched_at_step,
            "group_id": self.group_id,
        }

    @property
    def messages(self) -> list[Message]:
        """The whole conversation the model saw and produced (every turn's new messages, in order)."""
        return [message for turn in self.turns for message in turn.messages]

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
        if self.group_id is not None:
            record["group_id"] = self.group_id
        if self.sampling is not None:
            record["sampling"] = self.sampling
        if self.tools is not None:
            record["tools"] = self.tools
        if self.parent is not None:
            record["parent"] = self.parent
            record["branched_at_step"] = self.branched_at_step
        if self.reward_source != "environment":
            record["reward_source"] = self.reward_source
        if self.error:
            record["error"] = self.error
        if self.usage:
            record["usage"] = self.usage
        if self.connect_ms is not None:
            record["connect_ms"] = round(self.connect_ms, 3)
        if self.protocol is not None:
            record["protocol"] = self.protocol
        if self.duration_s is not None:
            record["duration_s"] = round(self.duration_s, 4)
        return record
