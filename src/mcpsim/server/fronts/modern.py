"""The 2026-07-28 (stateless) path of `/mcp` and `/envs/{handle}/mcp`: episodes addressed by handles.

The fronts hand a POST here when `translate.is_modern` says so (a non-handshake `MCP-Protocol-Version`, or the
envelope without any version header); everything else stays on the handshake-era path, byte for byte.

Each request is checked as the spec's ladder says (the SDK's `classify_inbound_request`: envelope, headers
against the body, version; then the per-version method gate), then routed by its handle:
- a handle (the `/envs/<handle>/mcp` URL or `_meta["mcpsim/handle"]`, which must agree) reaches that
  instance; an unknown one, or another principal's, answers -31010, an ended one -31011;
- without one, `server/discover` and the four list methods are answered from the listing cache (no instance
  starts); `subscriptions/listen` gets a stream that honours no notification (there is no
  episode whose lists could change: its acknowledgement says so); anything else gets a fresh instance with the URL's
  `seed` and `config`, and the result names its handle and URL in `_meta` (`mcpsim/handle`, `mcpsim/url`).
A 2026 backend's requests pass through (`translate.passthrough_params`, the `requestState` wrapped with the
handle). On a handshake-era backend connection `translate` turns the request and the answer into each era;
its server requests become `input_required` rounds (`rounds.py`), a listen on the handle gets its change
notifications (`listen.py`), and its log messages reach only requests whose `_meta` logLevel admits them. The
answer is JSON, or an SSE stream of the related notifications when the client accepts one (`exchange.relay`).

An instance started by a handle-less request whose handle nobody uses again ends after `--orphan-timeout`
(the client may have crashed before reading its answer); a handle used once lives like any instance (idle
timeout, DELETE on its URL, server exit). Every instance counts against `--max-instances`: a flood of
handle-less requests gets 503 (-31014) once it is reached, and the orphans are reclaimed.
"""

import contextlib
import logging
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any

import anyio
from mcp.shared.inbound import (
    MCP_PROTOCOL_VERSION_HEADER,
    InboundLadderRejection,
    classify_inbound_request,
    find_duplicated_routing_header,
    validate_mcp_param_headers,
)
from mcp.types import JSONRPCError, JSONRPCResponse
from mcp_types.methods import validate_client_request
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from mcpsim.errors import (
    BadRequest,
    CapacityError,
    ClientGone,
    HandleConflict,
    HandleEnded,
    NoFreshInstance,
    ParseError,
    ProtocolRejection,
    UnknownHandle,
    UnsupportedMediaType,
)
from mcpsim.pool import Instance, InstancePool, State
from mcpsim.pool.eras import MODERN
from mcpsim.protocol.messages import SUBSCRIPTION_ID_KEY
from mcpsim.server.edge import modern_status, note_request_id
from mcpsim.server.fronts import translate
from mcpsim.server.fronts.bodies import parse_json
from mcpsim.server.fronts.exchange import exchange, open_call, relay, sse_frame
from mcpsim.server.fronts.listen import Listens
from mcpsim.server.fronts.listings import ListingCache
from mcpsim.server.fronts.params import parse_config
from mcpsim.server.fronts.rounds import ASKING_METHODS, Held, Rounds, round_token, target_of
from mcpsim.server.fronts.starts import start_for_request
from mcpsim.server.fronts.translate import client_capabilities as capabilities
from mcpsim.server.principals import principal_of
from mcpsim.wire import parse_seed

logger = logging.getLogger(__name__)

HANDLE = re.compile(r"[0-9a-f]{32}")
MAX_ENDED_REMEMBERED = 4096
"""Handles minted here that have ended are remembered (most recent first) so they answer "ended", not "unknown"."""
HEADER_MISMATCH = -32020
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
MAX_EMPTY_LISTEN = 3600.0


def modern_header(request: Request) -> str | None:
    """The request's `MCP-Protocol-Version` if it names no handshake-era version (so the modern path), else None."""
    version = request.headers.get(MCP_PROTOCOL_VERSION_HEADER)
    return version if version is not None and version not in HANDSHAKE_PROTOCOL_VERSIONS else None


def peek_json(body: bytes) -> Any:
    """The body's JSON value, or None if it is none (the handshake path then answers the parse error itself)."""
    try:
        return parse_json(body)
    except ParseError:
        return None


