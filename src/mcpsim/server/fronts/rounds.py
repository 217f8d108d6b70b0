"""Multi round-trip requests (`input_required`) for a 2026-07-28 client on a handshake-era backend.

A handshake-era server asks its client mid-call with a server request (`sampling/createMessage`,
`elicitation/create`, `roots/list`); 2026-07-28 has no such requests: the server answers the call with
`resultType: "input_required"`, and the client retries the call with `inputResponses` and the echoed
`requestState`. mcpsim translates between the two without touching the server:

- A translated `tools/call`, `prompts/get` or `resources/read` is a `Call` that can ask. When the backend sends a
  server request during it, the backend call is *held* (kept open, the server still waiting for its answer)
  and the client gets `input_required` with that request under the key `mcpsim-<n>` and
  `requestState = "mcpsim1.<handle>.r.<token>"` (128 random bits).
- The retry (same method and tool name / URI / prompt name) names the held call by its token and handle; each
  answered key is sent to the backend as the result of its server request, then mcpsim waits for the call's
  next event: the final result (answers the retry), or another server request (another round). Keys the retry
  left unanswered are asked again (the spec's SHOULD), extra keys ignored.
- A server request whose capability the current request did not declare in its envelope is refused to the
  backend (-32601) and the client gets -32021 naming the capability (the spec's MUST NOT ask); the backend call
  is cancelled. A backend `ping` is answered here; any other server request is refused (-32601).

Limits: a held call waits at most `ttl` seconds (`min(120, --request-timeout)`) for its retry, then its
server requests are refused, the backend call cancelled, and the state answers -32602 "Invalid or expired
requestState" (while it is held, the multiplexer stops the call's `--request-timeout` clock: the server waits on
its client, it is not hung); a state is single-use (taken by the first retry); at most `MAX_HELD_PER_INSTANCE`
calls are held per episode and `MAX_HELD` in all (the oldest goes first). A token names its handle: the same token with
another handle, method or target is refused like an unknown one.
"""

import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
from mcp.types import ErrorData, JSONRPCError, JSONRPCRequest, JSONRPCResponse, RequestId
from mcp_types import MISSING_REQUIRED_CLIENT_CAPABILITY

from mcpsim.errors import ProtocolRejection
from mcpsim.server.fronts.exchange import Call, Event
from mcpsim.server.fronts.translate import STATE_PREFIX

ASKING_METHODS = frozenset({"tools/call", "prompts/get", "resources/read"})
"""The requests that may answer `input_required` at 2026-07-28."""
CAPABILITY_OF = {"sampling/createMessage": "sampling", "elicitation/create": "elicitation", "roots/list": "roots"}
ROUND_MARK = "r."
MAX_HELD_PER_INSTANCE = 16
MAX_HELD = 1024
MAX_TTL = 120.0
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
EXPIRED = "Invalid or expired requestState"


def target_of(method: str, params: Any) -> Any:
    """What a retry must name again: the tool or prompt name, or the resource URI."""
    params = params if isinstance(params, dict) else {}
    return params.get("uri") if method == "resources/read" else params.get("name")


def round_token(params: Any) -> str | None:
    """The token of a held call a retry's `requestState` names (`mcpsim1.<handle>.r.<token>`), else None."""
    state = params.get("requestState") if isinstance(params, dict) else None
    if not isinstance(state, str) or not state.startswith(STATE_PREFIX):
        return None
    inner = state.split(".", 2)[2] if state.count(".") >= 2 else ""
    return inner[len(ROUND_MARK) :] if inner.startswith(ROUND_MARK) else None


@dataclass
class Held:
    """One translated call and the server requests it waits on (key -> the backend's request id)."""

    call: Call
    handle: str
    method: str
    target: Any
    asks: dict[str, tuple[RequestId, str, Any]] = field(default_factory=dict)
    """key -> (the backend's id of its server request, its method, its params)."""
    keys: int = 0
    parked: bool = False
    """Held between rounds: the HTTP request that opened it must not close the call."""
    expires: float = 0.0


