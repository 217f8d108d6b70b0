"""Starting an instance on behalf of an HTTP request that may be abandoned while it waits.

A start can take seconds (a plain spawn imports a whole SDK; a first start builds an environment). A client
that gives up meanwhile (a timeout, an aborted rollout) must not leave a ready instance behind with a session id
nobody received, counting against `--max-instances` until the idle timeout: the request's `http.disconnect`
cancels the start, and the pool ends the instance it was starting.
"""

from typing import Any

import anyio
from starlette.types import Receive

from mcpsim.errors import PoolError
from mcpsim.pool import Instance, InstancePool


async def start_for_request(
    pool: InstancePool,
    receive: Receive,
    seed: int | None,
    config: dict[str, Any],
    **options: Any,
) -> Instance | None:
    """`pool.start(...)` unless the client disconnects first (then None, and nothing is left running).

    Call it only once the request body has been read: the next `receive()` then waits for the disconnect.
    Raises the pool's `PoolError` as it is.
    """
    instance: Instance | None = None
    refusal: PoolError | None = None
    async with anyio.create_task_group() as tg:

        async def watch_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            tg.cancel_scope.cancel()

        tg.start_soon(watch_disconnect)
        try:
            instance = await pool.start(seed, config, **options)
        except PoolError as exc:
            refusal = exc
        tg.cancel_scope.cancel()
    if refusal is not None:
        raise refusal
    return instance
