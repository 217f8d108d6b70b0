"""A 2026-07-28 stdio client on a handshake-era instance: each line through the modern core, no handle needed.

`serve --stdio` opens its instance in the era of the client's first message (`stdio.py`). When the client
speaks 2026-07-28 and the server only the handshake era, the instance's connection was initialized by the pool
and every request of the client is served by `ModernFront.answer` pinned to that one episode: translation both
ways, `server/discover` answered, the server's requests as `input_required` rounds, `subscriptions/listen`
from its notifications. Each request is its own task, so a long call or an open listen never holds the next
line back; its frames go to stdout as they come (over stdio every stream shares the one channel: a listen's
events carry its `subscriptionId`, the listen's request id). `notifications/cancelled` naming a request (or a
listen, by its subscription id) ends that task; the client's other notifications and answers mean nothing to a
stateless server. The loop ends when stdin does or the instance ends.

At most `max_in_flight` requests are served at once (`--max-in-flight`): a client that sends more before the
earlier ones are answered gets each extra one refused at once (-32012, naming the limit) instead of a task and
buffers per line without bound; the requests in flight are undisturbed. A request whose id is still in flight is
refused too (-32600): ids must be unique among a client's open requests, and the limit counts ids.
"""

import logging
from typing import Any

import anyio
from mcp.shared.message import SessionMessage
from mcp.types import PARSE_ERROR, JSONRPCNotification, JSONRPCRequest, jsonrpc_message_adapter

from mcpsim.errors import BadRequest, MCPSimError, TooManyInFlight
from mcpsim.pool import Instance
from mcpsim.protocol.messages import IncomingMessages, OutgoingMessages, error_message, request_id_of
from mcpsim.server.edge import rpc_code
from mcpsim.server.fronts.modern import ModernFront
from mcpsim.server.fronts.stateless import Inbound
from mcpsim.server.principals import LOCAL, SCOPE_KEY
from mcpsim.wire import DEFAULT_MAX_IN_FLIGHT

logger = logging.getLogger(__name__)
CONTEXT = {SCOPE_KEY: LOCAL}
"""What a stdio request carries besides its body: the one local client, and no headers (so no header checks)."""


async def serve_translated(
    front: ModernFront,
    instance: Instance,
    incoming: IncomingMessages,
    outgoing: OutgoingMessages,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
) -> None:
    tasks: dict[Any, anyio.CancelScope] = {}

    async def one(message: dict[str, Any], scope: anyio.CancelScope) -> None:
        request_id = message["id"]
        with scope:
            try:
                inbound = Inbound(message, CONTEXT, streaming=True, instance=instance)
                async with (await front.answer(inbound)).opened() as frames:
                    async for frame in frames:
                        await outgoing.send(
                            SessionMessage(jsonrpc_message_adapter.validate_python(frame, by_name=False))
                        )
            except MCPSimError as exc:
                data = getattr(exc, "data", None)
                await outgoing.send(error_message(request_id, rpc_code(exc), str(exc), data))
            finally:
                if tasks.get(request_id) is scope:
                    del tasks[request_id]

    async with anyio.create_task_group() as tg:

        async def end_with_instance() -> None:
            await instance.ended.wait()
            tg.cancel_scope.cancel()

        tg.start_soon(end_with_instance)
        async for item in incoming:
            if isinstance(item, Exception):  # as the handshake path does (`proxy.bridge`): say so, go on
                logger.warning("unreadable client line: %s", item, extra={"event": "stdio.unreadable"})
                await outgoing.send(error_message(None, PARSE_ERROR, f"Parse error: {str(item)[:300]}"))
                continue
            msg = item.message
            if isinstance(msg, JSONRPCRequest):
                front.requests += 1
                refused: MCPSimError | None = None
                if msg.id in tasks:  # (else one id sent over and over would pass the limit unseen)
                    refused = BadRequest(f"request id {msg.id!r} is already in flight: ids must be unique")
                elif len(tasks) >= max_in_flight:
                    refused = TooManyInFlight(
                        f"{len(tasks)} requests of this client are in flight, the most --max-in-flight allows "
                        f"({max_in_flight}): retry once some are answered"
                    )
                if refused is not None:
                    await outgoing.send(error_message(msg.id, rpc_code(refused), str(refused)))
                    continue
                tasks[msg.id] = anyio.CancelScope()  # counted from now, not from when the task first runs
                tg.start_soon(one, msg.model_dump(by_alias=True, exclude_none=True), tasks[msg.id])
            elif isinstance(msg, JSONRPCNotification) and msg.method == "notifications/cancelled":
                target = request_id_of((msg.params or {}).get("requestId"))
                if target in tasks:
                    tasks[target].cancel()
        tg.cancel_scope.cancel()
