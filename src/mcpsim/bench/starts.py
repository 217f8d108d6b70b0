"""`mcpsim bench --starts A,B,...`: session starts and per-call latency of several modes, paired round by round.

`--compare` runs its modes one after another, so on a loaded machine a difference of a few ms in a start (the
fork server with and without `--sandbox strict`, say) drowns in the drift between the two phases: the same pair
measured +33 ms in one run and -7 ms in the next. Here every mode's server is started at once and kept up, and
each round measures every mode once, in the given order on even rounds and reversed on odd ones (so neither
mode always goes first): a new session to its first result with a minimal HTTP client (the server's share) and
with the SDK client, then `steps` calls on one open session. A mode's difference from the first mode is taken per
round (the two measurements share that moment's load) and the median over the rounds is reported; it held to
+4.4..+5.0 ms over 40 rounds where the sequential phases did not agree on its sign.
"""

import statistics
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import anyio
import psutil
from mcp import Client

from mcpsim.bench.measure import calls, first_result_ms
from mcpsim.bench.run import machine_info
from mcpsim.bench.settings import MODE_FLAGS, MODES, BenchSettings, percentiles
from mcpsim.bench.targets import InProcessTarget, ManagedTarget
from mcpsim.errors import ConfigError
from mcpsim.wire import VERSION

STARTS_MODES = tuple(mode for mode in MODES if mode != "direct" and not mode.startswith("ray"))
"""Modes that are one local server each: `direct` has no server to keep up (its start is the client spawning a
stdio server), `ray-*` needs a Ray cluster of its own."""
RAW_SEED, SDK_SEED, CALL_SEED = 1000, 3000, 5000
"""Seed of round r's raw start, SDK start and call session: a fresh seed per measurement, so nothing warmed for
one measurement (an announced instance, a cached episode) helps the next."""
METRICS = ("spawn_raw_ms", "spawn_ms", "call_p50_ms")
"""The per-round samples paired against the first mode."""


@dataclass(frozen=True)
class StartsSettings:
    """What `--starts` is asked to measure; checked when made, before any server starts."""

    modes: tuple[str, ...]
    rounds: int = 20
    """Rounds; each measures every mode once (raw start, SDK start, `steps` calls)."""
    steps: int = 50
    """Calls per round per mode on one open session."""

    def __post_init__(self) -> None:
        refused = [mode for mode in self.modes if mode == "direct" or mode.startswith("ray")]
        if refused:
            raise ConfigError(
                f"--starts cannot measure {', '.join(refused)} (direct has no server to keep up, ray-* needs a "
                f"cluster per mode); choose from {', '.join(STARTS_MODES)}"
            )
        unknown = [mode for mode in self.modes if mode not in STARTS_MODES]
        if unknown:
            raise ConfigError(f"unknown --starts mode(s) {', '.join(unknown)}; choose from {', '.join(STARTS_MODES)}")
        if len(self.modes) < 2:
            raise ConfigError("--starts pairs modes against the first: give at least 2, e.g. managed-fork,managed")
        if len(set(self.modes)) != len(self.modes):
            raise ConfigError(f"--starts names a mode twice: {','.join(self.modes)}")
        for name in ("rounds", "steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name} must be at least 1")


def round_order(modes: tuple[str, ...], round_no: int) -> tuple[str, ...]:
    """The given order on even rounds, reversed on odd ones: going first or last is shared out evenly."""
    return modes if round_no % 2 == 0 else modes[::-1]


def make_target(mode: str, bench: BenchSettings) -> ManagedTarget:
    if mode == "in-process":
        return InProcessTarget(bench)
    return ManagedTarget(bench, MODE_FLAGS.get(mode, []))


async def measure_round(target: ManagedTarget, round_no: int, bench: BenchSettings) -> dict[str, Any]:
    """One mode's part of a round: raw start, SDK start, then `bench.steps` calls timed on one open session."""

    async def call_client(_seed: int) -> Client:  # `calls` numbers its sessions; the round picks the seed
        return target.client(CALL_SEED + round_no)

    raw = await target.raw_first_result_ms(RAW_SEED + round_no)
    sdk = await first_result_ms(target.client(SDK_SEED + round_no))
    latencies, _ = await calls(call_client, bench)
    return {"spawn_raw_ms": raw, "spawn_ms": sdk, "call_ms": latencies}


