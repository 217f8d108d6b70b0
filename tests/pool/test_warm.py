"""Warm instances: announced seeds start ahead and are claimed by their sessions; nothing unclaimed leaks."""

import time

import anyio
import pytest
from mcp import Client

from helpers.http import HTTP
from helpers.mcp_client import initial_map, lake, move
from helpers.procs import running
from mcpsim.errors import QueueFull, TooManySeeds
from mcpsim.pool.seed_queue import MAX_QUEUED_SEEDS, MAX_SEEDS_PER_ANNOUNCE, SeedQueue
from mcpsim.pool.warm import version_of, warm_key


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
    response = HTTP.post(f"{serve.url}/api/instances", json={"seeds": [1, 2, 3, 4], "config": {"map_size": 5}})
    assert response.status_code == 202 and response.json()["announced"] == 4
    # --warm 3 bounds the lookahead; the random-seed spares it kept before the announcement give way to seeds 1-3
    await wait_for(
        lambda: {(i["seed"], i["state"]) for i in instances(serve)} == {(1, "ready"), (2, "ready"), (3, "ready")}
    )
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
    HTTP.post(f"{serve.url}/api/instances", json={"seeds": [7, 8]})
    await wait_for(lambda: len(listed := instances(serve)) == 2 and all(i["pid"] for i in listed))  # pids once spawned
    pids = [i["pid"] for i in instances(serve)]
    await wait_for(lambda: instances(serve) == [], timeout=10)
    assert not any(running(p) for p in pids)


async def test_warm_instances_make_room_for_real_sessions_at_max_instances(serve_factory):
    serve = serve_factory("--env", "frozen_lake", "--fork-server", "--max-instances", "2")
    HTTP.post(f"{serve.url}/api/instances", json={"seeds": [11, 12]})
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
        response = HTTP.post(url, json=body)
        assert response.status_code == 400, body
        assert response.json()["error"]["message"]
    refused = HTTP.post(url, json={"seeds": [1], "protocol": "2099-01-01"})
    assert refused.status_code == 400 and "protocol must be one of 2026-07-28" in refused.json()["error"]["message"]


def test_warm_keys_carry_the_era():
    """A 2026-07-28 warm instance and a handshake one of the same seed and config are different keys, and the era
    comes back from the key (the warm pool starts each instance for the era it was announced for)."""
    legacy, modern = warm_key(4, {"map_size": 5}), warm_key(4, {"map_size": 5}, "2026-07-28")
    assert legacy == (4, '{"map_size":5}') and modern == (4, '{"map_size":5}@2026-07-28')
    assert version_of(legacy[1]) == "2025-11-25" and version_of(modern[1]) == "2026-07-28"
    assert version_of(warm_key(None, {"a": "x@y"})[1]) == "2025-11-25"  # an @ inside the config is not an era
    queue = SeedQueue()
    queue.extend([4], modern[1], {"map_size": 5})
    assert not queue.remove(legacy) and queue.popleft_entry() == (4, modern[1], {"map_size": 5})


def test_the_seed_queue_keeps_announcement_order_and_takes_any_entry_in_place():
    queue = SeedQueue(per_announce=4, total=6)
    queue.extend([1, 2, 1], "{}", {})
    queue.extend([1], '{"a":1}', {"a": 1})
    assert queue.remove((1, "{}")) and not queue.remove((3, "{}")) and len(queue) == 3  # the older 1 went
    queue.extend([3, 1], "{}", {})
    with pytest.raises(TooManySeeds, match="at most 4 seeds"):
        queue.extend([7] * 5, "{}", {})
    with pytest.raises(QueueFull, match="5 are queued"):
        queue.extend([7, 7], "{}", {})
    assert len(queue) == 5  # a refused announcement queues none of its seeds
    popped = [queue.popleft() for _ in range(len(queue))]
    assert popped == [(2, {}), (1, {}), (1, {"a": 1}), (3, {}), (1, {})]
    assert popped[2][1] is not popped[0][1] and not queue.remove((1, "{}"))
    with pytest.raises(IndexError):
        queue.popleft()


