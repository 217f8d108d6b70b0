"""One environment = one MCP session with its own seeded instance, opened with the official SDK client.

`make()` only describes environments (no connection yet): the rollout opens each session when the episode
starts and closes it when it ends, so the managed server can end the instance at once. The seed goes in the
query string (`?seed=N`), the config as URL-encoded JSON (`&config=...`); a single production server simply
ignores both. Tools come from `tools/list`, the initial observation from the server's resources, reward and
episode end from each tool result's `_meta["mcpsim"]`.
"""

import contextlib
import contextvars
import json
import math
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx2
from jsonschema import Draft202012Validator, SchemaError
from jsonschema.exceptions import best_match
from jsonschema.validators import validator_for
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import Implementation
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from mcpsim.client.content import block_dict, blocks_from_content, blocks_from_resource
from mcpsim.client.dataset import DatasetSource, assign_env_ids, load_rows, seed_rows
from mcpsim.client.keepalive import DrainingTransport
from mcpsim.client.sockets import caching_transport
from mcpsim.client.urls import STDIO_PREFIX, check_url, session_url, stdio_command
from mcpsim.errors import ConfigError, ConnectError, EnvError, InvalidAction, describe_exception
from mcpsim.trajectory import Action, Observation, Row
from mcpsim.wire import (
    CLIENT_PROTOCOLS,
    HANDLE_META_KEY,
    INITIAL_STATE_URI,
    KEEPALIVE_EXPIRY_S,
    META_KEY,
    URL_META_KEY,
    VERSION,
)

_SESSION_BOX: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("mcpsim_session", default=None)
"""Where the HTTP response hook puts the MCP session id of the session being opened (the SDK keeps it to itself;
its transport tasks inherit this context)."""


async def _note_session_id(response: httpx2.Response) -> None:
    box = _SESSION_BOX.get()
    if box is not None and (session_id := response.headers.get("mcp-session-id")):
        box.setdefault("id", session_id)


PAGE_CAP = 100
DEFAULT_TIMEOUT = 120.0


def mcp_error_text(exc: BaseException) -> str:
    """JSON-RPC errors from the SDK (`MCPError`) read as their message and code; anything else as its type."""
    error = getattr(exc, "error", None)
    if error is not None and hasattr(error, "code") and hasattr(error, "message"):
        return f"{error.message} (JSON-RPC error {error.code})"
    return describe_exception(exc)


@dataclass(frozen=True)
class StepResult:
    observation: Observation
    reward: float
    terminated: bool
    truncated: bool
    is_error: bool
    latency_ms: float
    meta: dict[str, Any] | None


def _flag(info: Mapping[str, Any], key: str) -> bool:
    value = info.get(key, False)
    return value is True or value == 1


def _reward(info: Mapping[str, Any]) -> float:
    try:
        reward = float(info.get("reward", 0.0))
    except (TypeError, ValueError):
        return 0.0
    return reward if math.isfinite(reward) else 0.0


