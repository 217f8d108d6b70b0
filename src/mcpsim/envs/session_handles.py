"""`SessionEnvServer` at MCP 2026-07-28: episodes keyed by handles instead of sessions.

The 2026 revision has no sessions, so an episode is named by a server-minted handle, as mcpsim's managed server
does (docs/transports.md): a handle-less `tools/call` or `resources/read` on `/mcp?seed=S&config=C` starts an
episode with a fresh 128-bit handle, named in the result's `_meta["mcpsim/handle"]`; a request carrying
`_meta["mcpsim/handle"]` acts on that episode; handle-less discovers and lists touch no episode. Handles end after
the idle timeout or with `DELETE /episodes/<handle>`. The requests themselves are served by the SDK's own
2026-07-28 entry (`StreamableHTTPSessionManager`, JSON answers), with the handle's episode found through the
same `ContextVar` the sessions use; only the answer is stamped here with the handle.
"""

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive, Send

from mcpsim.envs.gym_server import Episode
from mcpsim.wire import HANDLE_META_KEY, HANDLE_UNKNOWN, parse_seed, random_seed

STATE_METHODS = frozenset({"tools/call", "resources/read", "prompts/get", "completion/complete"})
MAX_BODY = 4 * 1024 * 1024


@dataclass
class HandleEpisode:
    handle: str
    seed: int
    episode: Episode
    last_used: float = field(default_factory=time.monotonic)


def error(status: int, code: int, message: str, request_id: Any = None) -> Response:
    return JSONResponse({"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}, status)


def replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await anyio.sleep_forever()
        raise AssertionError  # unreachable

    return receive


def stamping(send: Send, handle: str) -> Send:
    """A `send` that adds the handle to the `_meta` of a JSON answer's result (the body is held until whole)."""
    start: dict[str, Any] = {}
    chunks: list[bytes] = []

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
            return
        if message["type"] != "http.response.body":
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body"):
            return
        body = b"".join(chunks)
        try:
            answer = json.loads(body)
            result = answer.get("result") if isinstance(answer, dict) else None
            if isinstance(result, dict):
                result["_meta"] = {**(result.get("_meta") or {}), HANDLE_META_KEY: handle}
                body = json.dumps(answer, separators=(",", ":")).encode()
        except ValueError:
            pass  # not JSON (an SSE answer): sent as it is
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    return wrapped


class HandleEpisodes:
    """The 2026 episodes of a `SessionEnvServer`: minted, found, ended."""

    def __init__(
        self, make_episode: Callable[[int, dict[str, Any]], Episode], read_config: Callable[[Any], Any]
    ) -> None:
        self.make_episode = make_episode
        self.read_config = read_config
        self.episodes: dict[str, HandleEpisode] = {}

    def get(self, handle: str) -> Episode | None:
        found = self.episodes.get(handle)
        if found is not None:
            found.last_used = time.monotonic()
        return found.episode if found else None

    def end(self, handle: str) -> bool:
        found = self.episodes.pop(handle, None)
        if found is not None:
            found.episode.close()
        return found is not None

    def reap(self, idle_timeout: float | None) -> None:
        if idle_timeout is None:
            return
        now = time.monotonic()
        for handle, found in list(self.episodes.items()):
            if now - found.last_used > idle_timeout:
                self.end(handle)

    async def route(self, request: Request, room: bool) -> tuple[bytes, str | None, Response | None]:
        """(body, handle the request acts on, refusal): reads the body, mints or finds the episode."""
        body = await request.body()
        if len(body) > MAX_BODY:
            return body, None, error(413, -32600, f"request body larger than {MAX_BODY} bytes")
        try:
            message = json.loads(body)
        except ValueError:
            return body, None, None  # the SDK's entry answers the parse error
        params = message.get("params") if isinstance(message, dict) else None
        meta = params.get("_meta") if isinstance(params, dict) else None
        handle = meta.get(HANDLE_META_KEY) if isinstance(meta, dict) else None
        request_id = message.get("id") if isinstance(message, dict) else None
        if handle is not None:
            if not isinstance(handle, str) or handle not in self.episodes:
                return body, None, error(404, HANDLE_UNKNOWN, "no episode has this handle (ended or never existed)")
            return body, handle, None
        if not isinstance(message, dict) or message.get("method") not in STATE_METHODS:
            return body, None, None
        if not room:
            return body, None, error(503, -32603, "too many open episodes; end one first", request_id)
        try:
            parsed = parse_seed(request.query_params.get("seed"))
            config = self.read_config(request.query_params.get("config"))
            seed = random_seed() if parsed is None else parsed
            episode = await anyio.to_thread.run_sync(self.make_episode, seed, config)
        except (ValueError, TypeError, KeyError) as exc:
            return body, None, error(400, -32602, f"invalid seed or config: {exc}", request_id)
        handle = secrets.token_hex(16)
        self.episodes[handle] = HandleEpisode(handle, seed, episode)
        return body, handle, None