async def test_announcements_are_bounded_and_a_session_takes_its_seed_from_a_full_queue(serve_factory):
    """Issue 13, item 4: 413 for one announcement over the per-request limit, 429 past the total, the queue stays
    at its bound, and a session whose seed waits deep in it takes that seed out and plays it."""
    serve = serve_factory("--env", "frozen_lake", "--fork-server", "--max-instances", "1")
    url = f"{serve.url}/api/instances"
    config = {"map_size": 5}

    def queued() -> float:
        [value] = [
            line.split()[1]
            for line in serve.get("/metrics").text.splitlines()
            if line.startswith("mcpsim_warm_queued ")
        ]
        return float(value)

    over = HTTP.post(url, json={"seeds": [7] * (MAX_SEEDS_PER_ANNOUNCE + 1)}, timeout=30)
    assert over.status_code == 413 and "at most" in over.json()["error"]["message"]
    assert queued() == 0
    for start in range(0, MAX_QUEUED_SEEDS, MAX_SEEDS_PER_ANNOUNCE):
        seeds = list(range(start, start + MAX_SEEDS_PER_ANNOUNCE))
        response = HTTP.post(url, json={"seeds": seeds, "config": config}, timeout=30)
        assert response.status_code == 202, response.text
    # one instance (--max-instances 1) took the first seed; the rest wait
    await wait_for(lambda: [i["seed"] for i in instances(serve) if i["state"] == "ready"] == [0])
    assert queued() == MAX_QUEUED_SEEDS - 1
    refused = HTTP.post(url, json={"seeds": [1, 2]}, timeout=30)
    assert refused.status_code == 429, refused.text
    assert f"at most {MAX_QUEUED_SEEDS}" in refused.json()["error"]["message"]
    assert queued() == MAX_QUEUED_SEEDS - 1
    deep = MAX_QUEUED_SEEDS - 2
    async with lake(serve.url, deep, '{"map_size": 5}') as client:
        await move(client, "RIGHT")
        [mine] = [i for i in instances(serve) if i["session_id"]]
        assert mine["seed"] == deep and not mine["warm"]
        assert queued() == MAX_QUEUED_SEEDS - 2  # its queued entry went; nothing else did


async def modern_episode(url: str) -> tuple[int, list[str]]:
    """A seedless 2026-07-28 episode on `url`'s `/mcp` (or `?seed=`), following the handle: (seed, texts)."""
    texts = []
    async with Client(url, mode="2026-07-28") as client:
        first = await client.call_tool("lake_move", {"action": "RIGHT"})
        handle = first.meta["mcpsim/handle"]
        texts.append(first.content[0].text)
        for action in ["RIGHT", "DOWN", "DOWN", "LEFT", "DOWN"]:
            moved = await client.call_tool("lake_move", {"action": action}, meta={"mcpsim/handle": handle})
            texts.append(moved.content[0].text)
            if moved.meta["mcpsim"].get("terminated"):
                break
    return handle, texts


async def test_spares_serve_2026_clients_with_the_trajectories_of_cold_starts(serve_factory):
    """`--warm N` spares are claimed by 2026-07-28 clients too: the first claims a handshake-era spare (translated),
    the refill is opened for 2026 (the latest client's era), and the next claims that one; every episode plays
    as a cold start of its seed does."""
    serve = serve_factory("--env", "frozen_lake", "--fork-server", "--warm", "1")
    cold = serve_factory("--env", "frozen_lake")
    played = []
    for _ in range(2):
        await wait_for(lambda: sum(i["warm"] and i["state"] == "ready" for i in instances(serve)) == 1)
        spare = next(i for i in instances(serve) if i["warm"])
        handle, texts = await modern_episode(serve.mcp)
        assert handle == spare["id"], "the 2026 episode was not the spare"
        played.append((spare["seed"], texts))
    metrics = serve.get("/metrics").text
    assert "mcpsim_warm_hits_total 2.0" in metrics and "mcpsim_warm_misses_total 0.0" in metrics
    for seed, texts in played:
        assert (await modern_episode(f"{cold.mcp}?seed={seed}"))[1] == texts
