"""The multiplexer on its own: plain async fakes for the server connection and the client channels.

Every routing rule of `mcpsim.protocol.mux` is checked here directly (before, only through `mcpsim serve`):
request ids rewritten per channel and restored, progress routed by token, server requests to the primary
channel, cancellation (including ids that are no JSON-RPC id), closing with requests pending, deadlines
(expiry, progress restarting the clock) and results that are not CallToolResults.
"""

from typing import Any

import anyio
import pytest
from mcp.shared.message import SessionMessage
from mcp.types import INTERNAL_ERROR, JSONRPCError, JSONRPCNotification, JSONRPCRequest, JSONRPCResponse

from mcpsim.errors import BackendError
from mcpsim.protocol.mux import Multiplexer
from mcpsim.wire import BACKEND_TIMEOUT, BACKEND_UNAVAILABLE, NO_BACK_CHANNEL


class FakeChannel:
    def __init__(self, name: str, accepts_server_requests: bool = True) -> None:
        self.name = name
        self.accepts_server_requests = accepts_server_requests
        self.received: list[SessionMessage] = []
        self.arrived = anyio.Event()

    async def deliver(self, message: SessionMessage) -> None:
        self.received.append(message)
        self.arrived.set()

    async def next(self) -> Any:
        with anyio.fail_after(5):
            while not self.received:
                self.arrived = anyio.Event()
                await self.arrived.wait()
        return self.received.pop(0).message


class FakeServer:
    """The server side of the connection: what the multiplexer sends, and answers to send back."""

    def __init__(self) -> None:
        self.sent: list[Any] = []
        self.broken = False

    async def send(self, message: SessionMessage) -> None:
        if self.broken:
            raise anyio.BrokenResourceError("the server's stdin is closed")
        self.sent.append(message.message)


def request(request_id: Any, method: str = "tools/call", **params: Any) -> SessionMessage:
    return SessionMessage(JSONRPCRequest(jsonrpc="2.0", id=request_id, method=method, params=params or None))


def notification(method: str, **params: Any) -> SessionMessage:
    return SessionMessage(JSONRPCNotification(jsonrpc="2.0", method=method, params=params))


def answer(request_id: Any, **result: Any) -> SessionMessage:
    return SessionMessage(JSONRPCResponse(jsonrpc="2.0", id=request_id, result=result))


OK = {"content": [{"type": "text", "text": "ok"}]}


async def test_ids_are_rewritten_per_channel_and_restored_on_the_answer():
    server = FakeServer()
    mux = Multiplexer(server.send, "t")
    first, second = FakeChannel("a"), FakeChannel("b")
    await mux.from_client(first, request(1, name="move"))
    await mux.from_client(second, request(1, name="move"))
    ids = [message.id for message in server.sent]
    assert len(set(ids)) == 2
    assert mux.in_flight == 2
    await mux.from_server(answer(ids[1], **OK))
    reply = await second.next()
    assert isinstance(reply, JSONRPCResponse) and reply.id == 1 and not first.received
    await mux.from_server(answer(ids[0], **OK))
    assert (await first.next()).id == 1
    await mux.from_server(answer(ids[0], **OK))  # answered twice: the second is no one's, dropped
    assert not first.received and not second.received and mux.in_flight == 0


async def test_progress_goes_to_the_requesting_channel_related_to_its_request():
    server = FakeServer()
    mux = Multiplexer(server.send, "t")
    session, handle = FakeChannel("session"), FakeChannel("handle", accepts_server_requests=False)
    mux.attach(session, primary=True)
    await mux.from_client(handle, request("h-7", name="slow", _meta={"progressToken": "tok"}))
    await mux.from_server(notification("notifications/progress", progressToken="tok", progress=1))
    delivered = handle.received.pop(0)
    assert delivered.message.method == "notifications/progress"
    assert delivered.metadata.related_request_id == "h-7"
    await mux.from_server(notification("notifications/progress", progressToken="unknown", progress=1))
    assert session.received.pop(0).message.method == "notifications/progress"  # no such token: the primary
    await mux.from_server(notification("notifications/message", level="info", data="x"))
    assert session.received.pop(0).message.method == "notifications/message" and not handle.received


