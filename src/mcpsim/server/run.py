"""Running the managed server: in the foreground (`mcpsim serve`) or in-process in the background (demo, tests).

uvicorn serves the app; its graceful-shutdown timeout is short because open SSE streams of live sessions
would otherwise hold shutdown until they close by themselves, and the app's lifespan ends every instance anyway.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator

import anyio
import uvicorn

from mcpsim.server.app import create_app
from mcpsim.server.config import ServeConfig
from mcpsim.server.fastio import http_implementation
from mcpsim.wire import FRONT_KEEP_ALIVE_S

logger = logging.getLogger(__name__)


class _BackgroundServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the program hosting it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _uvicorn_server(config: ServeConfig, server_class: type[uvicorn.Server] = uvicorn.Server) -> uvicorn.Server:
    app = create_app(config)
    uv_config = uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=2,
        timeout_keep_alive=FRONT_KEEP_ALIVE_S,  # clients close idle connections first (`wire.py`)
        loop="asyncio",
        http=http_implementation(config.fast_io),
    )
    return server_class(uv_config)


async def serve(config: ServeConfig) -> None:
    server = _uvicorn_server(config)
    logger.info(
        "serving %s on http://%s:%d/mcp (%s loop, %s)",
        config.pool.command.label,
        config.host,
        config.port,
        type(asyncio.get_running_loop()).__module__.split(".")[0],
        http_implementation(config.fast_io),
        extra={"event": "server.start"},
    )
    await server.serve()


@contextlib.asynccontextmanager
async def running(config: ServeConfig) -> AsyncIterator[str]:
    """Serve in a background task of the current loop; yields the base URL (port 0 picks a free port)."""
    server = _uvicorn_server(config, _BackgroundServer)
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        while not server.started:
            if server.should_exit:
                raise RuntimeError("the managed server failed to start")
            await anyio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        try:
            yield f"http://{config.host}:{port}"
        finally:
            server.should_exit = True
