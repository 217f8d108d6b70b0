"""Environment replay (`replay`: trajectories from the file alone) and the determinism audit (`audit`).

`replay(path)` needs no server: it re-creates every trajectory, observations and images included, for offline
work on reward functions and analysis. `audit(path, url)` plays the recorded actions against fresh instances
with the recorded seeds and configs and reports, per episode, the first step whose observation, reward or end
flags differ: a production server that is not deterministic for a seed shows up at the exact step.
"""

import inspect
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from mcpsim.client.content import text_of
from mcpsim.client.env import DEFAULT_TIMEOUT, make
from mcpsim.client.policies.playback import PlaybackPolicy
from mcpsim.client.rollout import RewardFn, rollout
from mcpsim.trajectory import Observation, Recording, Trajectory, read_recording
from mcpsim.trajectory.format import BINARY_BLOCKS, sha256_of_data

SHOWN_CHARS = 300


def replay(path: str | Path, *, reward_fn: RewardFn | None = None, strict: bool = True) -> list[Trajectory]:
    """The trajectories recorded in `path`, with no server. `reward_fn(trajectory)` (sync) re-scores each one.

    Blocking (reads the file): from async code use `await anyio.to_thread.run_sync(mcpsim.replay, path)`.
    `strict=False` keeps the complete episodes of a damaged file instead of raising.
    """
    trajectories = read_recording(path, strict=strict).trajectories
    if reward_fn is not None:
        rescore(trajectories, reward_fn)
    return trajectories


def rescore(trajectories: list[Trajectory], reward_fn: RewardFn) -> None:
    """Set each trajectory's total reward from a synchronous `reward_fn` (`None` keeps the recorded one)."""
    for trajectory in trajectories:
        value = reward_fn(trajectory)
        if inspect.isawaitable(value):
            if inspect.iscoroutine(value):
                value.close()
            raise TypeError("replay takes a synchronous reward_fn")
        if value is not None:
            trajectory.total_reward = float(value)
            trajectory.reward_source = "reward_fn"


def _normalized(observation: Observation) -> list[Any]:
    """Observation blocks comparable across runs: images by the hash of their bytes."""
    out: list[Any] = []
    for block in observation:
        if block.get("type") in BINARY_BLOCKS and isinstance(block.get("data"), str):
            out.append({**{k: v for k, v in block.items() if k != "data"}, "sha256": sha256_of_data(block["data"])})
        else:
            out.append(block)
    return out


def _shown(value: Any) -> str:
    text = (text_of(value) or json.dumps(_normalized(value))) if isinstance(value, list) else json.dumps(value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "..."


@dataclass
class Divergence:
    """The first difference in one episode; `step` 0 is the initial observation."""

    env_id: str
    seed: int
    step: int
    field: str
    expected: str
    actual: str

    def describe(self) -> str:
        where = "initial observation" if self.step == 0 else f"step {self.step}"
        return (
            f"{self.env_id} (seed {self.seed}): {where}: {self.field} differs\n"
            f"    recorded: {self.expected}\n    live:     {self.actual}"
        )


@dataclass
class AuditReport:
    path: Path
    url: str
    episodes: int = 0
    steps_checked: int = 0
    divergences: list[Divergence] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Problems of the recording itself (its incomplete episodes are not audited)."""

    @property
    def ok(self) -> bool:
        return not self.divergences

    def summary(self) -> str:
        head = (
            f"audit of {self.path} against {self.url}: {self.episodes} episodes, {self.steps_checked} steps replayed, "
            f"{len(self.divergences)} diverged"
        )
        notes = [f"skipped: {p}" for p in self.problems]
        return "\n".join([head, *(d.describe() for d in self.divergences), *notes])


def first_divergence(recorded: Trajectory, live: Trajectory) -> Divergence | None:
    def diverged(step: int, name: str, expected: Any, actual: Any) -> Divergence:
        return Divergence(recorded.env_id, recorded.seed, step, name, _shown(expected), _shown(actual))

    if _normalized(recorded.initial_observation) != _normalized(live.initial_observation):
        if live.error is not None and not live.steps:
            return diverged(0, "error", None, live.error.get("message"))
        return diverged(0, "observation", recorded.initial_observation, live.initial_observation)
    for want, got in zip(recorded.steps, live.steps, strict=False):
        if _normalized(want.observation) != _normalized(got.observation):
            return diverged(want.step, "observation", want.observation, got.observation)
        if not math.isclose(want.reward, got.reward, rel_tol=1e-9, abs_tol=1e-12):
            return diverged(want.step, "reward", want.reward, got.reward)
        for name in ("terminated", "truncated", "is_error"):
            if getattr(want, name) != getattr(got, name):
                return diverged(want.step, name, getattr(want, name), getattr(got, name))
    if len(live.steps) < len(recorded.steps):
        step = len(live.steps) + 1
        if live.error is not None:
            return diverged(step, "error", None, live.error.get("message"))
        return diverged(step, "steps", len(recorded.steps), len(live.steps))
    return None


async def audit(
    path: str | Path | Recording,
    url: str,
    *,
    max_concurrency: int = 16,
    request_timeout: float = DEFAULT_TIMEOUT,
    progress: bool | None = None,
    protocol: str = "auto",
) -> AuditReport:
    """Replay the recorded actions of every complete episode against fresh instances at `url` and compare."""
    if isinstance(path, Recording):
        recording = path
    else:
        recording = await anyio.to_thread.run_sync(lambda: read_recording(path, strict=False))
    recorded = [t for t in recording.trajectories if t.complete]
    report = AuditReport(recording.path, url, episodes=len(recorded), problems=list(recording.problems))
    if not recorded:
        return report
    wanted = {t.env_id for t in recorded}
    rows = [row for row in recording.dataset if str(row.get("env_id")) in wanted]
    if len(rows) != len(recorded):
        rows = [t.row.to_record() if t.row else {"env_id": t.env_id, "seed": t.seed} for t in recorded]
    envs = make(url, dataset=rows, timeout=request_timeout, protocol=protocol)
    longest = max((len(t.steps) for t in recorded), default=0)
    policy = PlaybackPolicy(recording)
    live = await rollout(envs, policy, steps=max(longest, 1), max_concurrency=max_concurrency, progress=progress)
    by_id = {t.env_id: t for t in live}
    for trajectory in recorded:
        replayed = by_id[trajectory.env_id]
        report.steps_checked += len(replayed.steps)
        divergence = first_divergence(trajectory, replayed)
        if divergence is not None:
            report.divergences.append(divergence)
    return report
