"""`Relay`: one client request passed to a node's own mcpsim over HTTP, its answer streamed back unchanged.

Why HTTP and not actor calls: the node's front already speaks every transport (SSE streams, 2026 per-request
streams, `/envs` handles, `/api/*`), so streams, cancellation and errors work as they do on one machine, and the
extra cost is one loopback or LAN hop (~+2-4 ms a call measured here; actor relays measured +0.8-2 ms, but
would need every stream kind re-implemented over actor generators). See docs/scaling.md.

Headers travel as sent (`Host` and `Origin` included, so URLs the node stamps into results name this front),
but for hop-by-hop ones and the credentials: this front checked the client's token; the node gets its own.
A node that refuses the connection or drops it before answering is lost (`Nodes.lost`) and the request gets
`NodeGone` naming it; nothing is ever sent again to another node, but for the one answer that proves nothing
ran: a capacity refusal (`front.py`).
"""

import re
from collections.abc import Callable
from typing import Any

import httpx
from starlette.types import Scope, Send

from mcpsim.errors import NodeGone
from mcpsim.ray.cluster import Node, Nodes
from mcpsim.wire import KEEPALIVE_EXPIRY_S

HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"transfer-encoding", b"te", b"trailer", b"upgrade", b"proxy-connection",
     b"content-length", b"authorization", b"cookie", b"proxy-authorization"}
)  # fmt: skip
MAX_CAPTURE = 16 * 1024 * 1024
"""Largest answer held whole to read the handle it names (a handle-less 2026 call, `POST /api/instances`)."""
SESSION_IN_STREAM = re.compile(rb"session_id=([0-9a-fA-F-]{8,64})")


class Relay:
    """Owns the HTTP client the front uses to reach every node (keep-alive connections, no read timeout:
    the node's `--request-timeout` bounds a call)."""

    def __init__(self, nodes: Nodes) -> None:
        self.nodes = nodes
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(None, connect=1.5),
            limits=httpx.Limits(
                max_connections=None, max_keepalive_connections=512, keepalive_expiry=KEEPALIVE_EXPIRY_S
            ),
        )

    async def close(self) -> None:
        await self.client.aclose()

    async def open(self, node: Node, scope: Scope, body: bytes, path: str | None = None) -> httpx.Response:
        """Send the request to `node`; the answer's headers are read, its body not yet (`NodeGone` on failure)."""
        headers = [(k, v) for k, v in scope["headers"] if k not in HOP_BY_HOP]
        headers.append((b"authorization", f"Bearer {node.token}".encode()))
        query = scope.get("query_string", b"").decode("latin-1")
        url = f"{node.url}{path or scope['path']}" + (f"?{query}" if query else "")
        request = self.client.build_request(scope["method"], url, headers=headers, content=body)
        try:
            return await self.client.send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.ReadError) as exc:
            self.nodes.lost(node, f"its mcpsim dropped the request ({type(exc).__name__})")
            raise NodeGone(
                f"node {node.label} is gone ({type(exc).__name__}); the instance ended with it", node.node_id
            ) from None

    async def deliver(self, reply: httpx.Response, send: Send, watch: Callable[[bytes], Any] | None = None) -> None:
        """Stream `reply` to the client; `watch` sees each chunk (reading a session id from an SSE stream)."""
        try:
            await send({"type": "http.response.start", "status": reply.status_code, "headers": _headers(reply)})
            async for chunk in reply.aiter_raw():
                if watch is not None:
                    await watch(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except (httpx.ReadError, httpx.RemoteProtocolError):
            pass  # the node died mid-answer: the stream ends; its next request gets NodeGone
        finally:
            await reply.aclose()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def captured(self, reply: httpx.Response) -> bytes:
        """The whole answer (bounded by `MAX_CAPTURE`), for a front that must read it before passing it on."""
        data = bytearray()
        try:
            async for chunk in reply.aiter_raw():
                data += chunk
                if len(data) > MAX_CAPTURE:
                    break
        except (httpx.ReadError, httpx.RemoteProtocolError):
            pass
        finally:
            await reply.aclose()
        return bytes(data)


def _headers(reply: httpx.Response) -> list[tuple[bytes, bytes]]:
    return [(k.lower(), v) for k, v in reply.headers.raw if k.lower() not in HOP_BY_HOP]


async def send_whole(reply: httpx.Response, body: bytes, send: Send) -> None:
    """A captured answer, sent as the node gave it (headers and all)."""
    headers = [*_headers(reply), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": reply.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
