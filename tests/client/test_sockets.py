"""The rollout client's pool checks idle connections without anyio's attribute lookups (`client/sockets.py`),
and still finds a connection the server closed (it is not reused: the next request gets a new one)."""

import anyio
import httpx2
import pytest
from anyio.abc import SocketAttribute, SocketStream

from mcpsim.client.env import shared_http_client
from mcpsim.client.sockets import SocketCachingStream

RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok"


def network_streams(client: httpx2.AsyncClient) -> list:
    pool = client._transport._inner._pool  # DrainingTransport around httpx's transport
    return [connection._connection._network_stream for connection in pool.connections if connection._connection]


@pytest.mark.parametrize("server_closes", [False, True])
async def test_idle_connections_are_checked_on_the_cached_socket_and_a_closed_one_is_replaced(server_closes):
    accepted = []

    async def handle(stream: SocketStream) -> None:
        accepted.append(stream)
        async with stream:
            while True:
                try:
                    request = await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    return
                if b"\r\n\r\n" in request:
                    await stream.send(RESPONSE)
                    if server_closes:
                        return  # closed while the client keeps it idle in its pool

    # port 0: the kernel's choice, free by construction (a fixed port collided with another listener in CI)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg, shared_http_client(4) as client:
        tg.start_soon(listener.serve, handle)
        streams = []
        for _ in range(3):
            response = await client.get(f"http://127.0.0.1:{port}/")
            assert response.status_code == 200 and response.text == "ok"
            streams += network_streams(client)
            await anyio.sleep(0.05)  # the server's close reaches the client's socket
        if not server_closes:  # (a closed connection leaves the pool when released)
            assert streams and all(isinstance(stream, SocketCachingStream) for stream in streams)
        assert len(accepted) == (3 if server_closes else 1)
        tg.cancel_scope.cancel()
