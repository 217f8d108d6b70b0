"""Connection reuse for the SDK's streamable-HTTP client: drain a POST's finished SSE response before closing it.

The SDK client reads a request's SSE response until its JSON-RPC answer and then closes the response. The
server ends that stream right after the answer, but its last chunk (the end of the chunked body) usually has
not been read yet, so the HTTP connection is not at a message boundary and httpcore drops it: every request of
a rollout opened a new TCP connection (114 connects per 100 steps), and paid the connect, the accept and a new
h11 state machine on both sides. `DrainingTransport` reads what is left of such a response (at most
`DRAIN_BYTES`, for at most `DRAIN_S`) before closing it; when the body ends in time the connection goes back to
the pool. Only POST responses that are event streams are drained: the session's long-lived GET stream is closed
as before, and a server that keeps a POST stream open past the bound just loses the connection, as without this.
"""

from collections.abc import AsyncIterator

import anyio
import httpx2

DRAIN_BYTES = 1 << 20
DRAIN_S = 0.5


class _DrainingStream(httpx2.AsyncByteStream):
    """One response body, iterated once; `aclose` reads the rest (bounded) so the connection can be reused."""

    def __init__(self, inner: httpx2.AsyncByteStream) -> None:
        self._inner = inner
        self._parts = inner.__aiter__()
        self._done = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self._parts:
            yield part
        self._done = True

    async def aclose(self) -> None:
        try:
            if not self._done:
                with anyio.move_on_after(DRAIN_S):
                    left = DRAIN_BYTES
                    async for part in self._parts:
                        left -= len(part)
                        if left < 0:
                            break
        except (httpx2.HTTPError, OSError):
            pass  # the connection is lost either way; closing below releases it
        finally:
            await self._inner.aclose()


class DrainingTransport(httpx2.AsyncBaseTransport):
    """Wraps the default transport; see the module docstring."""

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self._inner.handle_async_request(request)
        if request.method == "POST" and response.headers.get("content-type", "").startswith("text/event-stream"):
            assert isinstance(response.stream, httpx2.AsyncByteStream)
            response.stream = _DrainingStream(response.stream)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()
