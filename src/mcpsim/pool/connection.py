"""One persistent MCP connection to an instance's server, whatever its transport.

The pool and the proxy only see `send` and `receive` of SDK `SessionMessage`s: for stdio the messages are
framed straight onto the child's pipes (no extra task or copy per message); for streamable HTTP and SSE the
SDK's client transports carry them. The connection is opened once per instance and kept for its life.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Protocol

import anyio
import httpx2
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.message import SessionMessage

from mcpsim.errors import MessageTooLarge
from mcpsim.proc.child import ChildProcess
from mcpsim.protocol.framing import decode_line, encode_message, read_line
from mcpsim.wire import DEFAULT_MAX_MESSAGE_BYTES


class ServerConnection(Protocol):
    async def send(self, message: SessionMessage) -> None: ...

    async def receive(self) -> SessionMessage | Exception:
        """The next message, or a framing error as a value (`MessageTooLarge` for a line over the limit);
        raises `anyio.EndOfStream` when the server is gone."""
        ...


class StdioConnection:
    def __init__(self, process: ChildProcess, limit: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        assert process.stdin is not None and process.stdout is not None
        self._stdin = process.stdin
        self._stdout = process.stdout
        self._limit = limit

    async def send(self, message: SessionMessage) -> None:
        if self._stdin.is_closing():
            raise anyio.BrokenResourceError("the server's stdin is closed")
        self._stdin.write(encode_message(message))
        await self._stdin.drain()

    async def receive(self) -> SessionMessage | Exception:
        while True:
            try:
                line = await read_line(self._stdout, self._limit)
            except asyncio.IncompleteReadError:
                raise anyio.EndOfStream from None
            if isinstance(line, MessageTooLarge):
                return line
            if line.strip():
                return decode_line(line)


class StreamsConnection:
    """A connection over the SDK client transports' memory streams."""

    def __init__(
        self,
        read: anyio.abc.ObjectReceiveStream[SessionMessage | Exception],
        write: anyio.abc.ObjectSendStream[SessionMessage],
    ) -> None:
        self._read, self._write = read, write

    async def send(self, message: SessionMessage) -> None:
        await self._write.send(message)

    async def receive(self) -> SessionMessage | Exception:
        try:
            return await self._read.receive()
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            raise anyio.EndOfStream from None


def shared_http_client() -> httpx2.AsyncClient:
    """One HTTP client for every streamable-HTTP backend of a pool: no per-instance client, TLS context and
    connection pool. Unbounded connections (each instance holds a GET stream open) and no read timeout (an
    idle stream is normal; hung servers are caught by the pool's request timeout)."""
    return httpx2.AsyncClient(
        timeout=httpx2.Timeout(30.0, read=None),
        limits=httpx2.Limits(max_connections=None, max_keepalive_connections=64),
    )


@contextlib.asynccontextmanager
async def open_http(
    url: str, transport: str, http_client: httpx2.AsyncClient | None = None
) -> AsyncIterator[ServerConnection]:
    client = streamable_http_client(url, http_client=http_client) if transport == "http" else sse_client(url)
    async with client as streams:
        read, write = streams[0], streams[1]
        yield StreamsConnection(read, write)


async def wait_for_listener(host: str, port: int, process: ChildProcess) -> None:
    """Wait until the server accepts TCP connections (or exits), so the SDK's HTTP client does not fail on connect.

    This is not the readiness check (that is the initialize handshake that follows); it only spares the
    handshake a refused connection while the server is still importing. The caller bounds the wait.
    """
    delay = 0.005
    while process.running:
        try:
            stream = await anyio.connect_tcp(host, port)
        except OSError:
            await anyio.sleep(delay)
            delay = min(delay * 1.5, 0.1)
            continue
        await stream.aclose()
        return
