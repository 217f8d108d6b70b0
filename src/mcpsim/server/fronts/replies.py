"""An `Outcome` (`stateless.py`) written as the answer to one HTTP POST of the 2026-07-28 front.

JSON if the answer comes first or the client takes no stream (its related notifications are then dropped), else
an SSE stream of the notifications and then the answer. The first frame is read before anything is sent, so an
error raised while the request is started (an ended handle, a refused call) still gets its own status from the
edge. The status of a JSON error answer is the spec's for its code (`edge.modern_status`).
"""

import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import JSONResponse, StreamingResponse
from starlette.types import Receive, Scope, Send

from mcpsim.errors import HandleEnded
from mcpsim.server.edge import modern_status
from mcpsim.server.fronts.stateless import Outcome, is_answer

SSE_HEADERS = {"cache-control": "no-cache, no-transform", "x-accel-buffering": "no"}


def sse_frame(message: dict[str, Any]) -> bytes:
    return f"event: message\ndata: {json.dumps(message, separators=(',', ':'))}\n\n".encode()


def status_of(frame: dict[str, Any]) -> int:
    error = frame.get("error")
    return modern_status(error.get("code", 0)) if isinstance(error, dict) else 200


async def respond(outcome: Outcome, streaming: bool, scope: Scope, receive: Receive, send: Send) -> None:
    async with outcome.opened() as frames:

        async def next_frame() -> dict[str, Any]:
            try:
                return await anext(frames)
            except StopAsyncIteration:
                raise HandleEnded("the episode ended before answering", None, "ended") from None

        first = await next_frame()
        while not is_answer(first) and not streaming:
            first = await next_frame()
        if is_answer(first):
            await JSONResponse(first, status_of(first))(scope, receive, send)
            return

        async def stream() -> AsyncIterator[bytes]:
            yield sse_frame(first)
            async for frame in frames:
                yield sse_frame(frame)

        await StreamingResponse(stream(), media_type="text/event-stream", headers=SSE_HEADERS)(scope, receive, send)
