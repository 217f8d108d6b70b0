"""`Registry`: which node holds a session or a handle, kept in Ray's GCS key-value store (namespace `mcpsim`).

The GCS lives on the head node and outlives every front, so any front can serve any session id or handle,
whichever front started it. A key is written before the answer that names it reaches the client (so a client
that takes its handle to another front at once finds it), and never changes: an instance lives on one node.
Each front keeps what it looked up in a bounded cache (`CACHE_SIZE`), so a session's later requests cost no
GCS round trip. Keys are ~100 bytes (`s:<session id>` or `h:<handle>` -> node id); a front deletes the key of
an instance ended through it, and the node's agent drops its own keys whose instance is gone (`prune`, every
minute), so the store holds about one key per live instance (plus those of dead agents, which keep naming
their node).

Calls into Ray block (a gRPC round trip to the GCS, ~1 ms), so they run in worker threads.
"""

from collections import OrderedDict

import anyio

from mcpsim.ray.config import NAMESPACE

CACHE_SIZE = 65536
"""Lookups a front remembers (least recently used out first)."""


def _key(kind: str, key: str) -> bytes:
    return f"{kind}:{key}".encode()


class Registry:
    """`put`/`get`/`delete` of `s` (session id) and `h` (handle, the instance id) keys."""

    def __init__(self) -> None:
        self.cache: OrderedDict[bytes, str] = OrderedDict()

    async def put(self, kind: str, key: str, node_id: str) -> None:
        from ray.experimental import internal_kv

        name = _key(kind, key)
        await anyio.to_thread.run_sync(lambda: internal_kv._internal_kv_put(name, node_id, namespace=NAMESPACE))
        self._remember(name, node_id)

    async def get(self, kind: str, key: str) -> str | None:
        from ray.experimental import internal_kv

        name = _key(kind, key)
        if name in self.cache:
            self.cache.move_to_end(name)
            return self.cache[name]
        value = await anyio.to_thread.run_sync(lambda: internal_kv._internal_kv_get(name, namespace=NAMESPACE))
        if value is None:
            return None
        self._remember(name, value.decode())
        return value.decode()

    async def delete(self, kind: str, key: str) -> None:
        from ray.experimental import internal_kv

        name = _key(kind, key)
        self.cache.pop(name, None)
        await anyio.to_thread.run_sync(lambda: internal_kv._internal_kv_del(name, namespace=NAMESPACE))

    def _remember(self, name: bytes, node_id: str) -> None:
        self.cache[name] = node_id
        self.cache.move_to_end(name)
        while len(self.cache) > CACHE_SIZE:
            self.cache.popitem(last=False)


def prune(node_id: str, live: set[str]) -> int:
    """Delete the keys naming `node_id` (an agent key, `node id.agent pid`) whose session or handle is not in
    `live` (blocking; the agent runs it in a thread). Keys of a dead agent stay, so they keep naming the node."""
    from ray.experimental import internal_kv

    dropped = 0
    for name in internal_kv._internal_kv_list(b"", namespace=NAMESPACE):
        kind, _, key = name.decode().partition(":")
        if kind not in ("s", "h") or key in live:
            continue
        if internal_kv._internal_kv_get(name, namespace=NAMESPACE) == node_id.encode():
            internal_kv._internal_kv_del(name, namespace=NAMESPACE)
            dropped += 1
    return dropped
