"""`mcpsim bench --mode ray-fork`: the managed phases through a `--ray` front, on a local 3-node cluster, plus
memory per node and the failure timings.

The bench starts the cluster itself (`LocalCluster`, the code `--ray local:3` runs, in this process's
environment: temp dir, token, fast health checks) and the front as `mcpsim serve --ray ADDRESS --fork-server`,
so it can kill an agent, a node, or a front while it watches:
- agent killed (`ray.kill`): kill to the session's first failed call, and to its node mcpsim and instance gone;
- node killed (raylet and store SIGKILLed, `allow_graceful=False`): kill to the first failed call, and to the
  instance gone;
- front with `--ray-lease 2` SIGKILLed: kill to its instance gone (seen through another front).
Memory per node: RSS/USS of a worker node's raylet with every descendant but the instances (its Ray agents,
the mcpsim agent, the node's mcpsim and fork template), with no session open.
"""

import contextlib
import json
import os
import signal
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import httpx
import psutil

from mcpsim.bench.measure import memory_mb
from mcpsim.bench.ports import plan
from mcpsim.bench.settings import BenchSettings
from mcpsim.bench.targets import ManagedTarget
from mcpsim.ray import LocalCluster, ray_environment

POLL = 0.01


class RayTarget(ManagedTarget):
    """A `mcpsim serve --ray ADDRESS` front of a cluster this bench started."""

    start_timeout = 300.0

    def __init__(self, settings: BenchSettings, extra: Sequence[str], address: str, nodes: int) -> None:
        self.address, self.nodes = address, nodes
        super().__init__(settings, extra)

    def command(self, settings: BenchSettings, extra: Sequence[str]) -> list[str]:
        return [*super().command(settings, extra), "--ray", self.address]

    def ready(self, health: dict[str, Any]) -> bool:
        nodes = health.get("nodes", [])  # every node's environment (fork template) built: starts are timed
        return (
            health.get("status") == "ok"
            and len(nodes) == self.nodes
            and all(node.get("environment") == "ready" for node in nodes)
        )


@contextlib.contextmanager
def local_cluster(nodes: int = 3) -> Any:
    """A bench-owned local cluster (`RAY_TMPDIR` of its own, removed after); yields it joined by this process."""
    import shutil

    import ray

    root = Path(tempfile.mkdtemp(prefix="mcpsim-bench-ray-"))
    with ray_environment(root):
        cluster = LocalCluster(nodes, plan().ray_port_base(), root)
        try:
            cluster.start()
            ray.init(address=cluster.address, namespace="mcpsim", log_to_driver=False)
            yield cluster
        finally:
            _end_agents()
            ray.shutdown()
            cluster.stop()
            shutil.rmtree(root, ignore_errors=True)


def _end_agents() -> None:
    import ray

    if not ray.is_initialized():  # the cluster did not start; asking Ray would start a new one here
        return
    for info in ray.util.list_named_actors(all_namespaces=True):
        if info["namespace"] == "mcpsim" and info["name"].startswith("mcpsim-agent-"):
            with contextlib.suppress(Exception):
                actor = ray.get_actor(info["name"], namespace="mcpsim")
                ray.get(actor.stop.remote(), timeout=30)
                ray.kill(actor)


def node_memory(cluster: LocalCluster, instance_pids: set[int]) -> dict[str, Any]:
    """RSS/USS (MB) of each worker node's processes (raylet and descendants but instances), idle."""
    out: dict[str, Any] = {}
    for index in range(1, cluster.count):
        raylet = cluster.nodes[index].all_processes["raylet"][0].process.pid
        tree = [raylet, *(p.pid for p in psutil.Process(raylet).children(recursive=True))]
        kept = [pid for pid in tree if pid not in instance_pids]
        rss, uss = memory_mb(kept)  # means per process
        out[f"worker{index}"] = {
            "rss_mb": round((rss or 0) * len(kept), 1), "uss_mb": round((uss or 0) * len(kept), 1),
            "processes": len(kept),
        }  # fmt: skip
    return out


INIT = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}},
}  # fmt: skip
HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
CALL = {
    "jsonrpc": "2.0",
    "id": 2,
    "method": "tools/call",
    "params": {"name": "lake_move", "arguments": {"action": "LEFT"}},
}


