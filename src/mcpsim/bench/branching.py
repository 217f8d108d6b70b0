"""`mcpsim bench --branch`: how long branching a live episode into k copies takes, and what a copy weighs.

A FrozenLake episode (8x8, no holes) is played for `steps` seeded-random moves, then copied k times (k = 1, 8, 64)
three ways, each timed from the request to k copies ready to take a step:
- `fork`: `POST /api/instances/{id}/branch` on a `--fork-server` pool (a live fork of the running process);
- `replay`: the same request with `"method": "replay"` (k fresh instances replaying the recorded calls, checked);
- `client`: no branching at all: the client opens k fresh sessions with the seed and replays the moves itself.
All three on a `--fork-server` pool, so a fresh instance starts the same quick way in each.
Memory: the mean USS (memory no other process shares) of the k=64 copies of each server-side method.
The floor: a bare `os.fork()` of a process that loaded what the FrozenLake server's template loads (the same
preload, so the same memory to copy page tables of), median of `FLOOR_FORKS`.
"""

import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
import psutil
from mcp import Client

from mcpsim.bench.settings import BenchSettings
from mcpsim.bench.targets import ManagedTarget

CONFIG = '{"map_size":8,"frozen_probability":1.0,"max_steps":1000}'
ACTIONS = ["LEFT", "DOWN", "RIGHT", "UP"]
FLOOR_FORKS = 20
_FLOOR = """
import json, os, statistics, sys, time
sys.path.insert(0, sys.argv[1])
import fork_template
fork_template.preload("module", "mcpsim.envs.frozen_lake", [])
import mcpsim.envs.frozen_lake
times = []
for _ in range(int(sys.argv[2])):
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    times.append((time.perf_counter() - started) * 1000)
    os.waitpid(pid, 0)
rss = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
print(json.dumps({"ms": round(statistics.median(times), 2), "rss_mb": round(rss, 1)}))
"""


def moves(steps: int) -> list[str]:
    rng = random.Random(7)
    return [rng.choice(ACTIONS) for _ in range(steps)]


async def _play(client: Client, actions: list[str]) -> None:
    for action in actions:
        await client.call_tool("lake_move", {"action": action})


async def _source_id(http: httpx2.AsyncClient, url: str, seed: int) -> str:
    listed = (await http.get(f"{url}/api/instances")).json()
    return next(item["id"] for item in listed if item["seed"] == seed and not item["parent"])


async def _branch(
    http: httpx2.AsyncClient, url: str, source: str, count: int, method: str
) -> tuple[float, list[dict[str, Any]]]:
    started = time.perf_counter()
    response = await http.post(f"{url}/api/instances/{source}/branch", json={"count": count, "method": method})
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 201:
        raise RuntimeError(f"branch of {count} failed: {response.status_code} {response.text[:300]}")
    return elapsed, response.json()["instances"]


def _uss_mb(pids: list[int]) -> float | None:
    values = []
    for pid in pids:
        try:
            values.append(psutil.Process(pid).memory_full_info().uss / 2**20)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return round(statistics.fmean(values), 1) if values else None


async def _server_side(method: str, counts: list[int], steps: int, repeats: int) -> dict[str, Any]:
    target = ManagedTarget(BenchSettings(), ["--fork-server"])
    out: dict[str, Any] = {"ms": {}, "method": None, "uss_mb_per_copy": None, "source_uss_mb": None}
    try:
        await target.start()
        async with httpx2.AsyncClient(timeout=600) as http:
            url = target.url
            async with Client(f"{url}/mcp?seed=1&config={CONFIG}", mode="legacy") as source:
                await _play(source, moves(steps))
                source_id = await _source_id(http, url, 1)
                for count in counts:
                    times = []
                    for _ in range(repeats if count < 64 else 1):
                        elapsed, copies = await _branch(http, url, source_id, count, method)
                        times.append(elapsed)
                        out["method"] = copies[0]["method"]
                        if count == max(counts):
                            listed = (await http.get(f"{url}/api/instances")).json()
                            pids = [item["pid"] for item in listed if item["parent"] == source_id]
                            source_pid = next(item["pid"] for item in listed if item["id"] == source_id)
                            out["uss_mb_per_copy"] = await anyio.to_thread.run_sync(_uss_mb, pids)
                            out["source_uss_mb"] = await anyio.to_thread.run_sync(_uss_mb, [source_pid])
                        for copy in copies:
                            await http.delete(f"{url}/api/instances/{copy['id']}")
                    out["ms"][str(count)] = round(statistics.median(times), 1)
    finally:
        target.close()
    return out


