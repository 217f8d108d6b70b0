"""Running the benchmark modes one after another and collecting their report (see the package docstring)."""

import os
import platform
import time
from dataclasses import asdict
from typing import Any

import anyio
from mcp import Client

from mcpsim.bench.measure import (
    calls,
    first_result_ms,
    measure_burst,
    measure_live,
    measure_memory,
    measure_session_growth,
    memory_mb,
)
from mcpsim.bench.settings import MODE_FLAGS, BenchSettings, ModeResult, percentiles
from mcpsim.bench.targets import DirectTarget, InProcessTarget, ManagedTarget
from mcpsim.wire import VERSION


async def bench_managed(mode: str, settings: BenchSettings, target: ManagedTarget | None = None) -> ModeResult:
    result = ModeResult(mode)
    if target is not None:
        pass
    elif mode == "in-process":
        target = InProcessTarget(settings)
    else:
        target = ManagedTarget(settings, MODE_FLAGS.get(mode, []))
    try:
        await target.start()
        if mode == "in-process":  # first, before other sessions raise the heap's high-water mark
            await measure_session_growth(result, target, settings)
        seeds = list(range(settings.sessions))
        if mode == "managed-warm":
            await target.announce(seeds)
        result.spawn_ms = percentiles([await first_result_ms(target.client(seed)) for seed in seeds])
        raw_seeds = [700 + seed for seed in seeds]
        if mode == "managed-warm":
            await target.announce(raw_seeds)
        result.spawn_raw_ms = percentiles([await target.raw_first_result_ms(seed) for seed in raw_seeds])

        async def managed_client(seed: int) -> Client:
            return target.client(seed)

        latencies, result.throughput_calls_s = await calls(managed_client, settings)
        result.call_ms = percentiles(latencies)
        await measure_burst(result, target, settings, mode)
        if mode != "in-process":
            await measure_memory(result, target, settings)
        if settings.live:
            result.live = await measure_live(target, settings.live)
    finally:
        if not mode.startswith("ray"):
            target.close()
    return result


async def bench_ray(mode: str, settings: BenchSettings) -> ModeResult:
    """The managed phases through a `--ray` front of a local 3-node cluster, then memory per node, then the
    failures (they kill an agent and a node, so they come last)."""
    from mcpsim.bench.cluster import RayTarget, failures, hop, local_cluster, node_memory

    with local_cluster(3) as cluster:
        target = RayTarget(settings, MODE_FLAGS.get(mode, []), cluster.address, cluster.count)
        try:
            result = await bench_managed(mode, settings, target)
            await anyio.sleep(2)  # sessions ended: instances gone
            result.ray["node_memory_idle"] = await anyio.to_thread.run_sync(
                node_memory, cluster, set(await target.instance_pids())
            )
            result.ray["hop_ms"] = await hop(target, settings.steps)
            result.ray["failures"] = await failures(cluster, target, settings)
        finally:
            target.close()
    return result


async def bench_direct(settings: BenchSettings) -> ModeResult:
    result = ModeResult("direct")
    target = DirectTarget(settings)
    try:
        result.spawn_ms = percentiles([await first_result_ms(target.stdio_client(s)) for s in range(settings.sessions)])
        latencies, result.throughput_calls_s = await calls(target.http_client, settings)
        result.call_ms = percentiles(latencies)
        result.rss_mb, result.uss_mb = await anyio.to_thread.run_sync(memory_mb, target.pids())
    finally:
        await target.close()
    return result


def machine_info() -> dict[str, Any]:
    """What a report names the machine by: its figures only compare with runs on the same kind of machine."""
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


async def run_bench(modes: list[str], settings: BenchSettings) -> dict[str, Any]:
    results = []
    for mode in modes:
        if mode == "direct":
            results.append(await bench_direct(settings))
        elif mode.startswith("ray"):
            results.append(await bench_ray(mode, settings))
        else:
            results.append(await bench_managed(mode, settings))
    return {
        "mcpsim": VERSION,
        "machine": machine_info(),
        "settings": asdict(settings),
        "results": [asdict(r) for r in results],
        "time": time.time(),
    }