async def _session(http: httpx.AsyncClient, url: str) -> tuple[dict[str, str], dict[str, Any]]:
    opened = await http.post(f"{url}/mcp", json=INIT, headers=HEADERS)
    headers = {**HEADERS, "mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
    await http.post(f"{url}/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
    await http.post(f"{url}/mcp", json=CALL, headers=headers)
    listing = (await http.get(f"{url}/api/instances")).json()
    return headers, next(i for i in listing if i["session_id"] == headers["mcp-session-id"])


async def _until_failed(http: httpx.AsyncClient, url: str, headers: dict[str, str], started: float) -> float:
    while True:
        if (await http.post(f"{url}/mcp", json=CALL, headers=headers)).status_code != 200:
            return round(time.perf_counter() - started, 3)
        await anyio.sleep(POLL)


async def _until_gone(pids: list[int], started: float, limit: float = 30) -> float | None:
    while True:
        if not any(_running(pid) for pid in pids):
            return round(time.perf_counter() - started, 3)
        if time.perf_counter() - started > limit:
            return None
        await anyio.sleep(POLL)


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def hop(target: RayTarget, calls: int = 200) -> dict[str, Any]:
    """Per-call latency (ms) of one session through the front vs one straight to a node's own mcpsim (its URL
    and token from the agent), calls interleaved so both see the same load: the price of the front's hop; and
    the direct session's calls made through an actor call to the agent (`actor` - `direct`: what relaying over
    actor calls would cost instead of the hop)."""
    import ray
    from mcpsim.bench.settings import percentiles

    async with httpx.AsyncClient(timeout=60) as http:
        via_front, item = await _session(http, target.url)
        node = ray.get(ray.get_actor(f"mcpsim-agent-{item['node']}", namespace="mcpsim").info.remote())
        direct_url = node["url"]
        auth = {"authorization": f"Bearer {node['token']}"}
        opened = await http.post(f"{direct_url}/mcp", json=INIT, headers={**HEADERS, **auth})
        direct = {
            **HEADERS,
            **auth,
            "mcp-session-id": opened.headers["mcp-session-id"],
            "mcp-protocol-version": "2025-11-25",
        }
        await http.post(
            f"{direct_url}/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=direct
        )
        agent = ray.get_actor(f"mcpsim-agent-{item['node']}", namespace="mcpsim")
        plain = {k: v for k, v in direct.items() if k != "authorization"}
        body = json.dumps(CALL).encode()
        samples: dict[str, list[float]] = {"front": [], "direct": [], "actor": []}
        for _ in range(calls):
            for name, url, headers in (("front", target.url, via_front), ("direct", direct_url, direct)):
                started = time.perf_counter()
                await http.post(f"{url}/mcp", json=CALL, headers=headers)
                samples[name].append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()  # the same call through an actor call to the agent, then its HTTP
            await agent.bench_relay.remote("/mcp", plain, body)
            samples["actor"].append((time.perf_counter() - started) * 1000)
        await http.delete(f"{target.url}/mcp", headers=via_front)
        await http.delete(f"{direct_url}/mcp", headers=direct)
    return {name: percentiles(values) for name, values in samples.items()}


async def failures(cluster: LocalCluster, target: RayTarget, settings: BenchSettings) -> dict[str, Any]:
    """The three failure timings (see the module docstring), seconds."""
    import ray

    out: dict[str, Any] = {}
    async with httpx.AsyncClient(timeout=60) as http:
        headers, item = await _session(http, target.url)
        agent = ray.get_actor(f"mcpsim-agent-{item['node']}", namespace="mcpsim")
        node_mcpsim = ray.get(agent.info.remote())["pid"]
        started = time.perf_counter()
        ray.kill(agent, no_restart=True)
        out["agent_kill_to_error_s"] = await _until_failed(http, target.url, headers, started)
        out["agent_kill_to_processes_gone_s"] = await _until_gone([node_mcpsim, item["pid"]], started)

        await anyio.sleep(3)  # the front starts a new agent on that node
        held = [await _session(http, target.url) for _ in range(4)]
        head = cluster.node_id(0)
        headers, item = next((h, i) for h, i in held if i["node"] != head)
        index = next(i for i in range(1, cluster.count) if cluster.node_id(i) == item["node"])
        started = time.perf_counter()
        await anyio.to_thread.run_sync(cluster.remove, index)
        out["node_kill_to_error_s"] = await _until_failed(http, target.url, headers, started)
        out["node_kill_to_instance_gone_s"] = await _until_gone([item["pid"]], started)
        for other, _ in held:
            await http.delete(f"{target.url}/mcp", headers=other)

        leased = RayTarget(settings, ["--fork-server", "--ray-lease", "2"], target.address, cluster.count - 1)
        try:
            await leased.start()
            headers, item = await _session(http, leased.url)
            started = time.perf_counter()
            leased.process.send_signal(signal.SIGKILL)
            out["lease_s"] = 2.0
            out["front_kill_to_instance_gone_s"] = await _until_gone([item["pid"]], started)
        finally:
            leased.close()
    out["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return out
