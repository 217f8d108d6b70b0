"""Handshake-era protocol sessions on an instance handle: an `initialize` POSTed to `/envs/{id}/mcp` opens one.

A handshake-era client expects the streamable-HTTP session the spec describes: an `Mcp-Session-Id` from its
`initialize`, a GET stream for what the server sends outside any request, `DELETE` to end it. On a handle the
episode already exists (the instance), so a session here is only the client's connection to it: the SDK's
`StreamableHTTPServerTransport` with a fresh session id, bridged to the instance for as long as the session
lasts. The first session on an instance without one takes its primary channel (the server's own requests and
unrelated notifications, on the GET stream); later ones get what concerns their requests.

A session ends at the client's `DELETE` with its id (the instance goes on: `DELETE` without a session id, the
idle timeout or the instance's end end the episode), or when the instance ends. At most
`MAX_SESSIONS_PER_HANDLE` are open on one instance: one more `initialize` ends the least recently used (its
client gets 404 for it and, as the spec says a client must, opens a new one), so sessions a client never ended
cannot lock the handle. Each runs in the task group `running()` owns (the app's lifespan), and an unexpected
error ends that session alone, logged with its traceback and counted.
"""

import contextlib
import logging
import time
import uuid
from dataclasses import dataclass, field

import anyio
from anyio.abc import TaskStatus
from mcp.server.streamable_http import StreamableHTTPServerTransport
from starlette.types import Receive, Scope, Send

from mcpsim.errors import NotFound
from mcpsim.pool import Instance, InstancePool
from mcpsim.server.fronts.bodies import read_body, replaying
from mcpsim.server.fronts.session_tasks import SessionTasks
from mcpsim.server.proxy import bridge

logger = logging.getLogger(__name__)
MAX_SESSIONS_PER_HANDLE = 64
"""Open handshake-era sessions on one instance handle; one more `initialize` ends the least recently used."""


@dataclass
class HandleSession:
    id: str
    transport: StreamableHTTPServerTransport
    instance: Instance
    last_used: float = field(default_factory=time.monotonic)


class HandleSessions:
    """The open sessions of every handle; serves while `running()` is entered."""

    def __init__(self, pool: InstancePool, sse: bool = True) -> None:
        self.pool = pool
        self.sse = sse
        self.sessions: dict[str, HandleSession] = {}
        self.tasks = SessionTasks()

    def running(self) -> contextlib.AbstractAsyncContextManager[None]:
        return self.tasks.running()

    async def serve(self, instance: Instance, session_id: str, scope: Scope, receive: Receive, send: Send) -> None:
        """A request (GET stream, POST, DELETE) of an open session on `instance`'s handle."""
        session = self.sessions.get(session_id)
        if session is None or session.instance is not instance:
            raise NotFound(f"Session not found: {session_id[:64]!r} ended or never existed on this handle")
        session.last_used = time.monotonic()
        if scope["method"] == "POST":  # bounded here: the SDK transport would read any body whole
            receive = replaying(await read_body(receive, self.pool.config.max_message_bytes, scope), receive)
        await session.transport.handle_request(scope, receive, send)

    async def open(self, instance: Instance, body: bytes, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer an `initialize` on `instance`'s handle with a new session."""
        open_here = [session for session in self.sessions.values() if session.instance is instance]
        if len(open_here) >= MAX_SESSIONS_PER_HANDLE:
            oldest = min(open_here, key=lambda session: session.last_used)
            del self.sessions[oldest.id]  # its requests get 404 from now on; its task ends with its transport
            instance.log.info(
                "handle session %s ended: %d open, the most a handle keeps",
                oldest.id,
                MAX_SESSIONS_PER_HANDLE,
                extra={"event": "handle_session.evicted"},
            )
            await oldest.transport.terminate()
        session_id = uuid.uuid4().hex
        transport = StreamableHTTPServerTransport(session_id, is_json_response_enabled=not self.sse)
        session = HandleSession(session_id, transport, instance)
        self.sessions[session_id] = session
        await self.tasks.start(self._run, session)
        instance.log.info("handle session opened", extra={"event": "handle_session.opened"})
        await transport.handle_request(scope, replaying(body, receive), send)

    async def _run(self, session: HandleSession, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        instance = session.instance
        try:
            async with session.transport.connect() as (read_stream, write_stream), anyio.create_task_group() as tg:
                primary = instance.mux is not None and instance.mux.primary is None
                task_status.started()

                async def end_with_instance() -> None:
                    await instance.ended.wait()
                    tg.cancel_scope.cancel()

                tg.start_soon(end_with_instance)
                name = f"handle session {session.id}"
                await bridge(instance, read_stream, write_stream, name=name, primary=primary, back_channel=self.sse)
                tg.cancel_scope.cancel()
        except Exception:
            instance.log.exception("handle session failed unexpectedly", extra={"event": "handle_session.failed"})
            self.pool.count_internal_error("session")
        finally:
            with anyio.CancelScope(shield=True):
                if not session.transport.is_terminated:
                    await session.transport.terminate()
                if self.sessions.pop(session.id, None) is not None:
                    instance.log.info("handle session ended", extra={"event": "handle_session.ended"})
