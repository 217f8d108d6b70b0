"""The 2026-07-28 (stateless) path of `/mcp`, `/envs/{handle}/mcp` and `serve --stdio`: episodes addressed by handles.

`ModernFront.answer` is the core, free of ASGI: an `Inbound` in, an `Outcome` of frames out (`stateless.py`).
`serve` is its HTTP adapter (the POST's checks, then `replies.respond`); the stdio loop calls `answer` pinned to
its one episode (`stdio_translated.py`).

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
from collections.abc import AsyncIterator, Mapping
from typing import Any

import anyio
from anyio.abc import TaskGroup
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
from starlette.responses import Response
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
from mcpsim.server.edge import note_request_id
from mcpsim.server.fronts import translate
from mcpsim.server.fronts.bodies import parse_json
from mcpsim.server.fronts.calls import call_frames, round_frames
from mcpsim.server.fronts.config_listen import ConfigListens
from mcpsim.server.fronts.exchange import open_call
from mcpsim.server.fronts.listen import Listens
from mcpsim.server.fronts.listings import ListingCache
from mcpsim.server.fronts.params import parse_config
from mcpsim.server.fronts.replies import respond
from mcpsim.server.fronts.rounds import ASKING_METHODS, Held, Rounds, round_token, target_of
from mcpsim.server.fronts.starts import start_for_request
from mcpsim.server.fronts.stateless import Inbound, Outcome, single
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


class ModernFront:
    """Serves 2026-07-28 requests for both HTTP fronts; `running()` (the app's lifespan) reaps orphans."""

    def __init__(self, pool: InstancePool, orphan_timeout: float = 60.0) -> None:
        self.pool = pool
        self.orphan_timeout = orphan_timeout
        self.listings = ListingCache(pool)
        self.config_listens = ConfigListens(pool)
        self._tasks: TaskGroup | None = None
        """The task group of `running()`: mcpsim's own listens on minted instances (`config_listen.py`)."""
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
            self._tasks = tg
            try:
                yield
            finally:
                self._tasks = None
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
        request = Request(scope, receive)
        inbound = Inbound(
            message,
            scope,
            receive,
            seed=request.query_params.get("seed"),
            config=request.query_params.get("config"),
            base=f"{request.url.scheme}://{request.url.netloc}",
            streaming="text/event-stream" in request.headers.get("accept", ""),
            url_handle=url_handle,
        )
        streaming = inbound.streaming
        await respond(await self.answer(inbound), streaming, scope, receive, send)

    async def answer(self, inbound: Inbound) -> Outcome:
        """The core of every front (`stateless.py`): route one checked request, and give its frames."""
        message, context = inbound.message, inbound.context
        self._check(context, message)
        method: str = message["method"]
        params = message.get("params") if isinstance(message.get("params"), dict) else None
        handle = self._handle(inbound.url_handle, translate.handle_in(message))
        if inbound.instance is not None:  # stdio: its one episode, whether the request names it or not
            handle = self._handle(inbound.instance.id, handle)
        if handle is None and method in ("server/discover", *translate.LISTING_METHODS):
            return single(await self._from_cache(inbound, params))
        if method == "subscriptions/listen" and not inbound.streaming:
            raise BadRequest("subscriptions/listen answers with an SSE stream: Accept must include text/event-stream")
        if handle is None and method == "subscriptions/listen":  # the config's list changes (`config_listen.py`)
            config = parse_config(inbound.config)
            listing = await self.listings.listing(config, inbound.receive)
            announced = (listing.discovered or listing.init_result).get("capabilities") or {}
            return Outcome(self.config_listens.open(config, announced, message["id"], params))
        handle = self._state_handle(handle, params)
        if handle is None and method == "tools/call":  # refused requests start nothing
            config = parse_config(inbound.config)
            tool = await self.listings.config_tool(config, (params or {}).get("name"), inbound.receive)
            self._check_headers(context, tool, params)
        instance = self._resolve(context, handle) if handle is not None else await self._fresh(inbound)
        url = f"{inbound.base}/envs/{instance.id}/mcp" if inbound.base is not None else None
        passthrough = instance.era == MODERN
        server_info = None if passthrough else instance.init_result.get("serverInfo")
        if method == "server/discover":
            result = instance.discovered if passthrough else translate.discover_result(instance.init_result)
            return single(
                {"jsonrpc": "2.0", "id": message["id"], "result": translate.stamp(result or {}, None, instance.id, url)}
            )
        if method == "tools/call" and handle is not None:
            self._check_headers(context, await self.listings.tool(instance, (params or {}).get("name")), params)
        forwarded = translate.passthrough_params(params) if passthrough else translate.backend_params(params)

        def finish(reply: JSONRPCResponse | JSONRPCError) -> dict[str, Any]:
            if isinstance(reply, JSONRPCError):
                error = reply.error.model_dump(exclude_none=True)
                error = error if passthrough else translate.modern_error(error, params)
                return {"jsonrpc": "2.0", "id": message["id"], "error": error}
            if passthrough:
                result = translate.stamp(translate.wrap_state(reply.result, instance.id), None, instance.id, url)
            elif reply.result.get("resultType") == "input_required":  # rounds.py's: nothing to translate
                result = translate.stamp(reply.result, server_info, instance.id, url)
            else:
                result = translate.modern_result(method, reply.result, server_info, instance.id, url)
            return {"jsonrpc": "2.0", "id": message["id"], "result": result}

        if not passthrough and method == "subscriptions/listen":  # the backend's notifications become events
            return Outcome(self.listens.open(instance, message["id"], params))
        if not passthrough and method in ASKING_METHODS:  # server requests become input_required rounds
            held = await self._round(instance, method, params, forwarded, message["id"])
            return Outcome(round_frames(self.rounds, held, params, capabilities(params), message["id"], finish))
        raw = context.get("headers", [])
        params_headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in raw if k.startswith(b"mcp-param-")}
        level = translate.log_level(params)
        return Outcome(call_frames(instance, method, forwarded, message["id"], params_headers, level, finish))

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
    def _check(scope: Mapping[str, Any], message: dict[str, Any]) -> None:
        """The ladder and the method gate; the version served, else `ProtocolRejection` with the spec's code."""
        headers = None  # a transport without headers (stdio) skips their rung
        if "headers" in scope:
            raw = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
            duplicated = find_duplicated_routing_header(raw)
            if duplicated is not None:
                raise ProtocolRejection(f"the {duplicated} header is given more than once", HEADER_MISMATCH)
            headers = {k.lower(): v for k, v in raw}
        route = classify_inbound_request(message, headers=headers)
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
    def _check_headers(scope: Mapping[str, Any], tool: dict[str, Any] | None, params: dict[str, Any] | None) -> None:
        """`Mcp-Param-*` headers against the tool's `x-mcp-header` arguments (a stdio backend sees no headers)."""
        if tool is None or "headers" not in scope:
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

    def _resolve(self, scope: Mapping[str, Any], handle: str) -> Instance:
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

    async def _fresh(self, inbound: Inbound) -> Instance:
        seed = parse_seed(inbound.seed)
        config = parse_config(inbound.config)
        try:
            owner = principal_of(inbound.context).name
            instance = await start_for_request(
                self.pool, inbound.receive, seed, config, owner=owner, protocol_version=MODERN
            )
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
        asked = self.config_listens.wants(config) if instance.era == MODERN else None
        if asked is not None and self._tasks is not None:  # handle-less listens follow this config's lists
            await self._tasks.start(self.config_listens.follow, instance, asked)
        return instance

    async def _from_cache(self, inbound: Inbound, params: Any) -> dict[str, Any]:
        method = inbound.message["method"]
        config = parse_config(inbound.config)
        if method == "server/discover":
            listing = await self.listings.listing(config, inbound.receive)
            if listing.discovered is not None:
                body = {"result": listing.discovered}
            else:
                body = {"result": translate.discover_result(listing.init_result)}
        else:
            listing, answer = await self.listings.answer(method, params, config, inbound.receive)
            server_info = listing.init_result.get("serverInfo")
            if "error" in answer or listing.discovered is not None:
                body = answer
            else:
                body = {"result": translate.modern_result(method, answer["result"], server_info)}
        return {"jsonrpc": "2.0", "id": inbound.message.get("id"), **body}
