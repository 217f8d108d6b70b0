"""`/sse` + `/messages/`: the legacy HTTP+SSE transport, one instance per SSE connection.

The instance is started (seed and config from the `GET /sse` query string) before the event stream opens, so a
failure is an HTTP error status with a JSON-RPC error body, like on `/mcp`. Then the SDK's `SseServerTransport`
carries the session; when the client drops its event stream, the session's streams close and the instance
ends, as it does when the instance ends first.
"""

import logging
import uuid

from mcp.server.sse import SseServerTransport
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import Receive, Scope, Send

from mcpsim.errors import MCPSimError
from mcpsim.pool import InstancePool
from mcpsim.server.edge import respond_error
from mcpsim.server.fronts.params import parse_config, query_values
from mcpsim.server.fronts.starts import start_for_request
from mcpsim.server.principals import principal_of
from mcpsim.server.proxy import serve_client
from mcpsim.wire import parse_seed

logger = logging.getLogger(__name__)


class SseFront:
    def __init__(self, pool: InstancePool) -> None:
        self.pool = pool
        self.transport = SseServerTransport("/messages/", max_request_body_size=pool.config.max_message_bytes)
        self.open = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI app for `GET /sse`."""
        try:
            query = query_values(scope.get("query_string", b""))
            seed = parse_seed(query.get("seed"))
            config = parse_config(query.get("config"))
            owner = principal_of(scope).name
            instance = await start_for_request(
                self.pool, receive, seed, config, session_id=f"sse-{uuid.uuid4().hex}", owner=owner
            )
        except MCPSimError as exc:
            await respond_error(exc, scope, receive, send)
            return
        if instance is None:  # the client left while its instance was starting
            return
        self.open += 1
        try:
            async with self.transport.connect_sse(scope, receive, send) as (read_stream, write_stream):
                await serve_client(instance, read_stream, write_stream, name=f"sse {instance.id}")
        except Exception:  # one session's failure: logged and counted, the others go on
            instance.log.exception("SSE session failed unexpectedly", extra={"event": "session.failed"})
            self.pool.count_internal_error("session")
        finally:
            self.open -= 1
            instance.stop()

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/sse", endpoint=self, methods=["GET"]),
            Mount("/messages/", app=self.transport.handle_post_message),
        ]
