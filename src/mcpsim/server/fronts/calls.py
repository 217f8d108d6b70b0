"""The frames of a 2026-07-28 request an instance answers: a plain call, or a round of a call that can ask.

Both read a `Call`'s events (`exchange.py`): related notifications become frames as they come, the backend's
answer becomes the last frame through `finish` (the modern front's translation and stamping), and the call is
closed when the frames are (a round's call stays open while it is parked for the client's `inputResponses`).
"""

from collections.abc import AsyncIterator, Callable
from typing import Any

from mcp.types import JSONRPCError, JSONRPCNotification, JSONRPCResponse

from mcpsim.errors import HandleEnded
from mcpsim.pool import Instance
from mcpsim.server.fronts.exchange import Event, Reply, exchange
from mcpsim.server.fronts.rounds import Held, Rounds

Finish = Callable[[Reply], dict[str, Any]]


async def frames_of(events: AsyncIterator[Event], finish: Finish) -> AsyncIterator[dict[str, Any]]:
    """Notifications as they come, then the answer (server requests are not the client's: rounds.py's)."""
    async for event in events:
        if isinstance(event, JSONRPCNotification):
            yield event.model_dump(by_alias=True, exclude_none=True)
        elif isinstance(event, JSONRPCResponse | JSONRPCError):
            yield finish(event)
            return
    raise HandleEnded("the episode ended before answering", None, "ended")


async def call_frames(
    instance: Instance,
    method: str,
    forwarded: Any,
    request_id: Any,
    headers: dict[str, str],
    level: str | None,
    finish: Finish,
) -> AsyncIterator[dict[str, Any]]:
    async with exchange(instance, "stateless", method, forwarded, request_id, headers, level) as events:
        async for frame in frames_of(events, finish):
            yield frame


async def round_frames(
    rounds: Rounds, held: Held, params: Any, capabilities: dict[str, Any], request_id: Any, finish: Finish
) -> AsyncIterator[dict[str, Any]]:
    try:
        answers = (params or {}).get("inputResponses")
        async for frame in frames_of(rounds.outcome(held, answers, capabilities, request_id), finish):
            yield frame
    finally:
        if not held.parked:
            await held.call.close()
