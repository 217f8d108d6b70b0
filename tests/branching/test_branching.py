"""Branching a live instance into k copies (`POST /api/instances/{id}/branch`), through real servers and clients.

Every copy must be the source at the moment of the branch: its next observation for an action is the one an
unbranched run with the same seed and actions gets, whatever other copies or the source do meanwhile, and the
source goes on as if nothing happened. Live fork for forked Python servers; replay for the rest, refused by name
for a server that is not deterministic.
"""

import contextlib
import random
from pathlib import Path
from typing import Any

import anyio
import httpx
import psutil
import pytest
from mcp import Client

from helpers.http import HTTP
from helpers.procs import running
from helpers.serve import REPO, port_range, server_script

ENVS = {
    "frozen_lake": ("lake_move", ["LEFT", "DOWN", "RIGHT", "UP"], {"map_size": 8, "frozen_probability": 1.0}),
    "taxi": ("taxi_move", ["SOUTH", "NORTH", "EAST", "WEST", "PICKUP", "DROPOFF"], {}),
    "lunar_lander": ("lander_action", ["NOTHING", "FIRE_LEFT", "FIRE_MAIN", "FIRE_RIGHT"], {}),
}
PREFIX_STEPS = 6


def observation(result: Any) -> Any:
    """What the model sees and the rollout reads: every content block and the mcpsim meta."""
    blocks = [block.model_dump(mode="json", exclude_none=True) for block in result.content]
    return blocks, (result.meta or {}).get("mcpsim"), bool(result.is_error)


async def play(client: Client, tool: str, actions: list[str]) -> list[Any]:
    return [observation(await client.call_tool(tool, {"action": action})) for action in actions]


def session(url: str, seed: int, config: dict[str, Any]) -> Client:
    import json
    from urllib.parse import quote

    return Client(f"{url}/mcp?seed={seed}&config={quote(json.dumps(config))}", mode="legacy")


def branch(url: str, instance_id: str, count: int) -> httpx.Response:
    return HTTP.post(f"{url}/api/instances/{instance_id}/branch", json={"count": count}, timeout=120)


def source_id(serve: Any, seed: int) -> str:
    (item,) = [item for item in serve.get("/api/instances").json() if item["seed"] == seed and not item["parent"]]
    return item["id"]


@pytest.mark.parametrize("env", list(ENVS))
async def test_copies_continue_like_unbranched_runs_and_the_source_is_undisturbed(serve_factory, env):
    tool, actions, config = ENVS[env]
    serve = serve_factory("--env", env, "--fork-server", "--max-instances", "16")
    seed = 11
    rng = random.Random(5)
    prefix = [rng.choice(actions) for _ in range(PREFIX_STEPS)]
    same = rng.choice(actions)
    others = actions[:4]
    after = [rng.choice(actions) for _ in range(3)]

    async def reference(extra: list[str]) -> list[Any]:
        async with session(serve.url, seed, config) as client:
            return await play(client, tool, prefix + extra)

    async with session(serve.url, seed, config) as source:
        before = await play(source, tool, prefix)
        response = branch(serve.url, source_id(serve, seed), 4)
        assert response.status_code == 201, response.text
        copies = response.json()["instances"]
        assert [copy["method"] for copy in copies] == ["fork"] * 4
        assert {copy["branched_at_step"] for copy in copies} == {PREFIX_STEPS}
        # the source first, then every copy: the same action gives the same observation
        source_next = await play(source, tool, [same])
        nexts = []
        for copy in copies:
            async with Client(serve.url + copy["url"], mode="legacy") as client:
                assert await play(client, tool, [same]) == source_next
        # different actions, one per copy, each as an unbranched run with that action would see it
        async with anyio.create_task_group() as tg:
            results: dict[int, Any] = {}

            async def diverge(index: int, copy: dict[str, Any]) -> None:
                async with Client(serve.url + copy["url"], mode="legacy") as client:
                    results[index] = await play(client, tool, [others[index]])

            for index, copy in enumerate(copies):
                tg.start_soon(diverge, index, copy)
        source_rest = await play(source, tool, after)
    for index in range(4):
        expected = (await reference([same, others[index]]))[-1]
        assert results[index][0] == expected, f"copy {index} after {others[index]}"
        nexts.append(results[index][0])
    assert len({repr(item) for item in nexts}) > 1, "different actions should lead to different observations"
    assert before + source_next + source_rest == await reference([same, *after])


