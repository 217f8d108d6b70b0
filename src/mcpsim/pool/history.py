"""What an instance did that changed its state: its answered `tools/call` requests, kept for branching by replay.

Reads and lists (`resources/read`, `tools/list`, ...) do not change an episode and are not kept. Params are kept
by reference (no copy on the hot path) and only the last result (its reference too), which is what a replay is
checked against (`branching.py`).
"""

from typing import Any

from mcp.types import JSONRPCError, JSONRPCResponse

MAX_RECORDED_CALLS = 10_000
"""`tools/call` requests kept per instance for replay; an instance past it can still be forked, not replayed."""


class CallHistory:
    """An instance's answered `tools/call` requests (params by reference) and its last outcome."""

    def __init__(self, calls: list[Any] | None = None, steps: int = 0, last: Any = None) -> None:
        self.calls: list[Any] = calls or []
        self.steps = steps
        """Calls answered so far (also past the recording limit): the step a branch is made at."""
        self.last = last

    def record(self, params: Any, reply: JSONRPCResponse | JSONRPCError) -> None:
        self.steps += 1
        if len(self.calls) < MAX_RECORDED_CALLS:
            self.calls.append(params)
        self.last = reply.result if isinstance(reply, JSONRPCResponse) else error_outcome(reply.error.message)

    @property
    def complete(self) -> bool:
        return len(self.calls) == self.steps

    def copy(self) -> "CallHistory":
        return CallHistory(list(self.calls), self.steps, self.last)


def error_outcome(message: str) -> dict[str, Any]:
    return {"error": message}