class EnvSession:
    """An open MCP session: the tools, the initial observation, and `step(action)`."""

    def __init__(self, client: Any, env: "Environment", tools: list[dict[str, Any]], initial: Observation) -> None:
        self._client = client
        self.env = env
        self.tools = tools
        self.initial_observation = initial
        self.instructions: str | None = client.instructions
        self._validators: dict[str, Any] = {}
        self.protocol: str | None = getattr(client, "protocol_version", None)
        """The revision the session speaks: 2026-07-28, or a handshake-era version (recorded per episode)."""
        self.handle: str | None = None
        """In a 2026-07-28 session with mcpsim, the episode's handle (`_meta["mcpsim/handle"]` of its results),
        sent with every later request; None elsewhere (and then nothing changes)."""
        self.handle_url: str | None = None
        self.session_id: str | None = None
        """The managed server's MCP session id (streamable HTTP), which names the instance to branch."""
        self.branch_info: dict[str, Any] | None = None
        """For a copy made by `branch`: `{"id", "url", "parent", "branched_at_step", "method"}`."""
        self._stack: contextlib.AsyncExitStack | None = None

    def follow(self, meta: Mapping[str, Any] | None) -> None:
        """Remember the episode's handle from a result's `_meta` (mcpsim names it on every 2026 result)."""
        handle = (meta or {}).get(HANDLE_META_KEY)
        if isinstance(handle, str) and self.protocol in MODERN_PROTOCOL_VERSIONS:
            self.handle = handle
            url = (meta or {}).get(URL_META_KEY)
            self.handle_url = url if isinstance(url, str) else None

    @property
    def handle_meta(self) -> dict[str, Any] | None:
        return {HANDLE_META_KEY: self.handle} if self.handle else None

    async def branch(self, count: int) -> list["EnvSession"]:
        """`count` copies of this episode as it is now, each an open session on its own instance.

        Asks the managed server (`POST /api/instances/{id}/branch`); the copies are closed, and their instances
        ended, when this session closes (or earlier with `close_branch`). Raises `EnvError` naming the cause."""
        from mcpsim.client.branches import open_branches

        if self._stack is None or (self.session_id is None and self.branch_info is None and self.handle is None):
            raise EnvError("only a session on a managed server's /mcp endpoint (streamable HTTP) can be branched")
        return await open_branches(self, self._stack, count)

    async def close_branch(self) -> None:
        """End this copy's instance now (a search drops a state it will not continue): its session is closed, like
        every copy's, when the session it was branched from closes. Raises `EnvError` for a session that is not a
        copy."""
        from mcpsim.client.branches import end_branch

        if self.branch_info is None:
            raise EnvError("only a copy made by branch() can be closed early; close the root session instead")
        await end_branch(self)

    @property
    def tool_names(self) -> list[str]:
        return [tool["name"] for tool in self.tools]

    def validate(self, action: Action, step: int) -> None:
        """Reject an unknown tool or arguments the tool's input schema refuses, before anything is sent."""
        tool = next((t for t in self.tools if t["name"] == action.tool), None)
        if tool is None:
            raise InvalidAction(
                f"unknown tool {action.tool!r}; the server offers: {', '.join(self.tool_names) or 'no tools'}",
                step=step,
            )
        if not isinstance(action.arguments, dict):
            raise InvalidAction(
                f"arguments for {action.tool!r} must be a JSON object, got {type(action.arguments).__name__}",
                step=step,
            )
        validator = self._validator(tool)
        if validator is None:
            return
        error = _best_error(validator, action.arguments)
        if error is not None:
            raise InvalidAction(
                f"arguments {json.dumps(action.arguments)[:200]} for {action.tool!r} do not match its input schema: "
                f"{error}",
                step=step,
            )

    def _validator(self, tool: Mapping[str, Any]) -> Any:
        name = tool["name"]
        if name not in self._validators:
            schema = tool.get("inputSchema") or {}
            try:
                cls = validator_for(schema, default=Draft202012Validator)
                cls.check_schema(schema)
                self._validators[name] = cls(schema)
            except SchemaError:
                self._validators[name] = None  # a broken schema is the server's to judge
        return self._validators[name]

    async def step(self, action: Action, step: int) -> StepResult:
        started = time.perf_counter()
        try:
            result = await self._client.call_tool(action.tool, action.arguments, meta=self.handle_meta)
        except Exception as exc:
            raise EnvError(f"tools/call {action.tool!r} failed: {mcp_error_text(exc)}", step=step) from exc
        latency_ms = (time.perf_counter() - started) * 1000
        meta = dict(result.meta) if result.meta else None
        self.follow(meta)
        if meta is not None:  # the handle is mcpsim's routing, not the environment's info
            meta.pop(HANDLE_META_KEY, None)
            meta.pop(URL_META_KEY, None)
        info = (meta or {}).get(META_KEY) or {}
        if not isinstance(info, Mapping):
            info = {}
        return StepResult(
            observation=blocks_from_content(result.content),
            reward=_reward(info),
            terminated=_flag(info, "terminated"),
            truncated=_flag(info, "truncated"),
            is_error=bool(result.is_error),
            latency_ms=latency_ms,
            meta=meta,
        )


