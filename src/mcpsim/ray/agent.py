"""`NodeAgent`: the one Ray actor per node that owns that node's mcpsim (`node.py`) and its fronts' leases.

Named `mcpsim-agent-<node id>` in the `mcpsim` namespace and detached, so every front of the cluster finds the
same agent and none owns it; pinned to its node (node affinity, not soft) and claiming no CPU, so it never
keeps a trainer's task off the node. Its runtime_env sets `RAY_kill_child_processes_on_worker_exit=false`: Ray
would otherwise SIGKILL the node's mcpsim when the agent's worker exits, before mcpsim could end its instances'
own children; mcpsim stops by itself on its stdin's EOF instead (`node.py`).

Leases (`--ray-lease`): a front claims the sessions and handles it started and renews its lease; the agent
checks every `REAP_PERIOD` seconds and ends the instances of a front whose lease ran out (the front died). A
claim is forgotten once its instance is gone, so the table is bounded by the node's live instances. Every
`PRUNE_PERIOD` the agent also drops the registry keys of its own ended instances.
"""

import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import replace
from typing import Any

import httpx

from mcpsim.errors import StartError
from mcpsim.ray import registry
from mcpsim.ray.node import NodeSpec, encode

logger = logging.getLogger(__name__)

REAP_PERIOD = 0.5
"""Seconds between lease checks."""
PRUNE_PERIOD = 60.0
"""Seconds between two sweeps of the registry for keys of this agent's ended instances."""
START_TIMEOUT = 60.0
"""Seconds for the node's mcpsim to print its URL."""
KEPT_VARIABLES = ("RAY_TMPDIR",)
"""Ray variables the node's mcpsim keeps (none of them secret); every other `RAY_*` is removed."""


def agent_name(node_id: str) -> str:
    return f"mcpsim-agent-{node_id}"


def actor_options(node_id: str) -> dict[str, Any]:
    """`.options(...)` of the agent of `node_id` (see the module docstring)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return {
        "name": agent_name(node_id),
        "namespace": "mcpsim",
        "lifetime": "detached",
        "get_if_exists": True,
        "num_cpus": 0,
        "max_restarts": 0,
        "max_concurrency": 64,
        "scheduling_strategy": NodeAffinitySchedulingStrategy(node_id, soft=False),
        "runtime_env": {"env_vars": {"RAY_kill_child_processes_on_worker_exit": "false"}},
    }


class NodeAgent:
    """Runs the node's mcpsim and ends leased instances; wrapped by `ray.remote` where it is created."""

    def __init__(self, spec: NodeSpec, fingerprint: str) -> None:
        import ray

        self.node_id = ray.get_runtime_context().get_node_id()
        if not spec.host:  # the node's address as Ray knows it (127.0.0.1 in a local cluster)
            spec = replace(spec, host=ray.util.get_node_ip_address())
        self.fingerprint = fingerprint
        self.token = spec.token
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_") or k in KEPT_VARIABLES}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mcpsim.ray.node"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            start_new_session=True,  # its own process group; our signals are not its
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(encode(spec))
        self.process.stdin.flush()  # stdin stays open: its EOF is this agent's death
        line = self.process.stdout.readline()
        if not line:
            raise StartError(
                f"node {self.node_id}: its mcpsim exited ({self.process.wait()}) before serving"
                " (its stderr is in this agent's Ray worker log)"
            )
        self.url = json.loads(line)["url"]
        self.leases: dict[str, float] = {}
        self.claims: dict[str, set[str]] = {}
        self.reaper: asyncio.Task[None] | None = None
        self.client: httpx.AsyncClient | None = None

    async def info(self) -> dict[str, Any]:
        """What a front needs to use this node: its URL, token, the pid of its mcpsim, the pool fingerprint."""
        self._start_reaper()
        return {
            "node_id": self.node_id,
            "url": self.url,
            "token": self.token,
            "pid": self.process.pid,
            "agent_pid": os.getpid(),
            "fingerprint": self.fingerprint,
        }

    async def bench_relay(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        """For `mcpsim bench`: one request to this node's mcpsim made by the agent and answered over the actor
        call, to price that data path against the front's HTTP hop (docs/scaling.md)."""
        assert self.client is not None
        reply = await self.client.post(f"{self.url}{path}", headers=headers, content=body)
        return reply.status_code, reply.content

    async def claim(self, front: str, lease: float, ids: list[str]) -> None:
        """Front `front` started the instances with these session ids or handles; its lease is `lease` s."""
        self.leases[front] = time.monotonic() + lease
        self.claims.setdefault(front, set()).update(ids)

    async def renew(self, front: str, lease: float) -> None:
        if front in self.leases:
            self.leases[front] = time.monotonic() + lease

    def _start_reaper(self) -> None:
        if self.reaper is None:
            self.client = httpx.AsyncClient(headers={"authorization": f"Bearer {self.token}"}, timeout=10)
            self.reaper = asyncio.get_running_loop().create_task(self._reap())

    async def _reap(self) -> None:
        assert self.client is not None
        pruned = time.monotonic()
        while True:
            await asyncio.sleep(REAP_PERIOD)
            now = time.monotonic()
            expired = [front for front, until in self.leases.items() if until < now]
            prune = now - pruned > PRUNE_PERIOD
            if not expired and not prune and sum(map(len, self.claims.values())) < 1024:
                continue  # nothing to end, and the claims are small enough to prune later
            with contextlib.suppress(httpx.HTTPError, ValueError):
                listing = (await self.client.get(f"{self.url}/api/instances")).json()
                live = {key: item["id"] for item in listing for key in (item["id"], item.get("session_id")) if key}
                if prune:  # the registry keys of this agent's ended instances
                    pruned = now
                    key = f"{self.node_id}.{os.getpid()}"
                    with contextlib.suppress(Exception):
                        await asyncio.to_thread(registry.prune, key, set(live))
                for front in expired:
                    doomed = {live[key] for key in self.claims.pop(front, set()) if key in live}
                    del self.leases[front]
                    logger.warning("front %s lost its lease: ending %d instances", front, len(doomed))
                    for instance in doomed:
                        await self.client.delete(f"{self.url}/api/instances/{instance}")
                for ids in self.claims.values():
                    ids.intersection_update(live)

    async def stop(self) -> None:
        """End the node's mcpsim (and so its instances) before the agent is killed."""
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                await asyncio.to_thread(self.process.wait, 20)
            except subprocess.TimeoutExpired:
                self.process.kill()
