"""`Nodes`: a front's view of the cluster: one `Node` per live agent, placement, failure, leases.

How a front learns capacity: every `REFRESH` seconds it asks Ray which nodes are alive (`ray.nodes()`), starts
an agent on any alive node that has none (so nodes that join are used), and reads each node's `/health`
(`instances.live` and `limits.max_instances`, i.e. that node's `--max-instances`). Between two refreshes it
counts what it placed itself. A new session goes to the node with the most free room; several fronts may race
for a node's last slot, and the loser's node answers 503 (capacity), which is the one answer `front.py` tries
on another node (nothing ran on the first).

A node is dead when Ray says so or its mcpsim refuses connections; its agent key (`node id.agent pid`) is then
remembered as gone, so every session or handle registered under it gets `NodeGone` naming the node at once,
even after a new agent took the node over.
"""

import contextlib
import logging
import secrets
import time
from dataclasses import dataclass, field, replace
from typing import Any

import anyio
import httpx

from mcpsim.errors import ClusterFull, ClusterUnreachable, NodeGone
from mcpsim.pool import PoolConfig
from mcpsim.ray.config import NAMESPACE, RayConfig
from mcpsim.ray.node import NodeSpec

logger = logging.getLogger(__name__)

REFRESH = 0.5
"""Seconds between two looks at the nodes (aliveness, room); also the bound on how stale placement is."""
AGENT_TIMEOUT = 90.0
"""Seconds an agent may take to start (actor placement, then its mcpsim printing its URL)."""
CLIENT_JOIN_ATTEMPTS = 3
"""`ray://`: joins tried when the head's Ray Client server says the driver it starts per client failed (it does,
now and then, on a loaded head); a fresh driver usually starts. Any other failure is final at once."""
GONE_KEPT = 4096
"""Agent keys remembered as gone (oldest forgotten first)."""


@dataclass
class Node:
    """One live agent: its node, the node's mcpsim URL and token, and its room as last seen."""

    key: str
    node_id: str
    url: str
    token: str
    actor: Any
    pid: int
    live: int = 0
    max_instances: int = 0
    placed: int = 0
    alive: bool = True
    reason: str = ""
    health: dict[str, Any] = field(default_factory=dict)

    @property
    def free(self) -> int:
        return self.max_instances - self.live - self.placed

    @property
    def label(self) -> str:
        return f"{self.node_id[:12]} ({self.url})"


def _dead_agents(nodes: list[Node]) -> list[tuple[str, str]]:
    """(key, reason) of the agents that Ray says died (one cheap actor call each, answered in ~1 ms)."""
    from ray.exceptions import ActorDiedError

    import ray

    refs = {node.key: node.actor.info.remote() for node in nodes}
    ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=1.0)
    dead = []
    for key, ref in refs.items():
        if ref in ready:
            try:
                ray.get(ref)
            except ActorDiedError as exc:
                dead.append((key, f"its agent died ({str(exc).splitlines()[0][:200]})"))
            except Exception:  # unavailable for a moment (a node going away): Ray's node view decides
                pass
    return dead


def fingerprint(pool: PoolConfig) -> str:
    """What must agree between fronts sharing agents (the port range may differ per node)."""
    return f"{pool.command.label}|max={pool.max_instances}|{pool.isolation.isolation}|{pool.sandbox.level}"


