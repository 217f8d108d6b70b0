"""Operations endpoints: `/health` (JSON, 503 when not serving) and `/metrics` (Prometheus text)."""

import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcpsim.pool.pool import InstancePool
from mcpsim.server.metrics import Metrics

NEAR_LIMIT = 0.9


def health(pool: InstancePool, serving: bool) -> tuple[int, dict[str, Any]]:
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
        "error": str(pool.prepare_error) if pool.prepare_error else None,
    }
    degraded = degraded or pool.prepare_error is not None
    status = "ok" if not degraded else "degraded"
    if not serving:
        status = "stopping"
    body = {
        "status": status,
        "uptime_s": round(time.time() - pool.started_at, 3),
        "instances": {"live": live, **pool.counts()},
        "ports": {
            "in_use": len(ports.leased),
            "free": ports.size - len(ports.leased),
            "range": [ports.low, ports.high],
        },
        "limits": {
            "max_instances": config.max_instances,
            "idle_timeout_s": config.idle_timeout,
            "startup_timeout_s": config.startup_timeout,
        },
        "server": {"command": config.command.label, "transport": config.command.transport},
        "environment": environment,
        "recent_spawn_failures": recent,
    }
    return (200 if serving else 503), body


def ops_routes(pool: InstancePool, metrics: Metrics, is_serving: Any) -> list[Route]:
    async def health_endpoint(request: Request) -> Response:
        status, body = health(pool, is_serving())
        return JSONResponse(body, status)

    async def metrics_endpoint(request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return [Route("/health", health_endpoint), Route("/metrics", metrics_endpoint)]