async def test_server_requests_go_to_the_primary_or_are_refused_at_once():
    server = FakeServer()
    mux = Multiplexer(server.send, "t")
    await mux.from_server(request(50, "sampling/createMessage"))
    refused = server.sent.pop()
    assert isinstance(refused, JSONRPCError) and refused.id == 50 and refused.error.code == NO_BACK_CHANNEL
    await mux.from_server(request(51, "ping"))
    assert server.sent.pop() == JSONRPCResponse(jsonrpc="2.0", id=51, result={})

    session = FakeChannel("session")
    mux.attach(session, primary=True)
    await mux.from_server(request(52, "sampling/createMessage"))
    forwarded = await session.next()
    assert isinstance(forwarded, JSONRPCRequest) and forwarded.id == 52  # server ids are kept
    await mux.from_client(session, answer(52, role="assistant"))
    assert server.sent.pop() == JSONRPCResponse(jsonrpc="2.0", id=52, result={"role": "assistant"})

    mux.detach(session)
    await mux.from_server(request(53, "elicitation/create"))
    assert server.sent.pop().error.code == NO_BACK_CHANNEL


async def test_a_client_cancels_by_its_own_id_and_ids_that_name_nothing_are_dropped():
    server = FakeServer()
    mux = Multiplexer(server.send, "t")
    channel = FakeChannel("a")
    await mux.from_client(channel, request(9, name="slow"))
    server_id = server.sent[-1].id
    await mux.from_client(channel, notification("notifications/cancelled", requestId=9, reason="bored"))
    cancel = server.sent.pop()
    assert cancel.method == "notifications/cancelled" and cancel.params == {"requestId": server_id, "reason": "bored"}
    sent = len(server.sent)
    for bad in ({"id": 9}, [9], True, None, 12345):  # not a JSON-RPC id, or one with nothing in flight
        await mux.from_client(channel, notification("notifications/cancelled", requestId=bad))
    assert len(server.sent) == sent
    other = FakeChannel("b")
    await mux.from_client(other, notification("notifications/cancelled", requestId=9))
    assert len(server.sent) == sent  # another channel's id 9 is not this one's


async def test_close_answers_pending_requests_and_every_later_one_with_the_reason():
    server = FakeServer()
    mux = Multiplexer(server.send, "t")
    channel = FakeChannel("a")
    await mux.from_client(channel, request(1, name="move"))
    await mux.from_client(channel, request(2, name="move"))
    await mux.close("the server process exited with code 3")
    answers = [await channel.next(), await channel.next()]
    assert sorted(a.id for a in answers) == [1, 2]
    assert all(a.error.code == BACKEND_UNAVAILABLE and "code 3" in a.error.message for a in answers)
    sent = len(server.sent)
    await mux.from_client(channel, request(3, name="move"))
    late = await channel.next()
    assert late.id == 3 and late.error.code == BACKEND_UNAVAILABLE and len(server.sent) == sent


async def test_a_broken_connection_closes_with_the_owners_reason():
    server = FakeServer()
    reasons: list[str] = []

    async def on_broken(detail: str) -> None:
        reasons.append(detail)
        await mux.close("the server was killed by signal 9")

    mux = Multiplexer(server.send, "t", on_broken=on_broken)
    channel = FakeChannel("a")
    server.broken = True
    await mux.from_client(channel, request(1, name="move"))
    reply = await channel.next()
    assert reply.error.code == BACKEND_UNAVAILABLE and "signal 9" in reply.error.message
    assert "stdin is closed" in reasons[0]


async def test_a_request_past_its_deadline_is_answered_and_the_owner_told():
    server = FakeServer()
    timeouts: list[str] = []
    mux = Multiplexer(server.send, "instance x", request_timeout=0.05, on_timeout=timeouts.append)
    channel = FakeChannel("a")
    async with anyio.create_task_group() as tg:
        tg.start_soon(mux.run_deadlines)
        await mux.from_client(channel, request(4, name="hang"))
        reply = await channel.next()
        tg.cancel_scope.cancel()
    assert reply.id == 4 and reply.error.code == BACKEND_TIMEOUT
    assert "did not answer 'tools/call' (hang) within 0.05 s" in reply.error.message
    assert timeouts == [reply.error.message] and mux.in_flight == 0