class Rounds:
    """The held calls of all episodes; `reap()` (a task of the modern front) ends the expired ones."""

    def __init__(self, ttl: float = MAX_TTL) -> None:
        self.ttl = min(ttl, MAX_TTL)
        self.held: dict[str, Held] = {}
        self.rounds = 0

    def take(self, handle: str, method: str, params: Any) -> Held:
        """The held call a retry names, removed (single use); -32602 if unknown, expired or not this request."""
        token = round_token(params)
        held = self.held.get(token) if token is not None else None
        if held is None or held.handle != handle or held.method != method or held.target != target_of(method, params):
            raise ProtocolRejection(EXPIRED, INVALID_PARAMS)
        del self.held[token]  # type: ignore[arg-type]
        held.parked = False
        return held

    async def reap(self) -> None:
        while True:
            await anyio.sleep(max(0.05, min(1.0, self.ttl / 4)))
            now = time.monotonic()
            for token, held in list(self.held.items()):
                if held.expires <= now or held.call.instance.ended.is_set():
                    await self._drop(token, f"the client did not answer within {self.ttl:g} s")

    async def close_all(self) -> None:
        for token in list(self.held):
            await self._drop(token, "mcpsim is shutting down")

    async def _drop(self, token: str, reason: str) -> None:
        held = self.held.pop(token, None)
        if held is None:
            return
        held.parked = False
        with anyio.CancelScope(shield=True):
            for server_id, _, _ in held.asks.values():
                with contextlib.suppress(Exception):
                    await held.call.refuse(server_id, METHOD_NOT_FOUND, reason)
            await held.call.close()

    async def _park(self, held: Held) -> str:
        mine = [token for token, other in self.held.items() if other.handle == held.handle]
        if len(mine) >= MAX_HELD_PER_INSTANCE:
            await self._drop(mine[0], f"more than {MAX_HELD_PER_INSTANCE} calls of this episode wait for input")
        if len(self.held) >= MAX_HELD:
            await self._drop(next(iter(self.held)), f"more than {MAX_HELD} calls wait for input")
        token = secrets.token_urlsafe(16)
        held.parked, held.expires = True, time.monotonic() + self.ttl
        self.held[token] = held
        self.rounds += 1
        return token

    async def outcome(
        self, held: Held, responses: Any, capabilities: dict[str, Any], request_id: RequestId
    ) -> AsyncIterator[Event]:
        """The events of one round: related notifications, then the call's final answer, an `input_required`
        result (the call is then parked), or the -32021 error of an undeclared capability."""
        if responses is not None and not isinstance(responses, dict):
            raise ProtocolRejection("inputResponses must be an object keyed like inputRequests", INVALID_PARAMS)
        for key, (server_id, _, _) in list(held.asks.items()):
            answer = (responses or {}).get(key)
            if isinstance(answer, dict):
                await held.call.answer(server_id, {k: v for k, v in answer.items() if k != "resultType"})
                del held.asks[key]
        if held.asks:  # some left unanswered: ask for them again
            yield await self._input_required(held, request_id)
            return
        async for event in held.call.events:
            if not isinstance(event, JSONRPCRequest):
                yield event
                if isinstance(event, JSONRPCResponse | JSONRPCError):
                    return
                continue
            if event.method == "ping":
                await held.call.answer(event.id, {})
                continue
            capability = CAPABILITY_OF.get(event.method)
            if capability is None:
                await held.call.refuse(event.id, METHOD_NOT_FOUND, f"{event.method} cannot be relayed at 2026-07-28")
                continue
            if capability not in capabilities:
                reason = f"the client of this request declared no {capability} capability"
                await held.call.refuse(event.id, METHOD_NOT_FOUND, reason)
                yield missing_capability(request_id, capability, event.method)
                return
            held.keys += 1
            held.asks[f"mcpsim-{held.keys}"] = (event.id, event.method, event.params)
            yield await self._input_required(held, request_id)
            return

    async def _input_required(self, held: Held, request_id: RequestId) -> JSONRPCResponse:
        token = await self._park(held)
        requests = {key: {"method": m, "params": p or {}} for key, (_, m, p) in held.asks.items()}
        result = {
            "resultType": "input_required",
            "inputRequests": requests,
            "requestState": f"{STATE_PREFIX}{held.handle}.{ROUND_MARK}{token}",
        }
        return JSONRPCResponse(jsonrpc="2.0", id=request_id, result=result)


def missing_capability(request_id: RequestId, capability: str, method: str) -> JSONRPCError:
    message = f"the server asked for {method}, which needs the client capability {capability!r}: declare it"
    data = {"requiredCapabilities": {capability: {}}}
    error = ErrorData(code=MISSING_REQUIRED_CLIENT_CAPABILITY, message=message, data=data)
    return JSONRPCError(jsonrpc="2.0", id=request_id, error=error)
