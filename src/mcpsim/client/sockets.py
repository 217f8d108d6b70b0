"""A cheaper idle-connection check for the rollout client's HTTP pool: the raw socket looked up once.

httpcore's pool asks every pooled connection `has_expired()` on each request it assigns and each one it
releases; for an idle HTTP/1.1 connection that is `get_extra_info("is_readable")`, which finds the socket through
anyio's typed attributes: `extra()` builds the stream's whole attribute mapping (a dict of lambdas, a
`getpeername` among them) on every call. With a rollout's 64-128 pooled connections that was 22% of the rollout
client's CPU in a py-spy profile (a 512-episode 2026-07-28 rollout at concurrency 64, fork server).
`SocketCachingBackend` is httpcore's own anyio backend whose TCP streams remember their socket when opened; the
readability test itself (`is_socket_readable`, a zero-timeout poll) is httpcore's, unchanged, so a connection the
server closed is still found expired and never reused.
"""

from typing import Any

import anyio.abc
import httpcore2
import httpx2
from httpcore2._backends.anyio import AnyIOBackend, AnyIOStream
from httpcore2._utils import is_socket_readable


class SocketCachingStream(AnyIOStream):
    """httpcore's anyio stream with the raw socket (anyio's `SocketAttribute.raw_socket`) taken once."""

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        super().__init__(stream)
        self._socket = stream.extra(anyio.abc.SocketAttribute.raw_socket, None)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            return is_socket_readable(self._socket)
        if info == "socket":
            return self._socket
        return super().get_extra_info(info)


class SocketCachingBackend(AnyIOBackend):
    """httpcore's anyio backend, connecting as it does, whose TCP streams are `SocketCachingStream`s."""

    async def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore2.AsyncNetworkStream:
        stream = await super().connect_tcp(*args, **kwargs)
        if isinstance(stream, AnyIOStream) and not isinstance(stream, SocketCachingStream):
            return SocketCachingStream(stream._stream)
        return stream


def caching_transport(limits: httpx2.Limits) -> httpx2.AsyncHTTPTransport:
    """httpx's default transport with `SocketCachingBackend` under its pool (the transport has no public
    parameter for it; a pool of another shape is left as httpx built it)."""
    transport = httpx2.AsyncHTTPTransport(limits=limits)
    pool = getattr(transport, "_pool", None)
    if type(pool) is httpcore2.AsyncConnectionPool and hasattr(pool, "_network_backend"):
        pool._network_backend = SocketCachingBackend()
    return transport
