"""What a benchmark run is asked to do, and what it reports per mode."""

import statistics
from dataclasses import dataclass, field
from typing import Any

from mcpsim.errors import ConfigError

MODES = (
    "direct",
    "managed",
    "managed-warm",
    "managed-fork",
    "managed-strict",
    "managed-fork-strict",
    "managed-fork-standard",
    "in-process",
    "ray-fork",
)
MODE_FLAGS = {
    "managed": ["--no-fork-server"],
    "managed-fork": ["--fork-server"],
    "managed-strict": ["--no-fork-server", "--sandbox", "strict"],
    "managed-fork-strict": ["--fork-server", "--sandbox", "strict"],
    "managed-fork-standard": ["--fork-server", "--sandbox", "standard"],
    "ray": ["--no-fork-server"],
    "ray-fork": ["--fork-server"],
}
"""`mcpsim serve` flags of each managed mode (plain `managed`, `managed-strict` and `ray` spawn, `-fork` forks;
`-strict`, `-standard`: every instance in its sandbox; `-standard` beside `-strict` separates what strict's seccomp
filter costs)."""
BENCH_CONFIG = '{"max_steps": 1000000}'


@dataclass(frozen=True)
class BenchSettings:
    """What `mcpsim bench` is asked to measure; checked when made."""

    sessions: int = 20
    """Sequential new sessions, each timed to its first tool result."""
    steps: int = 200
    """Calls per session in the latency phase."""
    concurrency: int = 1
    """Sessions calling at once in the latency phase."""
    burst: int = 64
    """New sessions opened at once (0: no burst phase)."""
    memory_sessions: int = 16
    """Sessions held open to measure RSS/USS."""
    live: int = 0
    """Also hold this many sessions live at once (0: no live phase)."""
    env: str = "frozen_lake"
    """The shipped env every mode drives."""

    def __post_init__(self) -> None:
        for name in ("sessions", "steps", "concurrency", "memory_sessions"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
        for name in ("burst", "live"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name.replace('_', '-')} must not be negative")


@dataclass
class ModeResult:
    mode: str
    spawn_ms: dict[str, float] = field(default_factory=dict)
    """New session to first tool result with the official Python SDK client."""
    spawn_raw_ms: dict[str, float] = field(default_factory=dict)
    """The same with a minimal HTTP client (managed modes): the server's share."""
    call_ms: dict[str, float] = field(default_factory=dict)
    throughput_calls_s: float = 0.0
    burst_ready_s: float | None = None
    burst_errors: int = 0
    rss_mb: float | None = None
    uss_mb: float | None = None
    live: dict[str, Any] = field(default_factory=dict)
    ray: dict[str, Any] = field(default_factory=dict)
    """`ray-fork`: memory per node and the failure timings (`bench/cluster.py`)."""
    errors: list[str] = field(default_factory=list)


def percentiles(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {}
    ordered = sorted(samples)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {
        "p50": pick(0.5),
        "p95": pick(0.95),
        "p99": pick(0.99),
        "mean": round(statistics.fmean(ordered), 3),
        "n": len(ordered),
    }


# -- targets ------------------------------------------------------------------------------------------------------