async def _client_side(counts: list[int], steps: int, repeats: int) -> dict[str, Any]:
    target = ManagedTarget(BenchSettings(), ["--fork-server"])
    out: dict[str, Any] = {"ms": {}, "method": "fresh sessions + replay from the client"}
    actions = moves(steps)
    try:
        await target.start()
        for count in counts:
            times = []
            for _ in range(repeats if count < 64 else 1):
                ready = anyio.Event()
                done = 0

                async def one(ready: anyio.Event = ready, count: int = count) -> None:
                    nonlocal done
                    async with Client(f"{target.url}/mcp?seed=1&config={CONFIG}", mode="legacy") as client:
                        await _play(client, actions)
                        done += 1
                        if done == count:
                            ready.set()
                        await ready.wait()  # hold every copy open until all are ready, as a branch would

                started = time.perf_counter()
                async with anyio.create_task_group() as tg:
                    for _ in range(count):
                        tg.start_soon(one)
                    await ready.wait()
                    times.append((time.perf_counter() - started) * 1000)
                done = 0
            out["ms"][str(count)] = round(statistics.median(times), 1)
    finally:
        target.close()
    return out


def _bare_fork() -> dict[str, Any]:
    """The floor of a live fork: `os.fork()` alone, in a process as big as the server (see the module)."""
    import mcpsim.proc

    proc_dir = str(Path(mcpsim.proc.__file__).parent)
    done = subprocess.run(
        [sys.executable, "-c", _FLOOR, proc_dir, str(FLOOR_FORKS)], capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        return {"error": done.stderr[-300:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


async def run_branching(
    steps: int = 50,
    counts: tuple[int, ...] = (1, 8, 64),
    repeats: int = 3,
    methods: tuple[str, ...] = ("fork", "replay", "client"),
) -> dict[str, Any]:
    ks = list(counts)
    report: dict[str, Any] = {"episode_steps": steps, "counts": ks, "load_average_before": list(psutil.getloadavg())}
    report["bare_fork"] = await anyio.to_thread.run_sync(_bare_fork)
    for method in methods:
        if method == "client":
            report[method] = await _client_side(ks, steps, repeats)
        else:
            report[method] = await _server_side(method, ks, steps, repeats)
    return {
        **report,
        "cpus": psutil.cpu_count(),
        "load_average": list(psutil.getloadavg()),
        "time": time.time(),
    }


def print_branching(report: dict[str, Any]) -> None:
    counts = report["counts"]
    print(f"branch latency, request to k ready copies, after a {report['episode_steps']}-step FrozenLake episode")
    print(f"({report['cpus']} cpus, load average {report['load_average'][0]:.1f})")
    print(f"{'method':<10}" + "".join(f"{'k=' + str(k):>12}" for k in counts) + f"{'USS/copy':>12}")
    for name in ("fork", "replay", "client"):
        if name not in report:
            continue
        row = report[name]
        uss = row.get("uss_mb_per_copy")
        cells = "".join(f"{str(row['ms'].get(str(k), '-')) + ' ms':>12}" for k in counts)
        print(f"{name:<10}{cells}{(f'{uss} MB' if uss is not None else '-'):>12}")
    floor = report.get("bare_fork", {})
    if "ms" in floor:
        print(f"floor: a bare os.fork() of a process as big as the server ({floor['rss_mb']} MB RSS): {floor['ms']} ms")
    if report.get("fork", {}).get("source_uss_mb") is not None:
        print(f"(the source's own USS: {report['fork']['source_uss_mb']} MB)")
