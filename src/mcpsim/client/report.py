"""`mcpsim report`: what a run achieved and what it cost, one column per recording (text vs vision side by side).

Success is "terminated by the environment with a positive total reward" (`Trajectory.success`); latencies are
the tool-call round trips and the policy's decision times; tokens are what the policy reported per call.
"""

import math
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mcpsim.trajectory import Recording


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def label(recording: Recording) -> str:
    header = recording.header
    name = str(header.get("policy") or "?")
    if header.get("model"):
        name += f":{header['model']}"
    vision = (header.get("policy_params") or {}).get("vision")
    if vision is not None:
        name += f" vision={vision}"
    return f"{recording.path.name} ({name})"


@dataclass
class RunStats:
    label: str
    values: dict[str, Any]


def run_stats(recording: Recording) -> RunStats:
    trajectories = recording.trajectories
    episodes = len(trajectories)
    steps = [step for t in trajectories for step in t.steps]
    rewards = [t.total_reward for t in trajectories]
    tokens: Counter[str] = Counter()
    for trajectory in trajectories:
        tokens.update(trajectory.usage)
    latency = [s.latency_ms for s in steps]
    policy = [s.policy_ms for s in steps]
    outcomes = Counter(t.outcome for t in trajectories)
    values: dict[str, Any] = {
        "episodes": episodes,
        "success_rate": sum(t.success for t in trajectories) / episodes if episodes else None,
        "mean_reward": statistics.fmean(rewards) if rewards else None,
        "std_reward": statistics.pstdev(rewards) if len(rewards) > 1 else 0.0 if rewards else None,
        "mean_steps": statistics.fmean(len(t.steps) for t in trajectories) if episodes else None,
        "total_steps": len(steps),
        "errors": sum(1 for t in trajectories if t.error),
        "outcomes": dict(sorted(outcomes.items())),
        "tool_latency_ms": {f"p{q}": percentile(latency, q) for q in (50, 90, 99)},
        "policy_latency_ms": {f"p{q}": percentile(policy, q) for q in (50, 90, 99)},
        "tokens": {
            key: tokens.get(key, 0) for key in ("prompt_tokens", "completion_tokens", "total_tokens", "requests")
        },
        "retries": tokens.get("retries", 0),
        "tokens_per_episode": tokens.get("total_tokens", 0) / episodes if episodes else None,
        "problems": len(recording.problems),
    }
    return RunStats(label(recording), values)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _rows(stats: RunStats) -> list[tuple[str, str]]:
    v = stats.values
    lat, pol, tok = v["tool_latency_ms"], v["policy_latency_ms"], v["tokens"]
    rate = "-" if v["success_rate"] is None else f"{v['success_rate']:.1%}"
    return [
        ("episodes", _fmt(v["episodes"])),
        ("success rate", rate),
        ("mean reward (std)", f"{_fmt(v['mean_reward'])} ({_fmt(v['std_reward'])})"),
        ("mean steps", _fmt(v["mean_steps"])),
        ("errors", _fmt(v["errors"])),
        ("outcomes", ", ".join(f"{k} {n}" for k, n in v["outcomes"].items()) or "-"),
        ("tool latency p50/p90/p99 ms", " / ".join(_fmt(lat[k]) for k in ("p50", "p90", "p99"))),
        ("policy latency p50/p90/p99 ms", " / ".join(_fmt(pol[k]) for k in ("p50", "p90", "p99"))),
        ("tokens prompt / completion", f"{_fmt(tok['prompt_tokens'])} / {_fmt(tok['completion_tokens'])}"),
        ("tokens per episode", _fmt(v["tokens_per_episode"])),
        ("model requests (retries)", f"{_fmt(tok['requests'])} ({_fmt(v['retries'])})"),
        ("file problems", _fmt(v["problems"])),
    ]


def report_table(stats: Sequence[RunStats]) -> Any:
    from rich.table import Table

    table = Table(title="mcpsim report")
    table.add_column("metric")
    for item in stats:
        table.add_column(item.label, justify="right")
    columns = [_rows(item) for item in stats]
    for index, (name, _) in enumerate(columns[0]):
        table.add_row(name, *(column[index][1] for column in columns))
    return table
