"""`mcpsim bench --rollout N`: whole rollouts end to end, steps and episodes per second and CPU per step by process.

What an RL user feels is a rollout's rate, not one call's latency, and on a saturated machine that rate is set by
the CPU every process spends per step. Each run starts a fresh server (`mcpsim serve` with the mode's flags, or
the in-process `SessionEnvServer` as the ceiling), runs `mcpsim.rollout` with the random policy in a client
process of its own (`rollout_client.py`), and reads the CPU of the three parties from the kernel:
- client: the client process over its rollout window (`getrusage`, imports excluded);
- front: the server process itself (`mcpsim serve`, or the whole `SessionEnvServer`);
- children: everything below it - instances, the fork template, the watchdog - read as the live processes' own
  time plus what their parents reaped (`/proc` `cutime`/`cstime`: an instance that ended during the rollout is
  counted by whoever waited for it, the server or the fork template).
`--rounds R` interleaves the modes (A B C, A B C, ...) and reports medians and ratios, which hold up on a
shared machine far better than absolute rates.
"""

import json
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import anyio
import httpx2
import psutil

from mcpsim.bench.settings import BenchSettings
from mcpsim.bench.targets import InProcessTarget, ManagedTarget
from mcpsim.errors import ConfigError

ROLLOUT_MODES: dict[str, tuple[str, ...] | None] = {
    "managed-fork": ("--fork-server",),
    "in-process": None,
    "managed": ("--no-fork-server",),
    "managed-fork-json": ("--fork-server", "--json-response"),
    "managed-fork-fast": ("--fork-server", "--fast-io"),
}
"""Mode -> extra `mcpsim serve` flags (None: the in-process `SessionEnvServer`)."""
DEFAULT_MODES = ("managed-fork", "in-process", "managed")
MAX_EPISODES = 1_000_000
CLIENT_TIMEOUT_S = 3600.0
"""A rollout that has not finished in an hour is stuck: the run fails instead of hanging."""


