"""DNS-rebinding protection for a managed server that listens on a loopback address.

A web page the user opens can point its own host name at 127.0.0.1 (DNS rebinding); the browser then sends the
page's requests to mcpsim as if they were same-origin and lets the page read the answers, so the page could
start servers, call their tools and read the results. The MCP transport spec requires local servers to check
`Host`/`Origin` for that reason. So when mcpsim listens on loopback only, every HTTP request must name a loopback
host in `Host`, and an `Origin` (sent by browsers) must be a loopback origin: otherwise it gets 421 or 403 with
a JSON-RPC error naming the header, before any route runs (no instance is started). Listening on any other
address, the operator has chosen to expose mcpsim, and nothing is checked (as in the SDK's own servers).
"""

import ipaddress
from urllib.parse import urlsplit

from mcp.types import INVALID_REQUEST
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from mcpsim.server.http_errors import rpc_error_response


def is_loopback(host: str | None) -> bool:
    """Whether a host name or address is this machine only: `localhost`, 127.0.0.0/8, `::1`."""
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_of(header: str) -> str | None:
    """The host name in a `Host` header (`127.0.0.1:9000`, `[::1]:9000`, `localhost`), or None if malformed."""
    try:
        return urlsplit(f"//{header}").hostname
    except ValueError:
        return None


def _origin_allowed(origin: str) -> bool:
    try:
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and is_loopback(parts.hostname)
    except ValueError:
        return False


class LoopbackGuard:
    """ASGI middleware: refuse HTTP requests whose `Host` or `Origin` is not a loopback name."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            host = headers.get("host", "")
            origin = headers.get("origin")
            if not is_loopback(_host_of(host)):
                message = (
                    f"Misdirected Request: Host {host[:100]!r} is not a loopback name; this mcpsim server listens "
                    "on loopback only and refuses other host names (DNS rebinding protection)"
                )
                await rpc_error_response(421, INVALID_REQUEST, message)(scope, receive, send)
                return
            if origin is not None and not _origin_allowed(origin):
                message = (
                    f"Forbidden: Origin {origin[:100]!r} is not a loopback origin; this mcpsim server listens on "
                    "loopback only and refuses requests from other origins (DNS rebinding protection)"
                )
                await rpc_error_response(403, INVALID_REQUEST, message)(scope, receive, send)
                return
        await self.app(scope, receive, send)
