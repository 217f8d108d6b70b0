"""`mcpsim serve --stdio`: the managed server speaking stdio to one client, with one isolated instance.

Tools that can only launch stdio servers (desktop clients, agent frameworks) get a fresh, seeded, isolated
instance per launch, with the same proxy, cleanup and watchdog as over HTTP. Logs go to stderr; stdout carries
only MCP messages. If the instance cannot start, the client's first request is answered with the cause.

The revision is the client's, fixed by its first message as the spec says for stdio: a request carrying the
2026-07-28 envelope (not `initialize`) makes the instance open in that era (`pool/eras.py`). If the server speaks
it, every message then passes through unchanged (one stdio client is one episode: no handle is needed); if it
speaks only the handshake era, the pool initializes it and every request goes through the modern core pinned to
that episode (`stdio_translated.py`: translation both ways, `input_required` rounds, listens).

stdin is read in lines bounded by `--max-message-bytes` (the SDK's `stdio_server` reads any line whole): a longer
line is dropped as it streams in and its request, when its id can be seen, is answered with an error.
"""

import asyncio
import contextlib
import logging
import os
import stat
import sys
from collections.abc import AsyncIterator
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from mcp.types import JSONRPCRequest

from mcpsim.errors import MessageTooLarge, PoolError
from mcpsim.pool import InstancePool, PoolConfig
from mcpsim.pool.eras import MODERN
from mcpsim.protocol.framing import decode_line, encode_message, read_line
from mcpsim.protocol.messages import IncomingMessages, OutgoingMessages, error_message
from mcpsim.server.edge import rpc_code
from mcpsim.server.fronts.modern import ModernFront
from mcpsim.server.fronts.stdio_translated import serve_translated
from mcpsim.server.fronts.translate import is_modern
from mcpsim.server.proxy import serve_client
from mcpsim.wire import DEFAULT_MAX_IN_FLIGHT, MESSAGE_TOO_LARGE, check_max_in_flight

logger = logging.getLogger(__name__)

Streams = tuple[MemoryObjectReceiveStream[SessionMessage | Exception], MemoryObjectSendStream[SessionMessage]]


async def serve_stdio(
    pool_config: PoolConfig, seed: int | None, config: dict[str, Any], max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
) -> int:
    """Serve the one client on stdin/stdout until stdin ends or the instance does; `max_in_flight` bounds the
    requests served at once when the modern core translates (`stdio_translated.py`)."""
    check_max_in_flight(max_in_flight)
    async with (
        InstancePool(pool_config) as pool,
        bounded_stdio(pool_config.max_message_bytes) as (read_stream, write_stream),
        write_stream,
    ):
        # (closing the write stream on the way out lets the stdout writer, and so the transport, finish)
        first = await anext(aiter(read_stream), None)
        if first is None:
            return 0
        modern = isinstance(first, SessionMessage) and is_modern(None, first.message.model_dump(by_alias=True))
        try:
            instance = await pool.start(seed, config, session_id="stdio", protocol_version=MODERN if modern else None)
        except PoolError as exc:
            logger.error("cannot serve: %s", exc, extra={"event": "stdio.start_failed"})
            await refuse_first_request(Replayed(first, read_stream), write_stream, exc)
            return 1
        if modern and instance.era != MODERN:  # a handshake-era server: the modern core translates
            front = ModernFront(pool)
            async with front.running():
                try:
                    await serve_translated(front, instance, Replayed(first, read_stream), write_stream, max_in_flight)
                finally:
                    instance.stop()
            return 0
        incoming: IncomingMessages = Replayed(first, read_stream)
        await serve_client(instance, incoming, write_stream, name=f"stdio {instance.id}")
    return 0


class Replayed:
    """A read stream with its first message (read to choose the era) put back in front."""

    def __init__(self, first: SessionMessage | Exception, rest: IncomingMessages) -> None:
        self.first, self.rest = first, rest

    async def __aiter__(self) -> AsyncIterator[SessionMessage | Exception]:
        yield self.first
        async for item in self.rest:
            yield item


@contextlib.asynccontextmanager
async def bounded_stdio(limit: int) -> AsyncIterator[Streams]:
    """Memory streams over this process's stdin/stdout, like the SDK's `stdio_server`, with bounded lines.

    stdin that is not a pipe or terminal (a regular file) cannot be put on the loop: then the SDK's own
    transport serves it, unbounded, which only ever concerns the file the user gave.
    """
    mode = os.fstat(sys.stdin.fileno()).st_mode
    if stat.S_ISREG(mode):
        async with stdio_server() as streams:
            yield streams
        return
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit)
    read_transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(os.dup(sys.stdin.fileno()), "rb", buffering=0)
    )
    write_transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    )
    writer = asyncio.StreamWriter(write_transport, protocol, None, loop)
    to_proxy, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](16)
    write_stream, from_proxy = anyio.create_memory_object_stream[SessionMessage](16)

    async def read_stdin() -> None:
        async with to_proxy:
            while True:
                try:
                    line = await read_line(reader, limit)
                except asyncio.IncompleteReadError:
                    return
                if isinstance(line, MessageTooLarge):
                    logger.warning("dropped a client message: %s", line, extra={"event": "stdio.oversized"})
                    if line.request_id is not None:
                        writer.write(encode_message(error_message(line.request_id, MESSAGE_TOO_LARGE, str(line))))
                    continue
                if line.strip():
                    await to_proxy.send(decode_line(line))

    written = anyio.Event()

    async def write_stdout() -> None:
        try:
            async with from_proxy:
                async for message in from_proxy:
                    writer.write(encode_message(message))
                    await writer.drain()
        except ConnectionError:  # the client closed our stdout: nothing more can reach it
            logger.info("stdout closed by the client", extra={"event": "stdio.closed"})
        finally:
            written.set()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(read_stdin)
            tg.start_soon(write_stdout)
            try:
                yield read_stream, write_stream
            finally:
                with anyio.move_on_after(5, shield=True):  # the caller closed write_stream: let the last answers out
                    await written.wait()
                tg.cancel_scope.cancel()
    finally:
        read_transport.close()
        write_transport.close()


async def refuse_first_request(read_stream: IncomingMessages, write_stream: OutgoingMessages, exc: PoolError) -> None:
    """Answer the client's first request with why there is no instance, so it does not wait forever."""
    with anyio.move_on_after(30):
        async for item in read_stream:
            if isinstance(item, SessionMessage) and isinstance(item.message, JSONRPCRequest):
                await write_stream.send(error_message(item.message.id, rpc_code(exc), str(exc)))
                return
