"""Server -> clients for one instance: each message its server sends goes to the multiplexer, until the server's
side of the connection closes.

What the connection could not read fails only what it concerns: a line over `--max-message-bytes` (already
dropped as it streamed in, so memory stays bounded) fails the request it answered, named by the id seen in its
head; anything else unreadable is logged and skipped. The connection's end is handed to `on_lost` (the instance
then names why: the exit code, a sandbox limit, a hang), which answers every waiting client.
"""

from collections.abc import Awaitable, Callable

import anyio

from mcpsim.errors import MessageTooLarge
from mcpsim.pool.connection import ServerConnection
from mcpsim.pool.spec import ContextLog
from mcpsim.protocol.mux import Multiplexer
from mcpsim.wire import MESSAGE_TOO_LARGE


async def pump(
    connection: ServerConnection,
    mux: Multiplexer,
    log: ContextLog,
    instance_id: str,
    on_lost: Callable[[str | None], Awaitable[None]],
) -> None:
    """Read the server until its side closes, then `on_lost(detail or None)`."""
    try:
        while True:
            message = await connection.receive()
            if isinstance(message, MessageTooLarge):
                await _oversized(mux, message, log, instance_id)
                continue
            if isinstance(message, Exception):
                log.warning("unparseable message from the server: %s", message, extra={"event": "instance.bad_message"})
                continue
            await mux.from_server(message)
    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
        await on_lost(str(exc) if isinstance(exc, anyio.BrokenResourceError) and str(exc) else None)


async def _oversized(mux: Multiplexer, message: MessageTooLarge, log: ContextLog, instance_id: str) -> None:
    reason = (
        f"instance {instance_id}: the server's message was larger than --max-message-bytes ({message.limit} bytes) "
        "and was dropped"
    )
    answered = await mux.fail_request(message.request_id, MESSAGE_TOO_LARGE, reason)
    log.warning(
        "%s%s",
        reason,
        "" if answered else " (no request in flight under its id)",
        extra={"event": "instance.oversized"},
    )
