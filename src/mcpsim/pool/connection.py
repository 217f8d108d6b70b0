"""One persistent MCP connection to an instance's server, whatever its transport.

The pool and the proxy only see `send` and `receive` of SDK `SessionMessage`s: for stdio the messages are
framed straight onto the child's pipes (no extra task or copy per message); for streamable HTTP and SSE the
SDK's client transports carry them. The connection is opened once per instance and kept for its life.
"""

import asyncio
import contextlib
import functools
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
from mcpsim.wire import DEFAULT_MAX_MESSAGE_BYTES, KEEPALIVE_EXPIRY_S


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
        limits=httpx2.Limits(max_connections=None, max_keepalive_connections=64, keepalive_expiry=KEEPALIVE_EXPIRY_S),
    )


def unix_socket_client(
    path: str,
    headers: dict[str, str] | None = None,
    timeout: httpx2.Timeout | None = None,
    auth: httpx2.Auth | None = None,
) -> httpx2.AsyncClient:
    """An HTTP client whose every connection goes to the Unix socket `path` (a sandboxed backend's relay, see
    `mcpsim.proc.sandbox.relay`), whatever the URL's host; the SDK's client factory signature (SSE). No TLS over
    a Unix socket, so no TLS context: loading the CA bundle for one cost ~21 ms of CPU per sandboxed start. The
    limits go to the transport, the one that pools (a client given a transport ignores its own)."""
    limits = httpx2.Limits(max_connections=None, max_keepalive_connections=8, keepalive_expiry=KEEPALIVE_EXPIRY_S)
    return httpx2.AsyncClient(
        transport=httpx2.AsyncHTTPTransport(uds=path, verify=False, limits=limits),
        headers=headers,
        timeout=timeout or httpx2.Timeout(30.0, read=None),
        auth=auth,
    )


@contextlib.asynccontextmanager
async def open_http(
    url: str, transport: str, http_client: httpx2.AsyncClient | None = None, uds: str | None = None
) -> AsyncIterator[ServerConnection]:
    """The SDK's streamable HTTP or SSE client on `url`; with `uds`, over that Unix socket (a client of the
    instance's own, closed with it) instead of TCP."""
    async with contextlib.AsyncExitStack() as stack:
        if transport == "http":
            if uds is not None:
                http_client = await stack.enter_async_context(unix_socket_client(uds))
            client = streamable_http_client(url, http_client=http_client)
        elif uds is not None:
            client = sse_client(url, httpx_client_factory=functools.partial(unix_socket_client, uds))
        else:
            client = sse_client(url)
        streams = await stack.enter_async_context(client)
        yield StreamsConnection(streams[0], streams[1])


async def wait_until_listening(process: ChildProcess, port: int, uds: str | None) -> None:
    """`wait_for_listener` on 127.0.0.1:`port`, or on a sandboxed backend's relay socket `uds` (which accepts
    only once the server does: its port is in the sandbox's own network namespace)."""
    if uds is None:
        await wait_for_listener("127.0.0.1", port, process)
        return
    delay = 0.002
    while process.running:
        try:
            stream = await anyio.connect_unix(uds)
        except OSError:
            await anyio.sleep(delay)
            delay = min(delay * 1.5, 0.05)
            continue
        await stream.aclose()
        return


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
