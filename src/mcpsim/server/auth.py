"""Token auth for servers bound beyond loopback: the dashboard, `/api/*`, `/mcp`, `/envs` and `/metrics` alike.

On 127.0.0.1 (or ::1, localhost) nothing is asked: only this machine can connect. On any other address a
token is required (`--auth-token-file`, `MCPSIM_AUTH_TOKEN`, or `--auth-token`), and a server asked to bind
elsewhere without one refuses to start: an open `/api/instances` would let anyone on the network start processes.
Each token stands for a principal (`mcpsim.server.principals`); the guard puts the caller's in the scope.

A request proves the token with `Authorization: Bearer TOKEN`, with `?token=TOKEN` (for MCP clients that only
take a URL), or with the `mcpsim_token` cookie. A browser that opens `/?token=TOKEN` gets the cookie (HttpOnly,
SameSite=Strict, so other sites cannot use it) and is redirected to the URL without the token, always a path
on this server (`//evil.example/?token=...` goes to `/evil.example/`, never off-site).
`/health` stays open so load balancers and orchestrators can probe it; it reveals counts, not the command.

Whether or not a token is set, a browser must not be able to drive the server from another site: a request
whose `Origin` is not the server's own is refused (403), and a server bound to loopback answers only requests
addressed to a loopback name (`Host`), so a DNS-rebinding page cannot reach a token-less server either.
"""

import ipaddress
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from mcpsim.errors import AuthConfigError, CrossOrigin, Misdirected, RequestError
from mcpsim.server.edge import respond_error
from mcpsim.server.principals import LOCAL, NOBODY, SCOPE_KEY, Credentials
from mcpsim.wire import TOKEN_VARIABLE

COOKIE = "mcpsim_token"
OPEN_PATHS = frozenset({"/health"})


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


def required_token(host: str, credentials: Credentials | str | None) -> Credentials | None:
    """The tokens requests must carry, or None when none is needed; refuses a non-loopback bind without one."""
    if isinstance(credentials, str):
        credentials = Credentials.single(credentials) if credentials else None
    if credentials is not None:
        return credentials
    if is_loopback(host):
        return None
    raise AuthConfigError(
        f"refusing to serve on {host}: it is not a loopback address, so a token is required; pass "
        f"--auth-token-file FILE or set {TOKEN_VARIABLE} (clients then send 'Authorization: Bearer TOKEN'), "
        "or bind to 127.0.0.1"
    )


def local_path(path: str) -> str:
    """`path` as a path on this server: one leading `/`, so a redirect to it never leaves the site (browsers
    read `//host/...` and `/\\host/...` as another host)."""
    return "/" + path.lstrip("/\\")


def _hostname(host_header: str) -> str | None:
    try:
        return urlsplit(f"//{host_header}").hostname
    except ValueError:
        return None


def _netloc(origin: str) -> str | None:
    try:
        return urlsplit(origin).netloc.lower()
    except ValueError:
        return None


class AccessGuard:
    """ASGI middleware: same-origin and loopback-host checks, then the token (every path but `OPEN_PATHS`).

    A request let through carries its caller's `Principal` under `SCOPE_KEY`: `LOCAL` without a token, else the
    token's; `NOBODY` on the open `/health`."""

    def __init__(self, app: ASGIApp, credentials: Credentials | None, loopback: bool) -> None:
        self.app = app
        self.credentials = credentials
        self.loopback = loopback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._misdirected(scope)
        if refusal is not None:
            await respond_error(refusal, scope, receive, send)
            return
        if self.credentials is None:
            scope[SCOPE_KEY] = LOCAL
            await self.app(scope, receive, send)
            return
        if scope["path"] in OPEN_PATHS:
            scope[SCOPE_KEY] = NOBODY
            await self.app(scope, receive, send)
            return
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        from_query = next((value for key, value in query if key == "token"), None)
        principal = self.credentials.identify(from_query)
        if principal is not None and scope["method"] == "GET" and _wants_html(scope):
            await self._set_cookie_and_redirect(scope, query, self.credentials.token_of(principal))(
                scope, receive, send
            )
            return
        principal = principal or self.credentials.identify(_bearer(scope)) or self.credentials.identify(_cookie(scope))
        if principal is None:
            await self._reject(scope, from_query is not None)(scope, receive, send)
            return
        scope[SCOPE_KEY] = principal
        await self.app(scope, receive, send)

    def _misdirected(self, scope: Scope) -> RequestError | None:
        """DNS rebinding and cross-site requests (the MCP transport spec asks local servers to check both):
        on a loopback bind the Host must be a loopback name (421), and a browser's Origin must be this server's
        own (403). Checked before any route runs, so no instance is ever started for such a request."""
        host = _header(scope, b"host") or ""
        if self.loopback and not is_loopback(_hostname(host)):
            return Misdirected(
                f"this server is bound to loopback; Host {_hostname(host) or host[:100]!r} is not a loopback name"
            )
        origin = _header(scope, b"origin")
        if origin is not None and _netloc(origin) != host.lower():
            return CrossOrigin(f"cross-origin request refused: Origin {origin[:100]!r} is not this server's origin")
        return None

    @staticmethod
    def _set_cookie_and_redirect(scope: Scope, query: list[tuple[str, str]], token: str) -> Response:
        rest = urlencode([(key, value) for key, value in query if key != "token"])
        target = local_path(scope.get("root_path", "") + scope["path"]) + (f"?{rest}" if rest else "")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/")
        return response

    @staticmethod
    def _reject(scope: Scope, wrong_token: bool) -> Response:
        why = "the token is wrong" if wrong_token else "this server requires a token"
        message = (
            f"401 Unauthorized: {why}; send 'Authorization: Bearer TOKEN' "
            "(or open the page once as /?token=TOKEN in a browser)"
        )
        if scope["method"] == "GET" and _wants_html(scope):
            response: Response = HTMLResponse(
                f"<!doctype html><title>mcpsim: token required</title><h1>Token required</h1><p>{message}</p>", 401
            )
        else:
            response = JSONResponse({"error": {"message": message}}, 401)
        response.headers["www-authenticate"] = 'Bearer realm="mcpsim"'
        return response


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def _bearer(scope: Scope) -> str | None:
    value = _header(scope, b"authorization")
    if value is None:
        return None
    scheme, _, credentials = value.partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else None


def _cookie(scope: Scope) -> str | None:
    value = _header(scope, b"cookie")
    if not value:
        return None
    cookies = SimpleCookie()
    try:
        cookies.load(value)
    except CookieError:  # a malformed Cookie header is simply no token
        return None
    morsel = cookies.get(COOKIE)
    return morsel.value if morsel is not None else None


def _wants_html(scope: Scope) -> bool:
    return "text/html" in (_header(scope, b"accept") or "")
