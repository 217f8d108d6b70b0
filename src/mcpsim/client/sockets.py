"""A cheaper idle-connection check for the rollout client's HTTP pool: the raw socket looked up once.

httpcore's pool asks every pooled connection `has_expired()` on each request it assigns and each one it
releases; for an idle HTTP/1.1 connection that is `get_extra_info("is_readable")`, which httpcore's anyio stream
answers by finding the socket through anyio's typed attributes: `extra()` builds the stream's whole attribute
mapping (a dict of lambdas, a `getpeername` among them) on every call. With a rollout's 64-128 pooled
connections that was 22% of the rollout client's CPU in a py-spy profile (a 512-episode 2026-07-28 rollout at
concurrency 64, fork server).

`SocketCachingBackend` wraps httpcore's public anyio backend (`httpcore2.AnyIOBackend`): it connects as that
backend does, and each TCP stream it returns delegates everything to httpcore's own stream but answers
`is_readable` from the socket it asked for once, when the stream was opened. The test is the usual one
(readable = data or EOF waiting, so a connection the server closed is found expired and never reused).

httpx's transport takes no network backend, so `caching_transport` puts it under the transport's pool; where
that pool is not the shape this was written for (another httpx), the transport is left as httpx built it and
only the optimisation is lost (`tests/client/test_sockets.py` fails then, so an upgrade cannot lose it silently).
"""

# httpcore's stream and backend interfaces, implemented here, take `timeout` arguments:
# ruff: noqa: ASYNC109

import select
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore2
import httpx2


def is_readable(sock: socket.socket | None) -> bool:
    """Whether `recv` would return at once (data, or the peer's EOF); a socket that is gone counts as readable,
    so a connection without one is never reused."""
    fd = sock.fileno() if sock is not None else -1
    if fd < 0:
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


class SocketCachingStream(httpcore2.AsyncNetworkStream):
    """httpcore's stream, with `is_readable` answered from the socket taken once."""

    def __init__(self, inner: httpcore2.AsyncNetworkStream) -> None:
        self._inner = inner
        self._socket: socket.socket | None = inner.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore2.AsyncNetworkStream:
        return await self._inner.start_tls(ssl_context, server_hostname, timeout)  # (TLS: no caching needed)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            return is_readable(self._socket)
        if info == "socket":
            return self._socket
        return self._inner.get_extra_info(info)


class SocketCachingBackend(httpcore2.AsyncNetworkBackend):
    """httpcore's anyio backend, whose TCP streams are `SocketCachingStream`s."""

    def __init__(self) -> None:
        self._backend = httpcore2.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        stream = await self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        return SocketCachingStream(stream)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore2.AsyncNetworkStream:
        return await self._backend.connect_unix_socket(path, timeout, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


def caching_transport(limits: httpx2.Limits) -> httpx2.AsyncHTTPTransport:
    """httpx's default transport with `SocketCachingBackend` under its pool (see the module docstring)."""
    transport = httpx2.AsyncHTTPTransport(limits=limits)
    pool = getattr(transport, "_pool", None)  # the one attribute httpx offers no parameter for
    if type(pool) is httpcore2.AsyncConnectionPool and hasattr(pool, "_network_backend"):
        pool._network_backend = SocketCachingBackend()
    return transport
