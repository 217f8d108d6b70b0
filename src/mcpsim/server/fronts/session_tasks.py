"""The task group the sessions of a front run in, open exactly while the app's lifespan runs.

`/mcp` sessions and the sessions opened on handles both need the same thing: a task per session that the
server owns (not the request that opened it, which ends long before the session does), and a clear refusal
for a session opened once the server has begun stopping, rather than a task started in a group being torn
down. Leaving `running()` cancels every session task, so every session's instance ends with the server.
"""

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
from anyio.abc import TaskGroup

from mcpsim.errors import ShuttingDown


class SessionTasks:
    def __init__(self) -> None:
        self._group: TaskGroup | None = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with anyio.create_task_group() as group:
            self._group = group
            try:
                yield
            finally:
                self._group = None
                group.cancel_scope.cancel()

    async def start(self, run: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Start `run(*args, task_status=...)` and wait until it reports started; ShuttingDown once stopping."""
        if self._group is None:
            raise ShuttingDown("the server is shutting down")
        await self._group.start(run, *args)