def _best_error(validator: Any, instance: Any) -> str | None:
    error = best_match(validator.iter_errors(instance))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path)
    return f"{where}: {error.message}" if where else error.message


def choose_initial_resource(resources: Sequence[Mapping[str, Any]]) -> str | None:
    """The resource that holds the initial observation: `game://initial_state`, else the first whose URI or name
    says initial/state/observation, else the first listed."""
    uris = [str(r.get("uri")) for r in resources]
    if INITIAL_STATE_URI in uris:
        return INITIAL_STATE_URI
    for word in ("initial", "state", "observation"):
        for resource, uri in zip(resources, uris, strict=True):
            if word in uri.lower() or word in str(resource.get("name", "")).lower():
                return uri
    return uris[0] if uris else None


@dataclass(frozen=True)
class Environment:
    """One episode's environment: the server URL and the dataset row it is started from."""

    url: str
    row: Row
    initial_resource: str | None = None
    """URI of the resource read as the initial observation; default: `choose_initial_resource`."""
    timeout: float = DEFAULT_TIMEOUT
    """Seconds for any one MCP request (including the handshake, which waits for the instance to start)."""
    client_name: str = "mcpsim"
    protocol: str = "auto"
    """The MCP revision to speak: `auto` (2026-07-28 if the server speaks it, else the handshake), `2026-07-28`,
    or `legacy` (the handshake). `/sse` and `stdio:` URLs always use the handshake."""

    def __post_init__(self) -> None:
        if self.protocol not in CLIENT_PROTOCOLS:
            raise ConfigError(f"protocol must be one of {', '.join(CLIENT_PROTOCOLS)}, got {self.protocol!r}")

    @property
    def env_id(self) -> str:
        return self.row.env_id or self.row.id

    @property
    def seed(self) -> int:
        return self.row.seed

    @property
    def session_url(self) -> str:
        if self.url.startswith(STDIO_PREFIX):
            return self.url
        return session_url(self.url, self.row.seed, self.row.config)

    @property
    def uses_sse(self) -> bool:
        return urlsplit(self.url).path.rstrip("/").endswith("/sse")

    def _client(self, http_client: httpx2.AsyncClient | None) -> Client:
        target: Any = self.session_url
        if self.url.startswith(STDIO_PREFIX):
            target = stdio_command(self.url, self.row.seed, self.row.config)
        elif self.uses_sse:
            target = sse_client(self.session_url, timeout=self.timeout, sse_read_timeout=max(self.timeout, 300.0))
        elif http_client is not None:
            target = streamable_http_client(self.session_url, http_client=http_client)
        legacy = self.uses_sse or self.url.startswith(STDIO_PREFIX)
        return Client(
            target,
            mode="legacy" if legacy else self.protocol,  # type: ignore[arg-type]
            cache=None,
            read_timeout_seconds=self.timeout,
            client_info=Implementation(name=self.client_name, version=VERSION),
        )

    @contextlib.asynccontextmanager
    async def connect(self, http_client: httpx2.AsyncClient | None = None) -> AsyncIterator[EnvSession]:
        """Open the session: handshake, `tools/list`, initial observation. Failures raise `ConnectError`.

        `http_client` lets many sessions share one connection pool (a rollout does); sessions stay separate
        because the MCP session id travels per request, not on the client.
        """
        async with contextlib.AsyncExitStack() as stack:
            box: dict[str, str] = {}
            token = _SESSION_BOX.set(box)
            try:
                if not (self.url.startswith(STDIO_PREFIX) or self.uses_sse):
                    http_client = http_client or await stack.enter_async_context(shared_http_client(1))
                    if _note_session_id not in http_client.event_hooks["response"]:
                        http_client.event_hooks["response"].append(_note_session_id)
                client = await stack.enter_async_context(self._client(http_client))
                tools = await self._list_tools(client)
                session = EnvSession(client, self, tools, [])
                session.initial_observation = await self._initial_observation(client, session)
            except Exception as exc:
                raise ConnectError(f"cannot open an MCP session at {self.session_url}: {mcp_error_text(exc)}") from exc
            finally:
                _SESSION_BOX.reset(token)
            session.session_id, session._stack = box.get("id"), stack
            try:
                yield session
            finally:
                await end_handle(session, http_client)

    async def _list_tools(self, client: Any) -> list[dict[str, Any]]:
        tools: list[dict[str, Any]] = []
        cursor = None
        for _ in range(PAGE_CAP):
            page = await client.list_tools(cursor=cursor)
            tools.extend(block_dict(tool) for tool in page.tools)
            cursor = page.next_cursor
            if cursor is None:
                break
        return tools

    async def _initial_observation(self, client: Any, session: EnvSession) -> Observation:
        uri = self.initial_resource
        if uri is None:
            capabilities = client.server_capabilities
            unknown = self.protocol in MODERN_PROTOCOL_VERSIONS  # no discover: the capabilities are not known
            if (capabilities is None or capabilities.resources is None) and not unknown:
                return []
            try:
                listed = await client.list_resources()
            except Exception:  # a server without resources: no initial observation
                return []
            uri = choose_initial_resource([block_dict(r) for r in listed.resources])
            if uri is None:
                return []
        result = await client.read_resource(uri)
        session.follow(result.meta)
        return blocks_from_resource(result.contents)


