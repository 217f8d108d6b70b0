"""One 2026-07-28 request apart from the transport that carried it: what the modern core takes and gives.

The core (`ModernFront.answer`) serves `/mcp`, `/envs/{handle}/mcp` and `serve --stdio` alike. It takes an
`Inbound` (the parsed request, its headers and principal, the URL's seed and config, the base its handle URLs
are stamped with, whether the client takes a stream, and for stdio the one episode it is pinned to) and gives
an `Outcome`: the frames to send, JSON-RPC messages as dicts, the related notifications first and the answer
last (a listen never answers: its frames are its acknowledgement and events). The HTTP front writes them as
JSON or SSE (`replies.py`), the stdio loop as lines; either closes the outcome when done, which ends the call.
"""

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio

from mcpsim.pool import Instance


async def never_gone() -> dict[str, Any]:
    """The `receive` of a client that cannot leave mid-request (stdio: its end ends the whole process)."""
    await anyio.sleep_forever()
    return {"type": "http.disconnect"}  # pragma: no cover


@dataclass
class Inbound:
    message: dict[str, Any]
    """The JSON-RPC request (a dict with `method` and `id`)."""
    context: Mapping[str, Any]
    """The request's raw header pairs under `headers` (bytes, as ASGI has them; no `headers` key over stdio, which
    skips the header checks) and its principal under `principals.SCOPE_KEY`: the ASGI scope over HTTP, a plain
    dict over stdio."""
    receive: Callable[[], Awaitable[Any]] = never_gone
    """Returns `{"type": "http.disconnect"}` once the client has left (a start for it is then abandoned)."""
    seed: str | None = None
    config: str | None = None
    """The URL's `seed` and `config` as given (parsed only when an instance or a listing needs them)."""
    base: str | None = None
    """`scheme://host:port` of the front: a result names its episode's URL `<base>/envs/<handle>/mcp`; None: no URL
    (stdio: the client reaches its one episode without one)."""
    streaming: bool = False
    """Whether the client takes a stream (SSE accepted; always over stdio)."""
    url_handle: str | None = None
    instance: Instance | None = None
    """The episode a stdio client is pinned to: handle-less requests reach it, never the listing cache."""


@dataclass
class Outcome:
    """The frames of one request's answer; closing it (`opened`) ends what it holds (the backend call, a listen)."""

    frames: AsyncIterator[dict[str, Any]]

    async def aclose(self) -> None:
        closer = getattr(self.frames, "aclose", None)
        if closer is not None:
            with anyio.CancelScope(shield=True):
                await closer()

    @contextlib.asynccontextmanager
    async def opened(self) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        try:
            yield self.frames
        finally:
            await self.aclose()


def is_answer(frame: dict[str, Any]) -> bool:
    return "id" in frame and ("result" in frame or "error" in frame) and "method" not in frame


def single(frame: dict[str, Any]) -> Outcome:
    """An outcome that is only its answer."""

    async def frames() -> AsyncIterator[dict[str, Any]]:
        yield frame

    return Outcome(frames())
