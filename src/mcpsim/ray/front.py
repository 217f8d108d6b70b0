"""`RayFront`: the stateless MCP front of `mcpsim serve --ray`: each request routed to the node that holds it.

- A request naming an episode (an `Mcp-Session-Id`, a handle in the URL, in `_meta["mcpsim/handle"]` or in a
  wrapped `requestState`, an `/api/instances/{id}` path, a legacy `session_id`) goes to the node the registry
  names; a node that is gone answers `NodeGone` (JSON-RPC -32011 family, 404) naming it.
- A request that starts an episode (`initialize`, a handle-less 2026 call that touches state, `GET /sse`,
  `POST /api/instances`) goes to the node with the most room (`Nodes.pick`), and the id its answer names is
  registered before the answer reaches the client. Only a 503 capacity answer is tried on another node.
- Anything else (handle-less listings, unknown ids) goes to any live node, whose own answer is the right one.
Nothing of a session lives in this process: any front of the cluster serves any session.
"""

import json
import re
from typing import Any

from starlette.types import Receive, Scope, Send

from mcpsim.errors import ClusterFull, MCPSimError, NodeGone
from mcpsim.ray.cluster import Node, Nodes
from mcpsim.ray.registry import Registry
from mcpsim.ray.relay import SESSION_IN_STREAM, Relay, send_whole
from mcpsim.server.edge import note_request_id, respond_error
from mcpsim.server.fronts.bodies import read_body
from mcpsim.server.fronts.translate import handle_in, state_handle
from mcpsim.wire import CAPACITY_EXHAUSTED, HANDLE_CAPACITY

STATEFUL = frozenset({"tools/call", "resources/read", "prompts/get", "completion/complete"})
"""Handle-less 2026 requests that start an episode (docs/transports.md, "Minting")."""
HANDLE_IN_ANSWER = re.compile(rb'"mcpsim/handle"\s*:\s*"([0-9a-f]{32})"')
ID_IN_ANSWER = re.compile(rb'"id"\s*:\s*"([0-9a-f]{32})"')
CAPACITY_CODES = (CAPACITY_EXHAUSTED, HANDLE_CAPACITY)
ENVS = re.compile(r"^/envs/([^/]+)(/.*)?$")
INSTANCE = re.compile(r"^/api/instances/([^/]+)(/[a-z]+)?$")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


