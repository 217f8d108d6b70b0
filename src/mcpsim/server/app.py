"""The managed server's ASGI app: routes, and a lifespan that owns the pool and the sessions' task group.

Shutdown order matters: sessions are cancelled first (each stops its instance), then the pool closes and
waits for every process to be gone, then the watchdog exits.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route

from mcpsim.pool import InstancePool
from mcpsim.server.auth import AccessGuard, is_loopback
from mcpsim.server.config import ServeConfig
from mcpsim.server.edge import exception_handlers
from mcpsim.server.fronts import HandleFront, ModernFront, SessionFront, SseFront, api_routes, control_routes
from mcpsim.server.ops import Metrics, ResourceSampler, dashboard_routes, ops_routes


def create_app(config: ServeConfig) -> Starlette:
    """The app for `config` (whose tokens `ServeConfig` has already checked); nothing starts before its lifespan."""
    credentials = config.credentials
    metrics = Metrics()
    pool = InstancePool(config.pool, observer=metrics)
    modern = ModernFront(pool, orphan_timeout=config.orphan_timeout)
    sessions = SessionFront(pool, json_response=config.json_response, modern=modern)
    handles = HandleFront(pool, sse=not config.json_response, modern=modern)
    sse = SseFront(pool)
    resources = ResourceSampler(pool)
    metrics.collect_from(pool, sessions, resources)  # what /metrics reads at each scrape
    serving = anyio.Event()
    stopping = anyio.Event()

    def phase() -> str:
        return "stopping" if stopping.is_set() else "serving" if serving.is_set() else "starting"

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with (
            pool,
            sessions.running(),
            handles.sessions.running(),
            modern.running(),
            anyio.create_task_group() as background,
        ):
            background.start_soon(resources.run)
            serving.set()
            try:
                yield
            finally:
                stopping.set()
                background.cancel_scope.cancel()  # then the sessions end (each its instance), then the pool

    routes = [
        Route("/mcp", endpoint=sessions, methods=["GET", "POST", "DELETE"]),
        Route("/mcp/", endpoint=sessions, methods=["GET", "POST", "DELETE"]),  # clients that append a slash
        *control_routes(sessions),
        Mount("/envs", app=handles),
        *sse.routes(),
        *dashboard_routes(pool, metrics, resources, phase, sessions),
        *api_routes(pool),
        *ops_routes(pool, metrics, resources, phase, public=credentials is not None),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers=exception_handlers(),
        middleware=[Middleware(AccessGuard, credentials=credentials, loopback=is_loopback(config.host))],
    )
    app.state.pool = pool
    app.state.sessions = sessions
    app.state.modern = modern
    app.state.sse = sse
    app.state.metrics = metrics
    app.state.resources = resources
    return app
