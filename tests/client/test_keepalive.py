"""A rollout reuses its HTTP connections: SSE answers to POSTs are drained, not dropped (`client/keepalive.py`).

The SDK client closes each request's SSE response as soon as the answer arrived; before `DrainingTransport`
every request opened a new TCP connection to the server (~1.1-1.6 per step). Counted here by the connections the
connection pool creates, against a real `mcpsim serve` whose `/mcp` answers with SSE (its default).
"""

import httpcore2._async.connection_pool as connection_pool

import mcpsim


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