class Nodes:
    """Owned by the front's lifespan: `connect`, then `run` in a task; `pick`, `get`, `lost` for requests."""

    def __init__(self, ray: RayConfig, spec: NodeSpec, port_slices: dict[str, tuple[int, int]] | None = None) -> None:
        self.ray = ray
        self.spec = spec
        self.port_slices = port_slices or {}
        self.front_id = secrets.token_hex(8)
        self.nodes: dict[str, Node] = {}
        self.gone: dict[str, str] = {}
        self.starting: set[str] = set()
        self.leased: set[str] = set()
        self.failures: list[str] = []
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(2.0, connect=1.0))

    async def connect(self) -> None:
        """Join the cluster and start (or find) an agent on every alive node; `ClusterUnreachable` if not."""
        import ray

        def join() -> None:
            for attempt in range(CLIENT_JOIN_ATTEMPTS):
                try:
                    ray.init(
                        address=self.ray.address, namespace=NAMESPACE, logging_level=logging.WARNING,
                        log_to_driver=False, ignore_reinit_error=True,
                    )  # fmt: skip
                    return
                except Exception as exc:  # ConnectionError, RuntimeError, ValueError by Ray's whim
                    again = "Initialization failure from server" in str(exc) and attempt + 1 < CLIENT_JOIN_ATTEMPTS
                    if not again:
                        raise ClusterUnreachable(
                            f"--ray {self.ray.address}: cannot join the Ray cluster: {exc}"
                        ) from exc
                    logger.warning("--ray %s: the Ray Client's driver did not start; again", self.ray.address)

        await self._probe()
        await anyio.to_thread.run_sync(join)
        alive = await self._alive_nodes()
        if not alive:
            raise ClusterUnreachable(f"--ray {self.ray.address}: the cluster has no alive node")
        async with anyio.create_task_group() as tasks:
            for node_id in alive:
                tasks.start_soon(self._start_agent, node_id, True)
        if not self.nodes:  # one node's agent may be dying or restarting: the refresh retries it; none is fatal
            raise ClusterUnreachable(
                f"--ray {self.ray.address}: no node's agent started: {'; '.join(self.failures) or 'no reason given'}"
            )
        await self.refresh()

    async def _probe(self) -> None:
        """A `HOST:PORT` or `ray://` address that refuses TCP fails at once (`ray.init` retries for a minute)."""
        target = self.ray.address.removeprefix("ray://")
        host, _, port = target.rpartition(":")
        if not host or not port.isdigit():
            return  # auto: Ray finds the address itself
        try:
            with anyio.fail_after(5):
                stream = await anyio.connect_tcp(host.strip("[]"), int(port))
            await stream.aclose()
        except (OSError, TimeoutError) as exc:
            raise ClusterUnreachable(f"--ray {self.ray.address}: nothing answers there ({exc})") from None

    async def _alive_nodes(self) -> list[str]:
        import ray

        nodes = await anyio.to_thread.run_sync(ray.nodes)
        return [node["NodeID"] for node in nodes if node.get("Alive")]

    async def _start_agent(self, node_id: str, strict: bool = False) -> None:
        """The agent of `node_id` (found or created), added to `nodes`. An agent serving other options raises
        if `strict` (the front's start); any other failure is logged and noted in `failures`, and the refresh
        tries that node again (a dead agent's name may still be registered for a moment)."""
        import ray
        from mcpsim.ray.agent import NodeAgent, actor_options

        self.starting.add(node_id)
        spec = self.spec
        if node_id in self.port_slices:
            spec = replace(spec, pool=replace(spec.pool, port_range=self.port_slices[node_id]))

        def create() -> dict[str, Any]:
            actor = ray.remote(NodeAgent).options(**actor_options(node_id)).remote(spec, fingerprint(spec.pool))
            info: dict[str, Any] = ray.get(actor.info.remote(), timeout=AGENT_TIMEOUT)
            return {**info, "actor": actor}

        try:
            info = await anyio.to_thread.run_sync(create)
            if info["fingerprint"] != fingerprint(spec.pool):
                raise ClusterUnreachable(
                    f"node {node_id[:12]}: its agent serves {info['fingerprint']!r}, not {fingerprint(spec.pool)!r}"
                    " (another front started it with other options; use the same ones, or end that agent)"
                )
            key = f"{node_id}.{info['agent_pid']}"
            if key not in self.gone:
                self.nodes[key] = Node(key, node_id, info["url"], info["token"], info["actor"], info["pid"])
        except ClusterUnreachable:
            if strict:
                raise
            logger.exception("no agent on node %s", node_id[:12])
        except Exception as exc:
            self.failures = [*self.failures[-7:], f"node {node_id[:12]}: {str(exc).splitlines()[0][:300]}"]
            logger.warning("no agent on node %s: %s", node_id[:12], exc, extra={"event": "ray.agent_failed"})
        finally:
            self.starting.discard(node_id)

    async def run(self) -> None:
        """Refresh the view every `REFRESH` s and renew this front's lease, until cancelled."""
        last_renewal = 0.0
        async with anyio.create_task_group() as tasks:
            while True:
                await anyio.sleep(REFRESH)
                with contextlib.suppress(Exception):  # a GCS hiccup must not end the front
                    alive = set(await self._alive_nodes())
                    for node in list(self.nodes.values()):
                        if node.node_id not in alive:
                            self.lost(node, "Ray marked the node dead")
                    for key, reason in await anyio.to_thread.run_sync(_dead_agents, list(self.nodes.values())):
                        if key in self.nodes:
                            self.lost(self.nodes[key], reason)
                    covered = {node.node_id for node in self.nodes.values()} | self.starting
                    for node_id in alive - covered:
                        tasks.start_soon(self._start_agent, node_id)
                await self.refresh()
                if self.ray.lease is not None and time.monotonic() - last_renewal > self.ray.lease / 3:
                    last_renewal = time.monotonic()
                    for node in self.nodes.values():
                        if node.key in self.leased:
                            node.actor.renew.remote(self.front_id, self.ray.lease)

    async def refresh(self) -> None:
        """Every node's room from its `/health`; a node whose mcpsim refuses connections is lost."""

        async def look(node: Node) -> None:
            try:
                reply = await self.http.get(f"{node.url}/health")
                body = reply.json()
            except httpx.ConnectError as exc:
                self.lost(node, f"its mcpsim refuses connections ({exc})")
                return
            except (httpx.HTTPError, ValueError):
                return  # slow or busy: keep the last figures
            node.health = body
            node.live = int(body.get("instances", {}).get("live", 0))
            node.max_instances = int(body.get("limits", {}).get("max_instances", 0))
            node.placed = 0

        async with anyio.create_task_group() as tasks:
            for node in list(self.nodes.values()):
                tasks.start_soon(look, node)

    def lost(self, node: Node, reason: str) -> None:
        if self.nodes.pop(node.key, None) is None:
            return
        node.alive, node.reason = False, reason
        self.gone[node.key] = f"node {node.label} is gone: {reason}"
        while len(self.gone) > GONE_KEPT:
            self.gone.pop(next(iter(self.gone)))
        logger.warning("node %s lost: %s", node.label, reason, extra={"event": "ray.node_lost"})

    def get(self, key: str) -> Node:
        """The live node of a registry value, else `NodeGone` naming the node."""
        node = self.nodes.get(key)
        if node is not None:
            return node
        node_id = key.partition(".")[0]
        why = self.gone.get(key, f"node {node_id[:12]} is gone: its agent no longer runs")
        raise NodeGone(f"{why}; the instance ended with it (no call is retried elsewhere)", node_id)

    def pick(self, exclude: set[str] = frozenset()) -> Node:  # type: ignore[assignment]
        """The node with the most free room (`ClusterFull` when none has any)."""
        candidates = [node for node in self.nodes.values() if node.key not in exclude and node.free > 0]
        if not candidates:
            total = sum(node.max_instances for node in self.nodes.values())
            raise ClusterFull(
                f"no room on the Ray cluster: {len(self.nodes)} live node(s) with agents, {total} instance slots"
                " (--max-instances per node), all taken; retry later or add nodes"
            )
        node = max(candidates, key=lambda n: n.free)
        node.placed += 1
        return node

    def any(self) -> Node:
        """The least loaded live node, room or not (for requests that start nothing)."""
        if not self.nodes:
            raise ClusterFull("no live node with an mcpsim agent on the Ray cluster")
        return min(self.nodes.values(), key=lambda n: n.live + n.placed)

    def claim(self, node: Node, ids: list[str]) -> None:
        """With `--ray-lease`: the node's agent ends these when this front's lease runs out."""
        if self.ray.lease is not None:
            self.leased.add(node.key)
            node.actor.claim.remote(self.front_id, self.ray.lease, ids)

    async def close(self) -> None:
        await self.http.aclose()
