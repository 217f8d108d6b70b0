"""`mcpsim serve --stdio`: the managed server speaking stdio to one client, with one isolated instance.

Tools that can only launch stdio servers (desktop clients, agent frameworks) get a fresh, seeded, isolated
instance per launch, with the same proxy, cleanup and watchdog as over HTTP. Logs go to stderr; stdout carries
only MCP messages. If the instance cannot start, the client's first request is answered with the cause.
"""

import logging
from typing import Any

import anyio
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from mcp.types import JSONRPCRequest

from mcpsim.pool.errors import PoolError
from mcpsim.pool.pool import InstancePool, PoolConfig
from mcpsim.protocol.errors import error_message
from mcpsim.server.proxy import serve_client

logger = logging.getLogger("mcpsim.stdio")


async def serve_stdio(pool_config: PoolConfig, seed: int | None, config: dict[str, Any]) -> int:
    async with InstancePool(pool_config) as pool, stdio_server() as (read_stream, write_stream), write_stream:
        # (closing the write stream on the way out lets the SDK's stdout writer, and so stdio_server, finish)
        try:
            instance = await pool.start(seed, config, session_id="stdio")
        except PoolError as exc:
            logger.error("cannot serve: %s", exc, extra={"event": "stdio.start_failed"})
            await refuse_first_request(read_stream, write_stream, exc)
            return 1
        await serve_client(instance, read_stream, write_stream, name=f"stdio {instance.id}")
    return 0


async def refuse_first_request(read_stream: Any, write_stream: Any, exc: PoolError) -> None:
    """Answer the client's first request with why there is no instance, so it does not wait forever."""
    with anyio.move_on_after(30):
        async for item in read_stream:
            if isinstance(item, SessionMessage) and isinstance(item.message, JSONRPCRequest):
                await write_stream.send(error_message(item.message.id, exc.rpc_code, str(exc)))
                return