async def test_replay_for_a_node_server_over_http(serve_factory):
    project = REPO / "examples" / "js_frozen_lake"
    template = f"node {project / 'server.js'} --port {{port}} --seed {{seed}}"
    serve = serve_factory("--server", template, "--port-range", port_range(1700, 20), "--fork-server")
    seed, config = 3, {}
    async with session(serve.url, seed, config) as source:
        await play(source, "lake_move", ["RIGHT"])
        response = branch(serve.url, source_id(serve, seed), 2)
        assert response.status_code == 201, response.text
        copies = response.json()["instances"]
        assert [copy["method"] for copy in copies] == ["replay", "replay"]
        body = {"count": 1, "method": "fork"}
        forced = HTTP.post(f"{serve.url}/api/instances/{source_id(serve, seed)}/branch", json=body, timeout=30)
        assert forced.status_code == 409 and "cannot be forked live" in forced.json()["error"]["message"]
        expected = await play(source, "lake_move", ["DOWN"])
        for copy in copies:
            async with Client(serve.url + copy["url"], mode="legacy") as client:
                assert await play(client, "lake_move", ["DOWN"]) == expected
    listed = {item["id"]: item for item in serve.get("/api/instances").json()}
    assert all(listed[copy["id"]]["parent"] == copies[0]["parent"] for copy in copies)


async def test_replay_for_server_everything(serve_factory):
    from server.test_server_everything import EVERYTHING, NPM_ENV

    serve = serve_factory("--server", f"npx -y {EVERYTHING}", env=NPM_ENV)
    async with Client(f"{serve.mcp}?seed=1", mode="legacy") as source:
        first = await source.call_tool("echo", {"message": "one"})
        response = branch(serve.url, source_id(serve, 1), 1)
        assert response.status_code == 201, response.text
        (copy,) = response.json()["instances"]
        assert copy["method"] == "replay" and copy["branched_at_step"] == 1
        async with Client(serve.url + copy["url"], mode="legacy") as client:
            again = await client.call_tool("echo", {"message": "two"})
        assert again.content[0].text == first.content[0].text.replace("one", "two")


@pytest.mark.parametrize("fork_server", [False, True])
async def test_a_drifting_server_is_refused_by_name(serve_factory, fork_server):
    # drifting.py serves stdio the SDK's way (a worker thread reads stdin), so even forked it is branched by replay
    serve = serve_factory("--server", f"python {server_script('drifting.py')}", *(["--fork-server"] * fork_server))
    async with Client(f"{serve.mcp}?seed=2", mode="legacy") as source:
        for _ in range(4):
            await source.call_tool("advance", {"steps": 1})
        response = branch(serve.url, source_id(serve, 2), 2)
        assert response.status_code == 409, response.text
        assert "server is not deterministic at step 4" in response.json()["error"]["message"]
        assert [item["parent"] for item in serve.get("/api/instances").json()] == [None]
        result = await source.call_tool("advance", {"steps": 1})  # the source goes on
        assert result.content[0].text.startswith(f"position {2 % 7 + 5} ")
    if fork_server:
        assert "live fork refused (the server runs a thread besides its event loop" in serve.log()


async def test_64_copies_at_once_a_branch_of_a_branch_and_nothing_left(serve_factory):
    serve = serve_factory("--env", "frozen_lake", "--fork-server", "--max-instances", "70")
    config = {"map_size": 8, "frozen_probability": 1.0}
    async with session(serve.url, 4, config) as source:
        await play(source, "lake_move", ["RIGHT", "DOWN"])
        response = branch(serve.url, source_id(serve, 4), 64)
        assert response.status_code == 201, response.text
        copies = response.json()["instances"]
        assert len(copies) == 64 and {copy["method"] for copy in copies} == {"fork"}
        listed = serve.get("/api/instances").json()
        pids = {item["pid"] for item in listed if item["parent"]}
        assert len(pids) == 64 and all(psutil.pid_exists(pid) for pid in pids)
        holders: dict[str, set[int]] = {}  # each copy holds its own pipes, none of another copy's
        for pid in pids:
            for link in pipes(pid):
                holders.setdefault(link, set()).add(pid)
        assert not {link: held for link, held in holders.items() if len(held) > 1}
        source_pid = next(item["pid"] for item in listed if not item["parent"])
        if f"i-{source_id(serve, 4)}" in control_groups(source_pid):  # cgroup tracking: each copy moves to its own
            by_pid = {item["pid"]: item["id"] for item in listed if item["parent"]}
            with anyio.fail_after(10):
                while any(f"i-{copy_id}" not in control_groups(pid) for pid, copy_id in by_pid.items()):
                    await anyio.sleep(0.05)
        # the limit counts copies: 65 run, 5 more do not fit
        refused = branch(serve.url, copies[0]["id"], 6)
        assert refused.status_code == 503 and "--max-instances" in refused.json()["error"]["message"]
        # a branch of a branch
        grandchild = branch(serve.url, copies[0]["id"], 1).json()["instances"][0]
        assert grandchild["parent"] == copies[0]["id"] and grandchild["branched_at_step"] == 2
        async with Client(serve.url + grandchild["url"], mode="legacy") as client:
            assert await play(client, "lake_move", ["RIGHT"]) == await play(source, "lake_move", ["RIGHT"])
        for copy in [*copies, grandchild]:
            assert HTTP.delete(f"{serve.url}/envs/{copy['id']}/mcp", timeout=30).status_code == 200
        with anyio.fail_after(15):  # each was its source's child, so its exit code was read from its zombie
            while len(ends := ended(serve, [copy["id"] for copy in [*copies, grandchild]])) < 65:
                await anyio.sleep(0.1)
        assert not [line for line in ends if "exit code -9" in line], ends[:3]
    with anyio.fail_after(15):
        while serve.get("/api/instances").json() or serve.instance_processes():
            await anyio.sleep(0.1)
    assert not [pid for pid in pids if running(pid)]


