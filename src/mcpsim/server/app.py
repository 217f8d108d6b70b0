"""The managed server's ASGI app: routes, and a lifespan that owns the pool and the sessions' task group.

Shutdown order matters: sessions are cancelled first (each stops its instance), then the pool closes and
waits for every process to be gone, then the watchdog exits.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route

from mcpsim.pool.pool import InstancePool, PoolConfig
from mcpsim.server.api import api_routes
from mcpsim.server.dashboard import dashboard_routes
from mcpsim.server.handles import HandleFront
from mcpsim.server.host_guard import LoopbackGuard, is_loopback
from mcpsim.server.metrics import Metrics
from mcpsim.server.ops import ops_routes
from mcpsim.server.sessions import SessionFront
from mcpsim.server.sse_front import SseFront


@dataclass
class ServeConfig:
    pool: PoolConfig
    host: str = "127.0.0.1"
    port: int = 9000
    log_format: str = "text"
    json_response: bool = False
    extra: dict[str, object] = field(default_factory=dict)


def create_app(config: ServeConfig) -> Starlette:
    pool = InstancePool(config.pool)
    sessions = SessionFront(pool, json_response=config.json_response)
    handles = HandleFront(pool)
    sse = SseFront(pool)
    metrics = Metrics(pool, sessions)
    pool.observer = metrics
    serving = anyio.Event()
    stopping = anyio.Event()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with pool, anyio.create_task_group() as sessions_group:
            sessions.task_group = sessions_group
            serving.set()
            try:
                yield
            finally:
                stopping.set()
                sessions_group.cancel_scope.cancel()

    routes = [
        Route("/mcp", endpoint=sessions, methods=["GET", "POST", "DELETE"]),
        Mount("/envs", app=handles),
        *sse.routes(),
        *api_routes(pool),
        *ops_routes(pool, metrics, lambda: serving.is_set() and not stopping.is_set()),
        *dashboard_routes(),
    ]
    # On loopback only, refuse other Host/Origin names (DNS rebinding); bound elsewhere, exposure is the choice.
    middleware = [Middleware(LoopbackGuard)] if is_loopback(config.host) else []
    app = Starlette(routes=routes, lifespan=lifespan, middleware=middleware)
    app.state.pool = pool
    app.state.sessions = sessions
    app.state.sse = sse
    app.state.metrics = metrics
    return app
