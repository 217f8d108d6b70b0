"""The proxy between one client connection (any SDK server transport) and one instance.

Every message is forwarded as it is, except the handshake: the instance was initialized by the pool when it
started, so the client's `initialize` is answered with the server's own initialize result (capabilities,
server info, instructions, protocol version) and its `notifications/initialized` is not repeated. Whatever
the server can do, the client sees; nothing about tools, resources or prompts is known or hard-coded here.
"""

from typing import Any

import anyio
from mcp.shared.message import SessionMessage
from mcp.types import PARSE_ERROR, JSONRPCNotification, JSONRPCRequest, JSONRPCResponse

from mcpsim.pool.instance import Instance
from mcpsim.protocol.errors import error_message


class ClientChannel:
    """A client connection as the instance's multiplexer sees it: a write stream of the front transport."""

    def __init__(self, write_stream: Any, name: str, accepts_server_requests: bool) -> None:
        self._write = write_stream
        self.name = name
        self.accepts_server_requests = accepts_server_requests

    async def deliver(self, message: SessionMessage) -> None:
        await self._write.send(message)


def initialize_answer(instance: Instance) -> dict[str, Any]:
    """The server's initialize result, as the client's own initialize gets it."""
    return dict(instance.init_result)


async def bridge(
    instance: Instance,
    read_stream: Any,
    write_stream: Any,
    *,
    name: str,
    primary: bool,
    back_channel: bool = True,
) -> None:
    """Forward client messages to `instance` until the client side closes; replies flow back via the channel.

    A `primary` channel receives the server's own requests and unrelated notifications (a session); a
    non-primary one (a single HTTP request on an `/envs` handle) only the answers to what it sent.
    `back_channel=False` is a session whose transport cannot carry server requests (JSON-response mode drops
    them), so the server's requests are refused at once, as the SDK's own server does, instead of hanging.
    """
    mux = instance.mux
    assert mux is not None
    channel = ClientChannel(write_stream, name, accepts_server_requests=primary and back_channel)
    if primary:
        mux.primary = channel
    try:
        async for item in read_stream:
            if isinstance(item, Exception):  # a message that did not parse: say so, and go on with the others
                instance.log.info(
                    "%s: unreadable message from the client: %s", name, item, extra={"event": "client.transport_error"}
                )
                await channel.deliver(error_message(None, PARSE_ERROR, f"Parse error: {str(item)[:300]}"))
                continue
            msg = item.message
            if isinstance(msg, JSONRPCRequest) and msg.method == "initialize":
                answer = JSONRPCResponse(jsonrpc="2.0", id=msg.id, result=initialize_answer(instance))
                await channel.deliver(SessionMessage(answer))
            elif isinstance(msg, JSONRPCNotification) and msg.method == "notifications/initialized":
                continue
            else:
                await mux.from_client(channel, item)
    except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream):
        pass
    finally:
        mux.detach(channel)


async def serve_client(
    instance: Instance, read_stream: Any, write_stream: Any, *, name: str, back_channel: bool = True
) -> None:
    """A client session's life on one instance: bridge until either side ends, then end the instance."""
    try:
        async with anyio.create_task_group() as tg:

            async def end_with_instance() -> None:
                await instance.ended.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(end_with_instance)
            await bridge(instance, read_stream, write_stream, name=name, primary=True, back_channel=back_channel)
            tg.cancel_scope.cancel()
    finally:
        instance.stop()