class RayFront:
    """The ASGI app of the MCP paths and `/api/instances*` but the listing (`ops.py` has that and `/health`)."""

    def __init__(self, nodes: Nodes, registry: Registry, relay: Relay, max_body: int) -> None:
        self.nodes = nodes
        self.registry = registry
        self.relay = relay
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._route(scope, receive, send)
        except MCPSimError as exc:
            await respond_error(exc, scope, receive, send)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        body = await read_body(receive, self.max_body, scope)
        if path in ("/mcp", "/mcp/") or path.startswith("/control/"):
            await self._mcp(scope, body, send)
        elif (match := ENVS.match(path)) is not None:
            await self._known(scope, body, send, "h", match.group(1), ended=method == "DELETE")
        elif path == "/sse":
            await self._start(scope, body, send, "s", stream=True)
        elif path.startswith("/messages"):
            query = scope.get("query_string", b"").decode("latin-1")
            found = re.search(r"session_id=([0-9a-fA-F-]+)", query)
            await self._known(scope, body, send, "s", found.group(1) if found else None)
        elif path == "/api/instances" and method == "POST":
            if b'"seeds"' in body:  # an announcement: the warm pool of the roomiest node
                await self._any(scope, body, send)
            else:
                await self._start(scope, body, send, "h", pattern=ID_IN_ANSWER)
        elif (match := INSTANCE.match(path)) is not None:
            branch = match.group(2) == "/branch"
            await self._known(
                scope, body, send, "h", match.group(1), ended=method == "DELETE" and not match.group(2),
                copies=branch,
            )  # fmt: skip
        else:
            await self._any(scope, body, send)

    async def _mcp(self, scope: Scope, body: bytes, send: Send) -> None:
        session = _header(scope, b"mcp-session-id")
        if session:
            await self._known(scope, body, send, "s", session, ended=scope["method"] == "DELETE")
            return
        try:
            message: Any = json.loads(body) if body else None
        except ValueError:
            message = None
        if not isinstance(message, dict):
            await self._any(scope, body, send)
            return
        note_request_id(scope, message.get("id"))
        method = message.get("method")
        handle = handle_in(message)
        wrapped = state_handle(message.get("params"))
        if isinstance(handle, str) or isinstance(wrapped, str):
            await self._known(scope, body, send, "h", handle if isinstance(handle, str) else str(wrapped))
        elif method == "initialize":
            await self._start(scope, body, send, "s")
        elif method in STATEFUL and "id" in message:
            await self._start(scope, body, send, "h", pattern=HANDLE_IN_ANSWER)
        else:
            await self._any(scope, body, send)

    async def _known(
        self, scope: Scope, body: bytes, send: Send, kind: str, key: str | None, ended: bool = False,
        copies: bool = False,
    ) -> None:  # fmt: skip
        """A request for an existing session or handle: to its node, or any node's own 404 if unknown."""
        value = await self.registry.get(kind, key) if key else None
        if value is None:
            await self._any(scope, body, send)
            return
        node = self.nodes.get(value)  # NodeGone naming the node
        reply = await self.relay.open(node, scope, body)
        if copies and reply.status_code < 300:  # a branch: its copies live on the same node
            data = await self.relay.captured(reply)
            for copy in ID_IN_ANSWER.findall(data):
                await self._register(node, "h", copy.decode())
            await send_whole(reply, data, send)
            return
        if ended and reply.status_code < 300:
            await self.registry.delete(kind, key or "")
        await self.relay.deliver(reply, send)

    async def _start(
        self, scope: Scope, body: bytes, send: Send, kind: str, pattern: re.Pattern[bytes] | None = None,
        stream: bool = False,
    ) -> None:  # fmt: skip
        """A request that starts an episode: placed by room, its new id registered before the client sees it."""
        tried: set[str] = set()
        while True:
            node = self.nodes.pick(exclude=tried)
            tried.add(node.key)
            try:
                reply = await self.relay.open(node, scope, body)
            except NodeGone:
                continue  # it never got the request: nothing ran there
            if reply.status_code == 503 and stream is False:
                data = await self.relay.captured(reply)
                if _capacity_refusal(data):
                    node.placed = node.max_instances  # full until the next refresh says otherwise
                    if len(tried) < len(self.nodes.nodes):
                        continue
                    raise ClusterFull(f"every node refused a new instance (last: {node.label}: full)")
                await send_whole(reply, data, send)
                return
            break
        if stream:  # GET /sse: the session id is in the stream's first event
            seen: list[bool] = []

            async def watch(chunk: bytes) -> None:
                if not seen and (found := SESSION_IN_STREAM.search(chunk)) is not None:
                    seen.append(True)
                    await self._register(node, "s", found.group(1).decode())

            await self.relay.deliver(reply, send, watch)
            return
        if pattern is None:
            session = reply.headers.get("mcp-session-id")
            if session:
                await self._register(node, kind, session)
            await self.relay.deliver(reply, send)
            return
        data = await self.relay.captured(reply)
        found = pattern.search(data)
        if found is not None:
            await self._register(node, kind, found.group(1).decode())
        await send_whole(reply, data, send)

    async def _register(self, node: Node, kind: str, key: str) -> None:
        await self.registry.put(kind, key, node.key)
        self.nodes.claim(node, [key])

    async def _any(self, scope: Scope, body: bytes, send: Send) -> None:
        node = self.nodes.any()
        await self.relay.deliver(await self.relay.open(node, scope, body), send)


def _capacity_refusal(data: bytes) -> bool:
    try:
        error = json.loads(data).get("error", {})
    except (ValueError, AttributeError):
        return False
    return isinstance(error, dict) and error.get("code") in CAPACITY_CODES
