"""Warm instances: announced seeds start ahead and are claimed by their sessions; nothing unclaimed leaks."""

import time

import anyio
import httpx
import psutil
from mcp import Client

from mcp_helpers import initial_map, lake, move


def instances(serve) -> list[dict]:
    return serve.get("/api/instances").json()


async def wait_for(predicate, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await anyio.sleep(0.05)


async def test_announced_seeds_are_started_ahead_and_claimed_by_their_sessions(serve_factory):
    serve = serve_factory("--env", "frozen_lake", "--fork-server", "--warm", "3")
    cold = serve_factory("--env", "frozen_lake")
    response = httpx.post(f"{serve.url}/api/instances", json={"seeds": [1, 2, 3, 4], "config": {"map_size": 5}})
    assert response.status_code == 202 and response.json()["announced"] == 4
    await wait_for(lambda: sum(i["state"] == "ready" for i in instances(serve)) == 3)  # --warm 3 bounds the lookahead
    warm = {i["seed"]: i["pid"] for i in instances(serve)}
    assert all(i["warm"] and i["session_id"] is None for i in instances(serve))
    async with lake(serve.url, 1, '{"map_size": 5}') as client:
        text, meta, _ = await move(client, "RIGHT")
        claimed = [i for i in instances(serve) if i["session_id"]]
        assert [(i["seed"], i["pid"], i["warm"]) for i in claimed] == [(1, warm[1], False)]
        async with lake(cold.url, 1, '{"map_size": 5}') as reference:
            assert (text, meta) == (await move(reference, "RIGHT"))[:2]
        # claiming one made room: the fourth announced seed starts
        await wait_for(lambda: 4 in {i["seed"] for i in instances(serve)})
    # a different config is not a match: that session starts its own instance
    async with lake(serve.url, 2) as client:
        assert len((await initial_map(client)).split("\n")[1:-1]) == 4
        assert {i["seed"] for i in instances(serve) if i["session_id"]} == {2}
        assert warm[2] in {i["pid"] for i in instances(serve) if i["warm"]}
    metrics = serve.get("/metrics").text
    assert "mcpsim_warm_hits_total 1.0" in metrics and "mcpsim_warm_misses_total 1.0" in metrics


async def test_unclaimed_warm_instances_end_by_idle_timeout(serve_factory):
    serve = serve_factory("--env", "frozen_lake", "--fork-server", "--idle-timeout", "1.5")
    httpx.post(f"{serve.url}/api/instances", json={"seeds": [7, 8]})
    await wait_for(lambda: len(instances(serve)) == 2)
    pids = [i["pid"] for i in instances(serve)]
    await wait_for(lambda: instances(serve) == [], timeout=10)
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in pids)


async def test_warm_instances_make_room_for_real_sessions_at_max_instances(serve_factory):
    serve = serve_factory("--env", "frozen_lake", "--fork-server", "--max-instances", "2")
    httpx.post(f"{serve.url}/api/instances", json={"seeds": [11, 12]})
    await wait_for(lambda: sum(i["state"] == "ready" for i in instances(serve)) == 2)
    async with lake(serve.url, 30) as client:  # not announced: an unclaimed warm instance gives way
        await move(client, "LEFT")
        live = [i for i in instances(serve) if i["state"] == "ready"]
        assert len(live) == 2 and {i["seed"] for i in live} & {30}


async def test_seedless_sessions_claim_spares_kept_by_warm(serve_factory):
    serve = serve_factory("--env", "frozen_lake", "--fork-server", "--warm", "2")
    await wait_for(lambda: sum(i["state"] == "ready" for i in instances(serve)) == 2)
    spares = {i["pid"] for i in instances(serve)}
    async with Client(serve.mcp, mode="legacy") as client:
        await client.call_tool("lake_move", {"action": "LEFT"})
        (mine,) = [i for i in instances(serve) if i["session_id"]]
        assert mine["pid"] in spares
        await wait_for(lambda: sum(i["warm"] and i["state"] == "ready" for i in instances(serve)) == 2)  # refilled


def test_announcements_are_validated(frozen_lake_server):
    url = f"{frozen_lake_server.url}/api/instances"
    for body in ({"seeds": "1,2"}, {"seeds": [1, "x"]}, {"seeds": [1], "config": [2]}, {"seeds": [-1]}):
        response = httpx.post(url, json=body)
        assert response.status_code == 400, body
        assert response.json()["error"]["message"]