async def end_handle(session: EnvSession, http_client: httpx2.AsyncClient | None) -> None:
    """End a 2026-07-28 episode at once (DELETE on its handle URL), best effort: the idle timeout would too."""
    if session.handle_url is None:
        return
    with contextlib.suppress(httpx2.HTTPError, OSError), anyio.CancelScope(shield=True), anyio.move_on_after(5):
        if http_client is not None:
            await http_client.delete(session.handle_url)
        else:
            async with httpx2.AsyncClient(timeout=5) as client:
                await client.delete(session.handle_url)


def shared_http_client(max_concurrency: int) -> httpx2.AsyncClient:
    """One HTTP client for every session of a rollout: one TLS context instead of one per session, pooled
    connections, and no pool limit to queue behind (each session also holds a long-lived GET stream)."""
    limits = httpx2.Limits(
        max_connections=None,
        max_keepalive_connections=max(20, 2 * max_concurrency),
        keepalive_expiry=KEEPALIVE_EXPIRY_S,  # closed by us before the server would: no request lost
    )
    # drained SSE answers keep their connection (`keepalive.py`): no new TCP connection per request
    return httpx2.AsyncClient(
        timeout=httpx2.Timeout(30.0, read=300.0),
        transport=DrainingTransport(caching_transport(limits)),  # `sockets.py`: a cheaper pool scan
    )


def make(
    url: str,
    dataset: DatasetSource | None = None,
    *,
    seeds: Sequence[int] | None = None,
    samples: int = 1,
    initial_resource: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    protocol: str = "auto",
) -> list[Environment]:
    """Environments for `url`, one per dataset row (times `samples`); nothing is connected yet.

    `dataset` is a list of rows (`{"id", "seed", "system_prompt", "user_prompt", "config"}`) or a JSONL path;
    `seeds` is a shortcut for rows with only a seed. Rows are validated here, so bad input fails before any
    episode starts. Reading a JSONL path blocks briefly: call `make` before the event loop or in a thread.
    """
    check_url(url)
    if (dataset is None) == (seeds is None):
        raise ConfigError("give exactly one of dataset= (rows or a JSONL path) or seeds=")
    rows = load_rows(seed_rows(seeds) if seeds is not None else dataset)  # type: ignore[arg-type]
    return [
        Environment(url, row, initial_resource=initial_resource, timeout=timeout, protocol=protocol)
        for row in assign_env_ids(rows, samples)
    ]
