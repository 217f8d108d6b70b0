"""The proxy between one client connection (any SDK server transport) and one instance.

Every message is forwarded as it is, except the handshake: the instance was initialized by the pool when it
started, so the client's `initialize` is answered with the server's own initialize result (capabilities,
server info, instructions, protocol version) and its `notifications/initialized` is not repeated. Whatever
the server can do, the client sees; nothing about tools, resources or prompts is known or hard-coded here.

Protocol versions: a session's instance is initialized with the version its client asked for, so the answer
is the server's own. A client that initializes on an instance set up for another handshake version (an
`/envs` handle, a warm instance) is answered with its own version when mcpsim knows it; the handshake-era
revisions differ by additions only, which clients ignore, so messages pass unchanged.

One client's message can only fail its own request: a message that mcpsim fails to forward (a bug) is
answered with an error naming it, logged with its traceback and counted, and the session goes on.
"""

from typing import Any

import anyio
from mcp.shared.message import SessionMessage
from mcp.types import PARSE_ERROR, JSONRPCNotification, JSONRPCRequest, JSONRPCResponse
from mcp_types import UNSUPPORTED_PROTOCOL_VERSION
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

from mcpsim.pool import Instance
from mcpsim.pool.eras import MODERN
from mcpsim.protocol.messages import IncomingMessages, OutgoingMessages, error_message
from mcpsim.protocol.mux import Multiplexer
from mcpsim.wire import INTERNAL_FAILURE


class ClientChannel:
    """A client connection as the instance's multiplexer sees it: a write stream of the front transport."""

    def __init__(self, write_stream: OutgoingMessages, name: str, accepts_server_requests: bool) -> None:
        self._write = write_stream
        self.name = name
        self.accepts_server_requests = accepts_server_requests

    async def deliver(self, message: SessionMessage) -> None:
        await self._write.send(message)


def initialize_answer(instance: Instance, requested: Any = None) -> dict[str, Any]:
    """The server's initialize result, as the client's own initialize (asking for `requested`) gets it."""
    answer = dict(instance.init_result)
    if isinstance(requested, str) and requested in HANDSHAKE_PROTOCOL_VERSIONS:
        answer["protocolVersion"] = requested
    return answer


async def bridge(
    instance: Instance,
    read_stream: IncomingMessages,
    write_stream: OutgoingMessages,
    *,
    name: str,
    primary: bool,
    back_channel: bool = True,
    channel: ClientChannel | None = None,
) -> None:
    """Forward client messages to `instance` until the client side closes; replies flow back via the channel.

    A `primary` channel receives the server's own requests and unrelated notifications (a session); a
    non-primary one (a single HTTP request on an `/envs` handle) the answers to what it sent, and, while its
    request is the latest in flight and `back_channel` holds (an SSE answer), the server's requests and
    notifications made meanwhile (they travel on that request's stream).
    `back_channel=False` is a transport that cannot carry server requests (JSON-response mode drops them), so
    the server's requests are refused at once, as the SDK's own server does, instead of hanging.
    A caller may bring its own `channel` on `write_stream` (the `/mcp` session's, see `fronts/fastpost.py`).
    """
    mux = instance.mux
    assert mux is not None
    channel = channel or ClientChannel(write_stream, name, accepts_server_requests=back_channel)
    mux.attach(channel, primary=primary)
    try:
        async for item in read_stream:
            if isinstance(item, Exception):  # a message that did not parse: say so, and go on with the others
                instance.log.info(
                    "%s: unreadable message from the client: %s", name, item, extra={"event": "client.transport_error"}
                )
                await channel.deliver(error_message(None, PARSE_ERROR, f"Parse error: {str(item)[:300]}"))
                continue
            msg = item.message
            if isinstance(msg, JSONRPCRequest) and msg.method == "initialize" and instance.era == MODERN:
                # no reverse translation: this instance's connection speaks only 2026-07-28 (pool/eras.py)
                reason = (
                    f"instance {instance.id} serves the 2026-07-28 protocol; the initialize handshake is not accepted"
                )
                data = {"supported": [MODERN], "requested": (msg.params or {}).get("protocolVersion")}
                await channel.deliver(error_message(msg.id, UNSUPPORTED_PROTOCOL_VERSION, reason, data))
            elif isinstance(msg, JSONRPCRequest) and msg.method == "initialize":
                requested = (msg.params or {}).get("protocolVersion")
                answer = JSONRPCResponse(jsonrpc="2.0", id=msg.id, result=initialize_answer(instance, requested))
                await channel.deliver(SessionMessage(answer))
            elif isinstance(msg, JSONRPCNotification) and msg.method == "notifications/initialized":
                continue
            else:
                await forward(instance, mux, channel, item)
    except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream):
        pass
    finally:
        mux.detach(channel)


async def forward(instance: Instance, mux: Multiplexer, channel: ClientChannel, item: SessionMessage) -> None:
    """One client message to the instance; a failure to forward it fails that request only (see above)."""
    if instance.gate is not None:  # a branch is copying the instance: its state must not move meanwhile
        await instance.gate.wait()
    try:
        await mux.from_client(channel, item)
    except Exception:
        msg = item.message
        kind = msg.method if isinstance(msg, JSONRPCRequest | JSONRPCNotification) else "response"
        instance.log.exception("could not forward a client %s", kind, extra={"event": "client.forward_failed"})
        instance.count_internal_error("request")
        if isinstance(msg, JSONRPCRequest):
            reason = f"mcpsim could not forward this {msg.method} request (an internal error, logged)"
            await channel.deliver(error_message(msg.id, INTERNAL_FAILURE, reason))


async def serve_client(
    instance: Instance,
    read_stream: IncomingMessages,
    write_stream: OutgoingMessages,
    *,
    name: str,
    back_channel: bool = True,
    channel: ClientChannel | None = None,
) -> None:
    """A client session's life on one instance: bridge until either side ends, then end the instance."""
    try:
        async with anyio.create_task_group() as tg:

            async def end_with_instance() -> None:
                await instance.ended.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(end_with_instance)
            await bridge(
                instance, read_stream, write_stream, name=name, primary=True, back_channel=back_channel, channel=channel
            )
            tg.cancel_scope.cancel()
    finally:
        instance.stop()