def empty_listen(request_id: Any) -> StreamingResponse:
    """A handle-less `subscriptions/listen`: acknowledged with no notification honoured, then held open until the
    client closes it (at most `MAX_EMPTY_LISTEN` seconds). Events belong to episodes, so only a listen with a
    handle receives any."""

    async def frames() -> AsyncIterator[bytes]:
        ack = {
            "jsonrpc": "2.0",
            "method": "notifications/subscriptions/acknowledged",
            "params": {"notifications": {}, "_meta": {SUBSCRIPTION_ID_KEY: request_id}},
        }
        yield sse_frame(ack)
        await anyio.sleep(MAX_EMPTY_LISTEN)

    return StreamingResponse(frames(), media_type="text/event-stream", headers={"cache-control": "no-cache"})


class ModernFront:
    """Serves 2026-07-28 requests for both HTTP fronts; `running()` (the app's lifespan) reaps orphans."""

    def __init__(self, pool: InstancePool, orphan_timeout: float = 60.0) -> None:
        self.pool = pool
        self.orphan_timeout = orphan_timeout
        self.listings = ListingCache(pool)
        self.listens = Listens()
        self.rounds = Rounds(pool.config.request_timeout or 120.0)
        self.orphans: dict[str, float] = {}
        """Handles minted by a handle-less request and not used since, with when they were minted."""
        self.minted: OrderedDict[str, None] = OrderedDict()
        self.requests = 0
        self.created = 0

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._reap_orphans)
            tg.start_soon(self.rounds.reap)
            try:
                yield
            finally:
                await self.rounds.close_all()
                tg.cancel_scope.cancel()

    async def _reap_orphans(self) -> None:
        interval = max(0.05, min(1.0, self.orphan_timeout / 4))
        while True:
            await anyio.sleep(interval)
            now = time.monotonic()
            for handle, minted in list(self.orphans.items()):
                instance = self.pool.instances.get(handle)
                if instance is None:
                    self.orphans.pop(handle, None)
                elif now - minted > self.orphan_timeout:
                    self.orphans.pop(handle, None)
                    instance.log.info(
                        "handle never used after %.0f s, ending it", now - minted, extra={"event": "handle.orphaned"}
                    )
                    instance.stop()

    async def serve(
        self, scope: Scope, receive: Receive, send: Send, message: Any, url_handle: str | None = None
    ) -> None:
        """Answer one 2026-07-28 POST whose body is `message` (already read); raises mcpsim errors for the edge."""
        self.requests += 1
        if not Request(scope).headers.get("content-type", "").startswith("application/json"):
            raise UnsupportedMediaType("Unsupported Media Type: Content-Type must be application/json")
        if isinstance(message, dict) and "method" in message and "id" not in message:
            await Response(status_code=202)(scope, receive, send)  # a notification: nothing to do statelessly
            return
        if not isinstance(message, dict) or not isinstance(message.get("method"), str):
            if isinstance(message, dict) and ("result" in message or "error" in message):
                await Response(status_code=202)(scope, receive, send)  # an answer to nothing we asked
                return
            raise ProtocolRejection("Invalid Request: a 2026-07-28 POST carries one JSON-RPC request", INVALID_REQUEST)
        note_request_id(scope, message.get("id"))
        self._check(scope, message)
        method: str = message["method"]
        params = message.get("params") if isinstance(message.get("params"), dict) else None
        handle = self._handle(url_handle, translate.handle_in(message))
        request = Request(scope, receive)
        if handle is None and method in ("server/discover", *translate.LISTING_METHODS):
            await self._from_cache(request, message, params, scope, receive, send)
            return
        if handle is None and method == "subscriptions/listen":
            if "text/event-stream" not in request.headers.get("accept", ""):
                raise BadRequest(
                    "subscriptions/listen answers with an SSE stream: Accept must include text/event-stream"
                )
            await empty_listen(message["id"])(scope, receive, send)
            return
        handle = self._state_handle(handle, params)
        if handle is None and method == "tools/call":  # refused requests start nothing
            config = parse_config(request.query_params.get("config"))
            tool = await self.listings.config_tool(config, (params or {}).get("name"), receive)
            self._check_headers(scope, tool, params)
        instance = self._resolve(scope, handle) if handle is not None else await self._fresh(request, receive)
        url = f"{request.url.scheme}://{request.url.netloc}/envs/{instance.id}/mcp"
        passthrough = instance.era == MODERN
        server_info = None if passthrough else instance.init_result.get("serverInfo")
        if method == "server/discover":
            result = instance.discovered if passthrough else translate.discover_result(instance.init_result)
            body = {
                "jsonrpc": "2.0",
                "id": message["id"],
                "result": translate.stamp(result or {}, None, instance.id, url),
            }
            await JSONResponse(body)(scope, receive, send)
            return
        if method == "tools/call" and handle is not None:
            self._check_headers(scope, await self.listings.tool(instance, (params or {}).get("name")), params)
        forwarded = translate.passthrough_params(params) if passthrough else translate.backend_params(params)

        def finish(reply: JSONRPCResponse | JSONRPCError) -> tuple[dict[str, Any], int]:
            if isinstance(reply, JSONRPCError):
                error = reply.error.model_dump(exclude_none=True)
                error = error if passthrough else translate.modern_error(error, params)
                return {"jsonrpc": "2.0", "id": message["id"], "error": error}, modern_status(error["code"])
            if passthrough:
                result = translate.stamp(translate.wrap_state(reply.result, instance.id), None, instance.id, url)
            elif reply.result.get("resultType") == "input_required":  # rounds.py's: nothing to translate
                result = translate.stamp(reply.result, server_info, instance.id, url)
            else:
                result = translate.modern_result(method, reply.result, server_info, instance.id, url)
            return {"jsonrpc": "2.0", "id": message["id"], "result": result}, 200

        streaming = "text/event-stream" in request.headers.get("accept", "")
        if method == "subscriptions/listen" and not streaming:
            raise BadRequest("subscriptions/listen answers with an SSE stream: Accept must include text/event-stream")
        if not passthrough and method == "subscriptions/listen":  # the backend's notifications become events
            await self.listens.serve(instance, message["id"], params, scope, receive, send)
            return
        if not passthrough and method in ASKING_METHODS:  # server requests become input_required rounds
            held = await self._round(instance, method, params, forwarded, message["id"])
            try:
                answers = (params or {}).get("inputResponses")
                events = self.rounds.outcome(held, answers, capabilities(params), message["id"])
                await relay(events, finish, streaming, scope, receive, send)
            finally:
                if not held.parked:
                    await held.call.close()
            return
        params_headers = {k: v for k, v in request.headers.items() if k.startswith("mcp-param-")}
        level = translate.log_level(params)
        async with exchange(instance, "stateless", method, forwarded, message["id"], params_headers, level) as events:
            await relay(events, finish, streaming, scope, receive, send)

    async def _round(
        self, instance: Instance, method: str, params: dict[str, Any] | None, forwarded: Any, request_id: Any
    ) -> Held:
        """The held call a retry names (`rounds.py`), or a new call that can ask."""
        if round_token(params) is not None:
            held = self.rounds.take(instance.id, method, params)
            held.call.channel.want_logs(translate.log_level(params))  # this round's own envelope
            return held
        level = translate.log_level(params)
        call = await open_call(instance, "stateless", method, forwarded, request_id, asks=True, log_level=level)
        return Held(call, instance.id, method, target_of(method, params))

    # -- the steps ---------------------------------------------------------------------------------------------

    @staticmethod
    def _check(scope: Scope, message: dict[str, Any]) -> None:
        """The ladder and the method gate; the version served, else `ProtocolRejection` with the spec's code."""
        raw = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope.get("headers", [])]
        duplicated = find_duplicated_routing_header(raw)
        if duplicated is not None:
            raise ProtocolRejection(f"the {duplicated} header is given more than once", HEADER_MISMATCH)
        route = classify_inbound_request(message, headers={k.lower(): v for k, v in raw})
        if isinstance(route, InboundLadderRejection):
            raise ProtocolRejection(route.message, route.code, route.data)
        try:
            validate_client_request(message["method"], route.protocol_version, message.get("params"))
        except KeyError:
            raise ProtocolRejection("Method not found", METHOD_NOT_FOUND, message["method"][:100]) from None
        except ValidationError as exc:
            first = exc.errors()[0] if exc.errors() else {}
            where = ".".join(str(part) for part in first.get("loc", ()))
            raise ProtocolRejection(f"Invalid params: {where} {first.get('msg', '')}".strip(), INVALID_PARAMS) from None

    @staticmethod
    def _state_handle(handle: str | None, params: dict[str, Any] | None) -> str | None:
        """The handle a wrapped `requestState` names (an MRTR retry finds its instance), checked against `handle`."""
        named = translate.state_handle(params)
        if named is None:
            return handle
        if named is False:
            raise ProtocolRejection("Invalid or expired requestState", INVALID_PARAMS)
        if handle is not None and named != handle:
            raise HandleConflict("the requestState belongs to another episode than the handle", handle, "conflict")
        return named

    @staticmethod
    def _check_headers(scope: Scope, tool: dict[str, Any] | None, params: dict[str, Any] | None) -> None:
        """`Mcp-Param-*` headers against the tool's `x-mcp-header` arguments (a stdio backend sees no headers)."""
        if tool is None:
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        arguments = (params or {}).get("arguments")
        rejection = validate_mcp_param_headers(
            tool.get("inputSchema"), arguments if isinstance(arguments, dict) else {}, headers
        )
        if rejection is not None:
            raise ProtocolRejection(rejection.message, rejection.code, rejection.data)

    @staticmethod
    def _handle(url_handle: str | None, meta_handle: Any) -> str | None:
        if meta_handle is not None and not isinstance(meta_handle, str):
            raise UnknownHandle('_meta["mcpsim/handle"] must be a string naming an episode', None, "not a string")
        if url_handle is not None and meta_handle is not None and meta_handle != url_handle:
            raise HandleConflict(
                f'the URL names handle {url_handle} but _meta["mcpsim/handle"] names another', url_handle, "conflict"
            )
        return url_handle or meta_handle

    def _resolve(self, scope: Scope, handle: str) -> Instance:
        shown = handle[:40]
        instance = self.pool.instances.get(handle) if HANDLE.fullmatch(handle) else None
        if instance is None or not principal_of(scope).may_use(instance):
            if instance is None and handle in self.minted:
                raise HandleEnded(f"the episode {shown} has ended", handle, "ended")
            raise UnknownHandle(f"no episode has the handle {shown!r}: it never existed", shown, "unknown")
        if instance.ended.is_set() or instance.state in (State.EXITED, State.FAILED, State.STOPPING):
            reason = instance.failure or str(instance.state)
            raise HandleEnded(f"the episode {shown} has ended: {reason}", handle, reason)
        self.orphans.pop(handle, None)
        return instance

    async def _fresh(self, request: Request, receive: Receive) -> Instance:
        seed = parse_seed(request.query_params.get("seed"))
        config = parse_config(request.query_params.get("config"))
        try:
            owner = principal_of(request.scope).name
            instance = await start_for_request(self.pool, receive, seed, config, owner=owner, protocol_version=MODERN)
        except CapacityError as exc:
            raise NoFreshInstance(f"no instance for this handle-less request: {exc}") from exc
        if instance is None:
            raise ClientGone("the client left while its instance was starting")
        self.created += 1
        self.orphans[instance.id] = time.monotonic()
        self.minted[instance.id] = None
        while len(self.minted) > MAX_ENDED_REMEMBERED:
            self.minted.popitem(last=False)
        instance.log.info("handle minted", extra={"event": "handle.minted"})
        return instance

    async def _from_cache(
        self, request: Request, message: dict[str, Any], params: Any, scope: Scope, receive: Receive, send: Send
    ) -> None:
        method = message["method"]
        config = parse_config(request.query_params.get("config"))
        if method == "server/discover":
            listing = await self.listings.listing(config, receive)
            if listing.discovered is not None:
                body = {"result": listing.discovered}
            else:
                body = {"result": translate.discover_result(listing.init_result)}
        else:
            listing, answer = await self.listings.answer(method, params, config, receive)
            server_info = listing.init_result.get("serverInfo")
            if "error" in answer or listing.discovered is not None:
                body = answer
            else:
                body = {"result": translate.modern_result(method, answer["result"], server_info)}
        await self._respond(message, body, scope, receive, send)

    @staticmethod
    async def _respond(
        message: dict[str, Any], body: dict[str, Any], scope: Scope, receive: Receive, send: Send
    ) -> None:
        status = modern_status(body["error"].get("code", 0)) if "error" in body else 200
        await JSONResponse({"jsonrpc": "2.0", "id": message.get("id"), **body}, status)(scope, receive, send)
