"""A rollout reuses its HTTP connections: SSE answers to POSTs are drained, not dropped (`client/keepalive.py`).

The SDK client closes each request's SSE response as soon as the answer arrived; before `DrainingTransport`
every request opened a new TCP connection to the server (~1.1-1.6 per step). Counted here by the connections the
connection pool creates, against a real `mcpsim serve` whose `/mcp` answers with SSE (its default).
"""

import contextlib
import re

import anyio
import httpcore2._async.connection_pool as connection_pool
from anyio.abc import SocketAttribute, SocketStream

import mcpsim
from mcpsim.client.env import shared_http_client
from mcpsim.wire import KEEPALIVE_EXPIRY_S


async def test_a_rollout_opens_few_connections_for_many_requests(frozen_lake_server, monkeypatch):
    created = []
    original = connection_pool.AsyncConnectionPool.create_connection

    def counting(self, origin):
        created.append(origin)
        return original(self, origin)

    monkeypatch.setattr(connection_pool.AsyncConnectionPool, "create_connection", counting)
    envs = mcpsim.make(frozen_lake_server.mcp, seeds=range(4))
    trajectories = await mcpsim.rollout(envs, mcpsim.RandomPolicy(3), steps=30, max_concurrency=2, progress=False)
    assert not [t.error for t in trajectories if t.error]
    steps = sum(len(t.steps) for t in trajectories)
    # per episode: initialize, initialized, tools/list, the initial resource, every step, DELETE - all POSTs but
    # the DELETE and the GET stream; with drained answers they share the pool's few connections
    requests = steps + 5 * len(envs)
    assert steps >= 8
    assert len(created) <= len(envs) * 2 + 4, f"{len(created)} connections for {requests} requests"


async def test_idle_connections_are_closed_by_the_client_never_by_the_front(frozen_lake_server):
    """The front keeps an idle connection past uvicorn's usual 5 s; the rollout client drops it before then.
    When the server closed first, a request sent on the closing connection was lost (`ReadError('')`)."""
    host, port = "127.0.0.1", int(frozen_lake_server.url.rsplit(":", 1)[1])
    request = f"GET /health HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    stream = await anyio.connect_tcp(host, port)

    async def health() -> bytes:
        await stream.send(request)
        received = b""
        with anyio.fail_after(10):  # a whole response: its head, then content-length bytes of body
            while b"\r\n\r\n" not in received:
                received += await stream.receive()
            head, body = received.split(b"\r\n\r\n", 1)
            length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
            while len(body) < length:
                body += await stream.receive()
        return head

    async with stream:
        assert (await health()).startswith(b"HTTP/1.1 200")
        await anyio.sleep(KEEPALIVE_EXPIRY_S + 2)  # past the 5 s after which uvicorn would have closed it
        assert (await health()).startswith(b"HTTP/1.1 200")  # the same connection, still open
    accepted: list[SocketStream] = []

    async def handle(client: SocketStream) -> None:
        accepted.append(client)
        async with client:
            with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
                while True:
                    if b"\r\n\r\n" in await client.receive():
                        await client.send(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")

    listener = await anyio.create_tcp_listener(local_host=host, local_port=0)
    url = f"http://{host}:{listener.extra(SocketAttribute.local_port)}/"
    async with listener, anyio.create_task_group() as tg, shared_http_client(4) as client:
        tg.start_soon(listener.serve, handle)
        await client.get(url)
        await client.get(url)  # at once: the same connection
        assert len(accepted) == 1
        await anyio.sleep(KEEPALIVE_EXPIRY_S + 0.5)  # still below the 5 s a server such as uvicorn waits
        await client.get(url)
        assert len(accepted) == 2  # the client had let the idle one go
        tg.cancel_scope.cancel()
