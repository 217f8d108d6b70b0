"""The requests one server connection has in flight: who sent each, under which ids, and when it runs out of time.

The multiplexer (`mux.py`) routes; this is its memory. Every client request forwarded to the server is an entry
under the server-side id the multiplexer gave it, findable by the client's own (channel, id) (to translate a
cancel) and by its progress token (to route progress). With a `request_timeout`, an entry also has a deadline on
the event loop's clock: progress moves it later, a server request the entry's client must answer first holds it
(the server waits on the client, so its silence is no hang), and `run_deadlines` answers the ones that pass it.
"""

import math
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio
from mcp.shared.message import ServerMessageMetadata
from mcp.types import RequestId

from mcpsim.protocol.channels import Channel
from mcpsim.protocol.messages import hashable_token

OPEN_ENDED = frozenset({"subscriptions/listen"})
"""Requests that last as long as the client wants (no `--request-timeout`: a quiet stream is not a hung server)."""


@dataclass
class Pending:
    channel: Channel
    client_id: RequestId
    method: str
    tool: str | None
    progress_token: Any
    params: Any = None
    """A `tools/call`'s params (a reference), for `on_call`."""
    started: float = field(default_factory=time.perf_counter)
    deadline: float = math.inf
    """When, on the event loop's clock (`anyio.current_time`), the request runs out of time; inf: never."""


class InFlight:
    """The table of one connection's pending requests, its indexes, and their deadlines."""

    def __init__(self, request_timeout: float | None, internal: Channel) -> None:
        self.request_timeout = request_timeout
        self._internal = internal
        """The multiplexer's own channel: its requests have no deadline and are no client's."""
        self._table: dict[int, Pending] = {}
        self._by_client: dict[tuple[int, RequestId], int] = {}
        self._progress: dict[Any, int] = {}
        self._next_check = math.inf
        self._deadline_moved = anyio.Event()

    def __len__(self) -> int:
        return len(self._table)

    def __iter__(self) -> Iterator[Pending]:
        return iter(list(self._table.values()))

    def add(self, server_id: int, pending: Pending) -> None:
        """A request forwarded under `server_id`; its clock starts unless it is open-ended or the proxy's own."""
        timed = pending.channel is not self._internal and pending.method not in OPEN_ENDED
        if self.request_timeout is not None and timed:
            self.restart(pending)
        self._table[server_id] = pending
        self._by_client[(id(pending.channel), pending.client_id)] = server_id
        if pending.progress_token is not None:
            self._progress[hashable_token(pending.progress_token)] = server_id

    def get(self, server_id: int | None) -> Pending | None:
        return self._table.get(server_id) if server_id is not None else None

    def pop(self, server_id: RequestId | None) -> Pending | None:
        """Remove the entry answered (or failed) under `server_id`, with its indexes; None if there is none."""
        pending = self._table.pop(server_id, None) if isinstance(server_id, int) else None
        if pending is not None:
            self._forget(pending)
        return pending

    def server_id_of(self, channel: Channel, client_id: RequestId) -> int | None:
        return self._by_client.get((id(channel), client_id))

    def by_progress(self, token: Any) -> Pending | None:
        return self.get(self._progress.get(hashable_token(token)))

    def drop_channel(self, channel: Channel) -> None:
        """Forget every request of a channel that left (their answers will be dropped)."""
        for server_id, pending in list(self._table.items()):
            if pending.channel is channel:
                del self._table[server_id]
                self._forget(pending)

    def drop_client_id(self, channel: Channel, client_id: RequestId) -> None:
        """Forget one request by its sender's id (a wait given up before its answer came)."""
        server_id = self._by_client.pop((id(channel), client_id), None)
        if server_id is not None:
            self._table.pop(server_id, None)

    def take_all(self) -> list[Pending]:
        """Empty the table (the connection is gone) and return what was in it, oldest first."""
        taken, self._table = list(self._table.values()), {}
        for pending in taken:
            self._forget(pending)
        return taken

    def _forget(self, pending: Pending) -> None:
        self._by_client.pop((id(pending.channel), pending.client_id), None)
        if pending.progress_token is not None:
            self._progress.pop(hashable_token(pending.progress_token), None)

    # -- which channel a server message concerns ------------------------------------------------------------

    def related(self, channel: Channel) -> ServerMessageMetadata | None:
        """Relate a server message to the channel's latest in-flight request, so it travels on that stream."""
        for pending in reversed(self._table.values()):
            if pending.channel is channel:
                return ServerMessageMetadata(related_request_id=pending.client_id)
        return None

    def latest_channel(self, wanted: Callable[[Channel], bool] = lambda channel: True) -> Channel | None:
        """The channel of the latest in-flight client request whose channel is `wanted`."""
        for pending in reversed(self._table.values()):
            if pending.channel is not self._internal and wanted(pending.channel):
                return pending.channel
        return None

    # -- deadlines --------------------------------------------------------------------------------------------

    def restart(self, pending: Pending) -> None:
        """Start `pending`'s clock again (it was forwarded, or the server showed progress on it)."""
        assert self.request_timeout is not None
        pending.deadline = anyio.current_time() + self.request_timeout
        if pending.deadline < self._next_check:  # earlier than the deadline task sleeps until: wake it
            self._deadline_moved.set()

    def hold(self, channel: Channel, held: bool) -> None:
        """Stop (or restart) the clocks of `channel`'s requests while the server waits on that client's answer to
        a server request routed to it as a non-primary channel (a 2026 call held for `input_required`)."""
        if self.request_timeout is None or channel is self._internal:
            return
        for pending in self._table.values():
            if pending.channel is channel and pending.method not in OPEN_ENDED:
                if held:
                    pending.deadline = math.inf
                elif pending.deadline == math.inf:  # only a held clock restarts (a session's runs on)
                    self.restart(pending)

    async def run_deadlines(self, expire: Callable[[Pending], Awaitable[None]]) -> None:
        """Hand each request that ran out of time (removed from the table) to `expire`, until cancelled.

        Sleeps until the nearest deadline (or until an earlier one is set); a deadline moved later by progress
        is found when the task wakes for the old one, so progress costs no wake-up."""
        while True:
            now = anyio.current_time()
            for server_id in [sid for sid, pending in self._table.items() if pending.deadline <= now]:
                pending = self.pop(server_id)
                if pending is not None:
                    await expire(pending)
            self._next_check = min((pending.deadline for pending in self._table.values()), default=math.inf)
            self._deadline_moved = anyio.Event()
            with anyio.move_on_after(self._next_check - anyio.current_time()):
                await self._deadline_moved.wait()