@dataclass(frozen=True)
class RolloutSettings:
    """What `mcpsim bench --rollout` runs; checked when made."""

    episodes: int = 1024
    concurrency: int = 64
    steps: int = 30
    """Maximum steps per episode (FrozenLake episodes of the random policy end after ~11 on average)."""
    rounds: int = 1
    modes: tuple[str, ...] = DEFAULT_MODES
    env: str = "frozen_lake"

    def __post_init__(self) -> None:
        object.__setattr__(self, "modes", tuple(self.modes))
        for name in ("episodes", "concurrency", "steps", "rounds"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--rollout {name} must be at least 1")
        if self.episodes > MAX_EPISODES:
            raise ConfigError(f"--rollout must be at most {MAX_EPISODES:,} episodes")
        unknown = [mode for mode in self.modes if mode not in ROLLOUT_MODES]
        if unknown or not self.modes:
            raise ConfigError(f"unknown rollout mode(s) {unknown}; choose from {', '.join(ROLLOUT_MODES)}")


@dataclass
class RolloutRun:
    """One rollout against one fresh server."""

    mode: str
    round: int
    elapsed_s: float = 0.0
    episodes: int = 0
    steps: int = 0
    errors: int = 0
    steps_s: float = 0.0
    episodes_s: float = 0.0
    cpu_s: dict[str, float] = field(default_factory=dict)
    cpu_ms_per_step: dict[str, float] = field(default_factory=dict)
    first_error: Any = None


def _tree_cpu(root: int) -> tuple[float, float]:
    """(the root's own CPU seconds, CPU seconds of everything below it, reaped descendants included)."""
    try:
        process = psutil.Process(root)
        own = process.cpu_times()
        children = process.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0.0, 0.0
    below = own.children_user + own.children_system
    for child in children:
        try:
            times = child.cpu_times()
        except psutil.NoSuchProcess:  # ended just now: its parent's cutime has it (or will, once reaped)
            continue
        below += times.user + times.system + times.children_user + times.children_system
    return own.user + own.system, below


INSTANCES_GONE_S = 15.0


async def _instances_gone(url: str) -> None:
    """Wait (up to `INSTANCES_GONE_S`) until the server ended the rollout's instances, so their CPU has been reaped
    and counted."""
    with anyio.move_on_after(INSTANCES_GONE_S):
        async with httpx2.AsyncClient(timeout=10) as http:
            while True:
                response = await http.get(f"{url}/api/instances")
                if response.status_code != 200 or not response.json():
                    return
                await anyio.sleep(0.1)


async def run_one(mode: str, round_no: int, settings: RolloutSettings) -> RolloutRun:
    flags = ROLLOUT_MODES[mode]
    bench = BenchSettings(env=settings.env)
    target = InProcessTarget(bench) if flags is None else ManagedTarget(bench, flags)
    run = RolloutRun(mode, round_no)
    try:
        await target.start()
        before = await anyio.to_thread.run_sync(_tree_cpu, target.process.pid)
        argv = [sys.executable, "-m", "mcpsim.bench.rollout_client", f"{target.url}/mcp"]
        argv += [str(settings.episodes), str(settings.steps), str(settings.concurrency)]
        with anyio.fail_after(CLIENT_TIMEOUT_S):
            done = await anyio.run_process(argv, check=False, stderr=subprocess.PIPE)
        if done.returncode != 0:
            raise RuntimeError(f"the rollout client failed ({done.returncode}): {done.stderr.decode()[-2000:]}")
        client = json.loads(done.stdout.decode().strip().splitlines()[-1])
        if flags is not None:
            await _instances_gone(target.url)
        after = await anyio.to_thread.run_sync(_tree_cpu, target.process.pid)
    finally:
        target.close()
    run.elapsed_s, run.episodes, run.steps = client["elapsed_s"], client["episodes"], client["steps"]
    run.errors, run.first_error = client["errors"], client["first_error"]
    run.steps_s = round(run.steps / run.elapsed_s, 2) if run.elapsed_s else 0.0
    run.episodes_s = round(run.episodes / run.elapsed_s, 3) if run.elapsed_s else 0.0
    run.cpu_s = {
        "client": client["cpu_s"],
        "front": round(after[0] - before[0], 4),
        "children": round(max(0.0, after[1] - before[1]), 4),
    }
    run.cpu_s["total"] = round(sum(run.cpu_s.values()), 4)
    run.cpu_ms_per_step = {key: round(1000 * value / max(1, run.steps), 4) for key, value in run.cpu_s.items()}
    return run


def _median(runs: list[RolloutRun], pick: Any) -> float:
    return round(statistics.median(pick(run) for run in runs), 4)


def summarize(runs: list[RolloutRun], modes: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Per mode: medians over its rounds, and ratios against the first mode and the in-process ceiling."""
    out: dict[str, dict[str, Any]] = {}
    for mode in modes:
        mine = [run for run in runs if run.mode == mode]
        out[mode] = {
            "rounds": len(mine),
            "steps_s": _median(mine, lambda r: r.steps_s),
            "episodes_s": _median(mine, lambda r: r.episodes_s),
            "steps": _median(mine, lambda r: r.steps),
            "errors": sum(run.errors for run in mine),
            "cpu_ms_per_step": {
                key: _median(mine, lambda r, key=key: r.cpu_ms_per_step[key])
                for key in ("client", "front", "children", "total")
            },
        }
    for mode in modes:
        for base in dict.fromkeys((modes[0], "in-process")):
            if base in out and base != mode and out[base]["steps_s"]:
                # per round (interleaved, so a round shares the machine's load), then the median
                pairs = [
                    (a.steps_s / b.steps_s)
                    for a, b in zip(
                        [r for r in runs if r.mode == mode], [r for r in runs if r.mode == base], strict=False
                    )
                    if b.steps_s
                ]
                out[mode][f"steps_s_vs_{base}"] = round(statistics.median(pairs), 3) if pairs else None
    return out


async def run_rollout_bench(settings: RolloutSettings) -> dict[str, Any]:
    runs = []
    for round_no in range(settings.rounds):
        for mode in settings.modes:
            runs.append(await run_one(mode, round_no, settings))
    return {
        "kind": "rollout",
        "settings": asdict(settings),
        "load": {"cpus": psutil.cpu_count(), "loadavg_1m": round(psutil.getloadavg()[0], 2)},
        "summary": summarize(runs, settings.modes),
        "runs": [asdict(run) for run in runs],
        "time": time.time(),
    }


def print_rollout(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    settings = report["settings"]
    table = Table(
        title=f"rollout: {settings['episodes']} episodes x <= {settings['steps']} steps, concurrency "
        f"{settings['concurrency']}, {settings['rounds']} round(s), medians (load {report['load']['loadavg_1m']})"
    )
    for column in ("mode", "steps/s", "episodes/s", "vs first", "vs in-process", "CPU ms/step client", "front"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    table.add_column("children", justify="right")
    table.add_column("total", justify="right")
    first = settings["modes"][0]
    for mode, row in report["summary"].items():
        cpu = row["cpu_ms_per_step"]
        table.add_row(
            mode + (f" ({row['errors']} errors)" if row["errors"] else ""),
            f"{row['steps_s']:.1f}",
            f"{row['episodes_s']:.2f}",
            _ratio(row.get(f"steps_s_vs_{first}")),
            _ratio(row.get("steps_s_vs_in-process")),
            f"{cpu['client']:.2f}",
            f"{cpu['front']:.2f}",
            f"{cpu['children']:.2f}",
            f"{cpu['total']:.2f}",
        )
    Console(width=None if sys.stdout.isatty() else 150).print(table)


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"
