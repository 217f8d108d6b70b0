"""One request to an instance and its one answer, as a stateless 2026-07-28 request needs it.

The instance's multiplexer serves any number of client channels; a `ReplyChannel` is one that lives for a
single request: it is not primary, so the backend's own requests and unrelated notifications never reach it
(a server request related to it is refused at once, as on a JSON-response `/envs` request), and it is
detached when the answer arrives. The multiplexer bounds the wait (`--request-timeout`) and answers with an
error if the backend exits meanwhile, so `ask` always returns.
"""

from typing import Any

import anyio
from mcp.shared.message import SessionMessage
from mcp.types import JSONRPCError, JSONRPCRequest, JSONRPCResponse, RequestId

from mcpsim.errors import HandleEnded
from mcpsim.pool import Instance


class ReplyChannel:
    accepts_server_requests = False

    def __init__(self, name: str) -> None:
        self.name = name
        self.reply: JSONRPCResponse | JSONRPCError | None = None
        self.done = anyio.Event()

    async def deliver(self, message: SessionMessage) -> None:
        msg = message.message
        if isinstance(msg, JSONRPCResponse | JSONRPCError) and self.reply is None:
            self.reply = msg
            self.done.set()


async def ask(
    instance: Instance, name: str, method: str, params: dict[str, Any] | None, request_id: RequestId
) -> JSONRPCResponse | JSONRPCError:
    """Send `method` to `instance` and return its answer (`HandleEnded` if the instance has no connection)."""
    mux = instance.mux
    if mux is None or instance.ended.is_set():
        raise HandleEnded(f"the episode {instance.id} has ended", instance.id, instance.failure or "ended")
    channel = ReplyChannel(f"{name} {instance.id}")
    fields: dict[str, Any] = {"params": params} if params is not None else {}
    try:
        await mux.from_client(
            channel, SessionMessage(JSONRPCRequest(jsonrpc="2.0", id=request_id, method=method, **fields))
        )
        await channel.done.wait()
    finally:
        mux.detach(channel)
    assert channel.reply is not None
    return channel.reply
