"""`serve_ray`: `mcpsim serve --ray ADDRESS` from start to end.

Order: (`local:N` only) the local cluster starts, in this process's environment (`local.py`); the front joins
the cluster and starts or finds an agent on every alive node (`Nodes.connect`, `ClusterUnreachable` before
serving if it cannot); then it serves. On exit with `local:N`, every agent stops its node's mcpsim (which ends
its instances), the agents are killed, then the cluster; against a cluster it did not start, the front leaves
the agents running (other fronts share them) and its instances to their idle timeout or, with `--ray-lease`,
to their agents, which end them once the lease runs out.
"""

import contextlib
import logging
import secrets
import signal
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route

from mcpsim.ray.cluster import Nodes
from mcpsim.ray.config import RayConfig
from mcpsim.ray.front import RayFront
from mcpsim.ray.local import LocalCluster, ray_environment
from mcpsim.ray.node import NodeSpec
from mcpsim.ray.ops import ops_routes
from mcpsim.ray.registry import Registry
from mcpsim.ray.relay import Relay
from mcpsim.server import ServeConfig
from mcpsim.server.auth import AccessGuard, is_loopback
from mcpsim.server.edge import exception_handlers
from mcpsim.server.fastio import http_implementation
from mcpsim.server.ops.dashboard import STATIC
from mcpsim.wire import FRONT_KEEP_ALIVE_S

logger = logging.getLogger(__name__)


def port_slices(port_range: tuple[int, int], node_ids: list[str]) -> dict[str, tuple[int, int]]:
    """`--port-range` cut in one slice per node, for nodes sharing one machine (`local:N`)."""
    low, high = port_range
    size = max(1, (high - low + 1) // len(node_ids))
    return {node: (low + i * size, min(high, low + (i + 1) * size - 1)) for i, node in enumerate(node_ids)}


def front_app(config: ServeConfig, nodes: Nodes) -> Starlette:
    """The front's app: ops routes, the dashboard page, and `RayFront` for everything else."""
    registry = Registry()
    relay = Relay(nodes)
    front = RayFront(nodes, registry, relay, config.pool.max_message_bytes)
    page = (STATIC / "dashboard.html").read_text()

    async def index(request: Request) -> Response:
        return HTMLResponse(page)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with anyio.create_task_group() as background:
            background.start_soon(nodes.run)
            try:
                yield
            finally:
                background.cancel_scope.cancel()
                await relay.close()
                await nodes.close()

    return Starlette(
        routes=[*ops_routes(nodes, time.time()), Route("/", index), Mount("/", app=front)],
        lifespan=lifespan,
        exception_handlers=exception_handlers(),
        middleware=[Middleware(AccessGuard, credentials=config.credentials, loopback=is_loopback(config.host))],
    )


async def serve_ray(config: ServeConfig, ray: RayConfig, log_level: str = "info") -> None:
    spec = NodeSpec(
        pool=config.pool, host="", token=secrets.token_urlsafe(32), json_response=config.json_response,
        orphan_timeout=config.orphan_timeout, log_level=log_level,
    )  # fmt: skip
    with contextlib.ExitStack() as stack:
        cluster: LocalCluster | None = None
        slices: dict[str, tuple[int, int]] = {}
        if ray.local_nodes is not None:
            stack.enter_context(ray_environment(ray.temp_dir))
            cluster = LocalCluster(ray.local_nodes, ray.port_base, ray.temp_dir, ray.fast_health_checks)
            await anyio.to_thread.run_sync(cluster.start)
            stack.callback(cluster.stop)
            slices = port_slices(config.pool.port_range, [cluster.node_id(i) for i in range(cluster.count)])
            ray = replace(ray, address=cluster.address)
        stack.callback(_disconnect)
        nodes = Nodes(ray, spec, slices)
        if cluster is not None:
            stack.callback(_stop_agents, nodes)  # runs before the cluster stops (callbacks run last-in first)
        await nodes.connect()
        uv_config = uvicorn.Config(
            front_app(config, nodes), host=config.host, port=config.port, log_config=None, access_log=False,
            lifespan="on", timeout_graceful_shutdown=2, loop="asyncio", http=http_implementation(config.fast_io),
            timeout_keep_alive=FRONT_KEEP_ALIVE_S,
        )  # fmt: skip
        logger.info(
            "serving %s on http://%s:%d/mcp over Ray %s (%d nodes)", config.pool.command.label, config.host,
            config.port, ray.address, len(nodes.nodes), extra={"event": "server.start"},
        )  # fmt: skip
        server = _Server(uv_config)
        async with anyio.create_task_group() as tasks:

            async def until_signal() -> None:
                with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                    async for _ in signals:
                        server.should_exit = True

            tasks.start_soon(until_signal)
            await server.serve()
            tasks.cancel_scope.cancel()


class _Server(uvicorn.Server):
    """uvicorn without its signal handling: it re-raises SIGTERM once served, which would kill this process
    before the agents and the local cluster are ended; `serve_ray` turns signals into `should_exit`."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _stop_agents(nodes: Nodes) -> None:
    """`local:N`: every node's mcpsim stopped (its instances ended), then its agent killed."""
    import ray

    agents = [node.actor for node in nodes.nodes.values()]
    with contextlib.suppress(Exception):
        ray.get([agent.stop.remote() for agent in agents], timeout=30)
    for agent in agents:
        with contextlib.suppress(Exception):
            ray.kill(agent)


def _disconnect() -> None:
    import ray

    with contextlib.suppress(Exception):
        ray.shutdown()
