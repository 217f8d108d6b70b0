"""Operations endpoints: `/health` (JSON, 503 when not serving) and `/metrics` (Prometheus text).

`/health` is `ok`, or `degraded` when a start failed in the last five minutes or the pool is at 90 % of
`--max-instances` or of its port range; it answers 503 while the server is starting up or shutting down.
`fork_server` says whether `--fork-server` is in use and, when instances fall back to a plain spawn, why.
"""

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcpsim.pool import InstancePool, State
from mcpsim.server.ops.metrics import Metrics
from mcpsim.server.ops.resources import ResourceSampler

NEAR_LIMIT = 0.9


def health(pool: InstancePool, phase: str, public: bool = False) -> tuple[int, dict[str, Any]]:
    """The `/health` answer: (HTTP status, body). `phase` is starting, serving or stopping.

    `public` (a token is set, and `/health` stays open to all) leaves out the command line and error texts.
    """
    config = pool.config
    live = pool.live_count
    ports = pool.ports
    recent = [failure for failure in pool.spawn_failures if failure["time"] > time.time() - 300]
    degraded = bool(recent) or live >= NEAR_LIMIT * config.max_instances
    if config.command.uses_port:
        degraded = degraded or len(ports.leased) >= NEAR_LIMIT * ports.size
    environment = {
        "state": "ready" if pool.prepared else ("failed" if pool.prepare_error else "preparing"),
        "isolation": config.isolation.isolation,
        "environments": pool.prepared.environments if pool.prepared else [],
        "error": str(pool.prepare_error) if pool.prepare_error and not public else None,
    }
    degraded = degraded or pool.prepare_error is not None
    fork_server = pool.preparation.fork_status()
    if public and fork_server["fallback_reason"] is not None:  # reasons quote the command line
        fork_server = {**fork_server, "fallback_reason": "not usable", "last_fork_error": None}
    status = phase if phase != "serving" else ("degraded" if degraded else "ok")
    counts = pool.counts()
    body: dict[str, Any] = {
        "status": status,
        "uptime_s": round(time.time() - pool.started_at, 3),
        "instances": {"live": live, **{str(state): counts.get(str(state), 0) for state in State}},
        "ports": {
            "in_use": len(ports.leased),
            "free": ports.size - len(ports.leased),
            "range": [ports.low, ports.high],
        },
        "limits": {
            "max_instances": config.max_instances,
            "idle_timeout_s": config.idle_timeout,
            "startup_timeout_s": config.startup_timeout,
            **({"sandbox": pool.sandbox.describe()} if pool.sandbox is not None else {}),  # --sandbox standard|strict
        },
        "server": {"transport": config.command.transport, "process_tracking": pool.tracker.mode},
        "environment": environment,
        "fork_server": fork_server,
        "recent_spawn_failures": [
            {key: value for key, value in failure.items() if key != "error"} if public else failure
            for failure in recent
        ],
    }
    if not public:
        body["server"]["command"] = config.command.label
    return (200 if phase == "serving" else 503), body


def ops_routes(
    pool: InstancePool, metrics: Metrics, resources: ResourceSampler, phase: Callable[[], str], public: bool
) -> list[Route]:
    async def health_endpoint(request: Request) -> Response:
        status, body = health(pool, phase(), public)
        return JSONResponse(body, status)

    async def metrics_endpoint(request: Request) -> Response:
        await resources.refresh()
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return [Route("/health", health_endpoint), Route("/metrics", metrics_endpoint)]
