"""A node's own mcpsim (`python -m mcpsim.ray.node`): today's managed server, unchanged, on a node-local port.

The node's agent starts it and writes its spec (a pickled `NodeSpec`) on its stdin, then keeps stdin open: the
agent's end of that pipe closes when the agent's process ends in any way (SIGKILL, a node lost under it), and
EOF makes this server stop, which ends every instance (the pool closes; its watchdog covers a SIGKILL of this
process). It prints one JSON line, `{"url": ...}`, once it serves. No Ray here: the agent strips Ray's
variables (its token among them) from this process's environment, so instances never see them.
"""

import json
import logging
import pickle
import signal
import struct
import sys
from dataclasses import dataclass

import anyio

from mcpsim.pool import PoolConfig
from mcpsim.server import ServeConfig, running
from mcpsim.server.ops import configure_logging
from mcpsim.server.principals import Credentials

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class NodeSpec:
    """What a node's mcpsim serves: the front's pool config, where to bind, the token fronts must carry."""

    pool: PoolConfig
    host: str
    token: str
    json_response: bool = False
    orphan_timeout: float = 60.0
    log_level: str = "info"


def encode(spec: NodeSpec) -> bytes:
    """The bytes the agent writes on the node's stdin: length, then the pickled spec."""
    data = pickle.dumps(spec)
    return struct.pack(">I", len(data)) + data


def _read_spec() -> NodeSpec:
    stdin = sys.stdin.buffer
    (size,) = struct.unpack(">I", stdin.read(4))
    spec = pickle.loads(stdin.read(size))
    assert isinstance(spec, NodeSpec)
    return spec


async def main() -> None:
    spec = _read_spec()
    configure_logging("text", spec.log_level)
    config = ServeConfig(
        pool=spec.pool,
        host=spec.host,
        port=0,
        credentials=Credentials.single(spec.token),
        json_response=spec.json_response,
        orphan_timeout=spec.orphan_timeout,
    )
    async with running(config) as url, anyio.create_task_group() as tasks:
        print(json.dumps({"url": url}), flush=True)

        async def until_eof() -> None:
            await anyio.to_thread.run_sync(sys.stdin.buffer.read, abandon_on_cancel=True)
            logger.info("the agent is gone: stopping", extra={"event": "ray.node.orphaned"})
            tasks.cancel_scope.cancel()

        async def until_signal() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    tasks.cancel_scope.cancel()

        tasks.start_soon(until_eof)
        tasks.start_soon(until_signal)


if __name__ == "__main__":  # run the module's own copy, so the pickled spec's class is this `NodeSpec`
    from mcpsim.ray import node

    anyio.run(node.main)