async def run_starts(settings: StartsSettings) -> dict[str, Any]:
    """Start every mode's server at once, measure the rounds, summarize; every server is closed whatever happens."""
    bench = BenchSettings(steps=settings.steps, concurrency=1)
    samples: dict[str, dict[str, list[Any]]] = {
        mode: {"spawn_raw_ms": [], "spawn_ms": [], "call_ms": []} for mode in settings.modes
    }
    targets: dict[str, ManagedTarget] = {}
    try:
        for mode in settings.modes:
            targets[mode] = make_target(mode, bench)
        async with anyio.create_task_group() as tg:
            for target in targets.values():
                tg.start_soon(target.start)
        if "managed-warm" in targets:  # its instances warm before their sessions, as in `--compare`
            rounds = range(settings.rounds)
            await targets["managed-warm"].announce([s + r for s in (RAW_SEED, SDK_SEED) for r in rounds])
        for round_no in range(settings.rounds):
            for mode in round_order(settings.modes, round_no):
                measured = await measure_round(targets[mode], round_no, bench)
                for key, value in measured.items():
                    samples[mode][key].append(value)
    finally:
        for target in targets.values():
            target.process.terminate()  # all at once: each close() below then mostly just reaps
        for target in targets.values():
            target.close()
    return {
        "kind": "starts",
        "mcpsim": VERSION,
        "machine": machine_info(),
        "load": {"loadavg_1m": round(psutil.getloadavg()[0], 2)},
        "settings": asdict(settings),
        "modes": summarize(samples, settings.modes),
        "samples": samples,
        "time": time.time(),
    }


def summarize(samples: dict[str, dict[str, list[Any]]], modes: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Per mode: percentiles over all rounds; for every mode but the first, `vs_first`: medians of its per-round
    differences from the first mode (raw start, SDK start, the round's call p50) and how often its raw start was
    the slower of the pair."""
    per_round = {
        mode: {
            "spawn_raw_ms": samples[mode]["spawn_raw_ms"],
            "spawn_ms": samples[mode]["spawn_ms"],
            "call_p50_ms": [statistics.median(latencies) for latencies in samples[mode]["call_ms"]],
        }
        for mode in modes
    }
    first = modes[0]
    out: dict[str, dict[str, Any]] = {}
    for mode in modes:
        out[mode] = {
            "spawn_raw_ms": percentiles(samples[mode]["spawn_raw_ms"]),
            "spawn_ms": percentiles(samples[mode]["spawn_ms"]),
            "call_ms": percentiles([ms for latencies in samples[mode]["call_ms"] for ms in latencies]),
        }
        if mode == first:
            continue
        diffs = {
            metric: [a - b for a, b in zip(per_round[mode][metric], per_round[first][metric], strict=True)]
            for metric in METRICS
        }
        out[mode]["vs_first"] = {
            "first": first,
            "rounds": len(diffs["spawn_raw_ms"]),
            **{metric: round(statistics.median(values), 3) for metric, values in diffs.items()},
            "slower_fraction": round(sum(d > 0 for d in diffs["spawn_raw_ms"]) / len(diffs["spawn_raw_ms"]), 3),
        }
    return out


def print_starts(report: dict[str, Any]) -> None:
    """The table (percentiles per mode, paired medians against the first) and one summary line per mode."""
    from rich.console import Console
    from rich.table import Table

    settings = report["settings"]
    table = Table(
        title=f"starts, ms: {settings['rounds']} interleaved rounds, {settings['steps']} calls per round; vs first: "
        f"paired medians ({report['machine']['cpus']} cpus, load {report['load']['loadavg_1m']})"
    )
    table.add_column("mode", no_wrap=True)
    columns = ("raw start p50", "p95", "SDK start p50", "p95", "call p50", "p95")
    for column in (*columns, "vs first: raw", "SDK", "call p50", "slower"):
        table.add_column(column, justify="right")
    for mode, row in report["modes"].items():
        vs = row.get("vs_first")
        table.add_row(
            mode,
            *(f"{row[key][q]:.1f}" for key in ("spawn_raw_ms", "spawn_ms", "call_ms") for q in ("p50", "p95")),
            *((f"{vs[m]:+.1f}" for m in METRICS) if vs else ("-",) * 3),
            f"{vs['slower_fraction']:.0%}" if vs else "-",
        )
    console = Console(width=None if sys.stdout.isatty() else 150)
    console.print(table)
    for line in summary_lines(report):
        console.print(line, soft_wrap=True)  # one line per mode, however long


def summary_lines(report: dict[str, Any]) -> list[str]:
    return [
        f"{mode} vs {vs['first']}: start {vs['spawn_raw_ms']:+.1f} ms (raw, paired median over {vs['rounds']} "
        f"rounds), {vs['spawn_ms']:+.1f} ms (SDK), call p50 {vs['call_p50_ms']:+.1f} ms; "
        f"slower in {vs['slower_fraction']:.0%} of rounds (raw)"
        for mode, row in report["modes"].items()
        if (vs := row.get("vs_first"))
    ]