async def test_progress_restarts_the_clock_and_an_answer_ends_it():
    server = FakeServer()
    timeouts: list[str] = []
    mux = Multiplexer(server.send, "t", request_timeout=0.5, on_timeout=timeouts.append)
    channel = FakeChannel("a")
    async with anyio.create_task_group() as tg:
        tg.start_soon(mux.run_deadlines)
        await mux.from_client(channel, request(5, name="slow", _meta={"progressToken": 5}))
        server_id = server.sent[-1].id
        for step in range(15):  # 1.5 s of work, three times the timeout, reporting progress every 0.1 s
            await anyio.sleep(0.1)
            await mux.from_server(notification("notifications/progress", progressToken=5, progress=step))
        assert not timeouts and mux.in_flight == 1
        await mux.from_server(answer(server_id, **OK))
        assert next(m.message for m in channel.received if isinstance(m.message, JSONRPCResponse)).id == 5
        await mux.from_client(channel, request(6, name="hang"))  # a new request, no progress: it expires
        with anyio.fail_after(5):
            while not timeouts:
                await anyio.sleep(0.05)
        tg.cancel_scope.cancel()
    assert len(timeouts) == 1 and "(hang)" in timeouts[0]


async def test_a_result_that_is_no_call_tool_result_becomes_an_error_naming_it():
    server = FakeServer()
    mux = Multiplexer(server.send, "t")
    channel = FakeChannel("a")
    for result, needle in (
        ({"content": "text"}, "'content' must be a list"),
        ({"content": [{"text": "no type"}]}, "content[0] must be an object with a string 'type'"),
        ({"content": [], "isError": "yes"}, "'isError' must be a boolean"),
    ):
        await mux.from_client(channel, request(1, name="move"))
        await mux.from_server(answer(server.sent[-1].id, **result))
        reply = await channel.next()
        assert isinstance(reply, JSONRPCError) and reply.error.code == INTERNAL_ERROR and needle in reply.error.message


async def test_the_proxys_own_requests_and_a_server_that_refuses_them():
    server = FakeServer()
    mux = Multiplexer(server.send, "t")
    async with anyio.create_task_group() as tg:
        results: list[Any] = []

        async def ask() -> None:
            try:
                results.append(await mux.request("initialize", {"protocolVersion": "2025-11-25"}))
            except BackendError as exc:
                results.append(exc)

        tg.start_soon(ask)
        with anyio.fail_after(5):
            while not server.sent:
                await anyio.sleep(0.01)
        await mux.from_server(answer(server.sent[-1].id, protocolVersion="2025-11-25"))
        await anyio.sleep(0)
        tg.start_soon(ask)
        with anyio.fail_after(5):
            while len(server.sent) < 2:
                await anyio.sleep(0.01)
        await mux.from_server(
            SessionMessage(JSONRPCError(jsonrpc="2.0", id=server.sent[-1].id, error={"code": -32602, "message": "no"}))
        )
    assert results[0] == {"protocolVersion": "2025-11-25"}
    assert isinstance(results[1], BackendError) and results[1].code == -32602 and str(results[1]) == "no"
    assert mux.in_flight == 0


@pytest.mark.parametrize("primary", [True, False])
async def test_a_detached_channel_gets_nothing_more(primary):
    server = FakeServer()
    mux = Multiplexer(server.send, "t")
    channel = FakeChannel("a")
    mux.attach(channel, primary=primary)
    await mux.from_client(channel, request(1, name="move"))
    mux.detach(channel)
    assert mux.primary is None and mux.in_flight == 0
    await mux.from_server(answer(server.sent[-1].id, **OK))
    await mux.from_server(notification("notifications/message", level="info", data="x"))
    assert not channel.received