def ended(serve: Any, ids: list[str]) -> list[str]:
    """The log lines saying how these instances ended."""
    return [line for line in serve.log().splitlines() if "ended (exit" in line and any(i in line for i in ids)]


def pipes(pid: int) -> set[str]:
    found = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            if (link := str(fd.readlink())).startswith("pipe:"):
                found.add(link)
    return found


def control_groups(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return ""


async def test_copies_idle_out_and_bad_requests_name_the_cause(serve_factory):
    # 8 s: long enough that the source, played between steps, never idles out on a loaded 2-core machine
    serve = serve_factory("--env", "frozen_lake", "--fork-server", "--idle-timeout", "8")
    async with session(serve.url, 6, {}) as source:
        await play(source, "lake_move", ["RIGHT"])
        instance = source_id(serve, 6)
        for body, status, text in [
            ({"count": 0}, 409, "count must be an integer from 1 to 64"),
            ({"count": 65}, 409, "count must be an integer from 1 to 64"),
            ({"count": "two"}, 400, "count must be an integer"),
        ]:
            response = HTTP.post(f"{serve.url}/api/instances/{instance}/branch", json=body, timeout=30)
            assert response.status_code == status and text in response.json()["error"]["message"], response.text
            await play(source, "lake_move", ["LEFT"])  # the source stays busy, so it does not idle out
        missing = HTTP.post(f"{serve.url}/api/instances/000000000000/branch", json={"count": 1}, timeout=30)
        assert missing.status_code == 404
        # the source ended right after a branch: its copies live on (a copy is its child, outside its group)
        async with session(serve.url, 7, {"frozen_probability": 1.0}) as other:
            await play(other, "lake_move", ["RIGHT"])
            other_id = source_id(serve, 7)
            orphans = branch(serve.url, other_id, 2).json()["instances"]
            assert HTTP.delete(f"{serve.url}/api/instances/{other_id}", timeout=30).status_code == 200
        for orphan in orphans:
            async with Client(serve.url + orphan["url"], mode="legacy") as client:
                assert "Steps taken: 2." in (await play(client, "lake_move", ["LEFT"]))[0][0][0]["text"]
            assert HTTP.delete(f"{serve.url}/api/instances/{orphan['id']}", timeout=30).status_code == 200
        with anyio.fail_after(10):
            while len(ends := ended(serve, [orphan["id"] for orphan in orphans])) < len(orphans):
                await anyio.sleep(0.1)
        assert not [line for line in ends if "exit code -9" in line], ends  # -9: a code not known
        (copy,) = branch(serve.url, instance, 1).json()["instances"]
        with anyio.fail_after(40):
            while any(item["id"] == copy["id"] for item in serve.get("/api/instances").json()):
                await play(source, "lake_move", ["LEFT"])  # only the copy idles
                await anyio.sleep(0.2)


async def test_the_client_branches_a_session_and_its_copies_end_with_it(serve_factory):
    import mcpsim
    from mcpsim.trajectory import Action

    serve = serve_factory("--env", "frozen_lake", "--fork-server")
    (env,) = mcpsim.make(serve.mcp, dataset=[{"id": "root", "seed": 8, "config": {"frozen_probability": 1.0}}])
    async with env.connect() as root:
        await root.step(Action("lake_move", {"action": "RIGHT"}), 1)
        copies = await root.branch(2)
        assert [copy.branch_info["method"] for copy in copies] == ["fork", "fork"]
        grandchildren = await copies[0].branch(1)  # a copy branches by its own instance id
        assert grandchildren[0].branch_info["parent"] == copies[0].branch_info["id"]
        expected = await root.step(Action("lake_move", {"action": "DOWN"}), 2)
        for session in [*copies, *grandchildren]:
            got = await session.step(Action("lake_move", {"action": "DOWN"}), 2)
            assert (got.observation, got.reward, got.terminated) == (
                expected.observation,
                expected.reward,
                expected.terminated,
            )
        assert len(serve.get("/api/instances").json()) == 4
    with anyio.fail_after(15):
        while serve.get("/api/instances").json():
            await anyio.sleep(0.1)
