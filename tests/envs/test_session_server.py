"""`SessionEnvServer`: one process, one episode per MCP session; independent sessions, state freed at the end."""

import gc
import json
import os
import signal
import subprocess
import sys
import time
import weakref

import anyio
import httpx
import pytest
from mcp import Client

import mcpsim
from helpers.http import HTTP
from helpers.mcp_client import ACCEPT
from helpers.mcp_client import INIT as INITIALIZE
from mcpsim.envs.frozen_lake import ACTIONS as LAKE_ACTIONS
from mcpsim.envs.frozen_lake import SPEC as LAKE
from mcpsim.envs.gym_server import Episode
from mcpsim.proc import free_port


@pytest.fixture(scope="module")
def session_server_process(tmp_path_factory):
    port = free_port()
    log_path = tmp_path_factory.mktemp("session_server") / "log.txt"
    process = subprocess.Popen(
        [sys.executable, "-m", "mcpsim.envs.session_server", "--env", "frozen_lake", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=log_path.open("wb"),
        env=os.environ.copy(),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, log_path.read_text()
        try:
            if HTTP.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            assert time.monotonic() < deadline, "session server did not start"
            time.sleep(0.05)
    yield url
    process.terminate()
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status still says why it stopped
    assert process.wait(15) in (0, -signal.SIGTERM), log_path.read_text()
    assert "Traceback" not in log_path.read_text()


def solo_replay(seed: int, actions: list[str]) -> list:
    """The same seed and actions on an episode of its own, in this process: what a session must return."""
    episode = Episode(LAKE, seed)
    trace = []
    for action in actions:
        result = episode.step_result(action)
        trace.append((result.content[0].text, result.meta, bool(result.is_error)))
    return trace


async def test_thirty_two_concurrent_sessions_stay_independent(session_server_process):
    url = session_server_process
    traces: dict[int, tuple[str, list]] = {}

    async def session(i: int) -> None:
        seed = i % 16  # every seed twice: two sessions with one seed must not share state
        actions = [LAKE_ACTIONS[(i + k * (1 + i % 3)) % 4] for k in range(12)]
        async with Client(f"{url}/mcp?seed={seed}", mode="legacy") as client:
            first = (await client.read_resource("game://initial_state")).contents[0].text
            trace = []
            for action in actions:
                result = await client.call_tool("lake_move", {"action": action})
                trace.append((result.content[0].text, result.meta, bool(result.is_error)))
                await anyio.sleep(0)  # interleave with the other sessions
            traces[i] = (first, trace)

    async with anyio.create_task_group() as tg:
        for i in range(32):
            tg.start_soon(session, i)
    assert len(traces) == 32
    for i, (first, trace) in traces.items():
        seed = i % 16
        actions = [LAKE_ACTIONS[(i + k * (1 + i % 3)) % 4] for k in range(12)]
        assert first == LAKE.render_observation(Episode(LAKE, seed))[0].text
        assert trace == solo_replay(seed, actions), f"session {i} (seed {seed}) differs from a solo replay"
    health = HTTP.get(f"{url}/health").json()
    assert health["sessions"] == 0 and health["opened"] >= 32 and health["closed"] == health["opened"]
    assert HTTP.get(f"{url}/api/sessions").json() == []


async def test_sessions_are_listed_with_their_seeds(session_server_process):
    url = session_server_process
    async with Client(f"{url}/mcp?seed=77", mode="legacy") as a, Client(f"{url}/mcp", mode="legacy") as b:
        await a.call_tool("lake_move", {"action": "DOWN"})
        await b.call_tool("lake_move", {"action": "DOWN"})
        listing = {item["seed"]: item for item in HTTP.get(f"{url}/api/sessions").json()}
        assert len(listing) == 2 and listing[77]["step"] == 1
        (random_seed,) = set(listing) - {77}
        assert isinstance(random_seed, int)


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("seed=abc", "invalid seed"),
        ("seed=-4", "invalid seed"),
        ("seed=99999999999999999999", "invalid seed"),
        ("config=%7Bnope", "invalid config"),
        ("config=%7B%22map_size%22%3A%201%7D", "map_size must be between 2 and 32"),
    ],
)
def test_bad_seed_or_config_is_a_400_naming_the_cause(session_server_process, query, needle):
    response = HTTP.post(f"{session_server_process}/mcp?{query}", json=INITIALIZE, headers=ACCEPT)
    assert response.status_code == 400
    assert needle in response.json()["error"]["message"]
    assert HTTP.get(f"{session_server_process}/health").json()["sessions"] == 0


def test_a_config_nested_too_deeply_is_a_400_not_a_500(session_server_process):
    """json.loads raised RecursionError past the config parser: the request got a 500 and a traceback."""
    deep = "%5B" * 1100 + "%5D" * 1100
    response = HTTP.post(f"{session_server_process}/mcp?config={deep}", json=INITIALIZE, headers=ACCEPT)
    assert response.status_code == 400
    assert "invalid config" in response.json()["error"]["message"] and "nested" in response.json()["error"]["message"]
    assert HTTP.get(f"{session_server_process}/health").json()["sessions"] == 0


def test_unknown_session_is_a_404(session_server_process):
    headers = {**ACCEPT, "mcp-session-id": "feedface"}
    response = HTTP.post(f"{session_server_process}/mcp", json={"jsonrpc": "2.0", "id": 2, "method": "ping"},
                          headers=headers)  # fmt: skip
    assert response.status_code == 404 and "Session not found" in response.json()["error"]["message"]


async def test_default_client_mode_falls_back_to_a_session(session_server_process):
    async with Client(f"{session_server_process}/mcp?seed=3") as client:
        result = await client.call_tool("lake_move", {"action": "RIGHT"})
        assert result.meta["mcpsim"]["step"] == 1


def sse_json(response: httpx.Response) -> dict:
    data = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
    return json.loads(data[-1])


async def test_episode_freed_when_the_session_is_deleted_or_idles_out():
    server = mcpsim.SessionEnvServer("frozen_lake", idle_timeout=1.0)
    async with server.serving() as url:
        # DELETE (the official client sends it when it leaves)
        async with Client(f"{url}/mcp?seed=4", mode="legacy") as client:
            await client.call_tool("lake_move", {"action": "DOWN"})
            (session,) = server.sessions.values()
            episode_ref, env_ref = weakref.ref(session.episode), weakref.ref(session.episode.env.unwrapped)
            del session
        assert server.sessions == {}
        gc.collect()
        assert episode_ref() is None and env_ref() is None, "the episode outlived its session"

        # idle timeout: a client that goes quiet without DELETE
        async with httpx.AsyncClient(base_url=url, headers=ACCEPT) as http:
            opened = await http.post("/mcp?seed=5", json=INITIALIZE)
            assert opened.status_code == 200 and sse_json(opened)["result"]["serverInfo"]["name"] == "frozen_lake"
            sid = opened.headers["mcp-session-id"]
            headers = {"mcp-session-id": sid, "mcp-protocol-version": "2025-11-25"}
            await http.post("/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
            call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                    "params": {"name": "lake_move", "arguments": {"action": "RIGHT"}}}  # fmt: skip
            moved = await http.post("/mcp", json=call, headers=headers)
            assert sse_json(moved)["result"]["_meta"]["mcpsim"]["step"] == 1
            episode_ref = weakref.ref(server.sessions[sid].episode)
            deadline = time.monotonic() + 10
            while server.sessions and time.monotonic() < deadline:
                await anyio.sleep(0.1)
            assert server.sessions == {}, "the idle session was not ended"
            gone = await http.post("/mcp", json=call, headers=headers)
            assert gone.status_code == 404
        gc.collect()
        assert episode_ref() is None
        assert server.health()["opened"] == server.health()["closed"] == 2


async def test_lunar_lander_sessions_each_get_their_own_frames():
    from mcpsim.envs.lunar_lander import SPEC as LANDER

    server = mcpsim.SessionEnvServer(LANDER)
    async with server.serving() as url:
        results = {}
        for seed in (1, 2):
            async with Client(f"{url}/mcp?seed={seed}", mode="legacy") as client:
                results[seed] = await client.call_tool("lander_action", {"action": "FIRE_MAIN"})
    for seed, result in results.items():
        expected = Episode(LANDER, seed).step_result("FIRE_MAIN")
        assert [b.type for b in result.content] == ["text", "image"]
        assert result.content[1].data == expected.content[1].data
        assert result.meta == expected.meta
    assert results[1].content[1].data != results[2].content[1].data


def test_import_mcpsim_stays_light():
    code = "import sys, mcpsim; assert 'gymnasium' not in sys.modules and 'uvicorn' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert mcpsim.SessionEnvServer.__module__ == "mcpsim.envs.session_server"


async def test_2026_clients_get_episodes_keyed_by_handles():
    """At 2026-07-28 there are no sessions: the first stateful request mints a handle, later ones carry it."""
    from mcpsim.envs.session_server import SessionEnvServer

    server = SessionEnvServer("frozen_lake", idle_timeout=30)
    async with server.serving() as url:
        async with Client(f"{url}/mcp?seed=13", mode="2026-07-28") as a, Client(f"{url}/mcp?seed=13") as b:
            first_a = await a.call_tool("lake_move", {"action": "RIGHT"})
            first_b = await b.call_tool("lake_move", {"action": "DOWN"})
            ha, hb = first_a.meta["mcpsim/handle"], first_b.meta["mcpsim/handle"]
            assert ha != hb and len(ha) == 32
            again = await a.call_tool("lake_move", {"action": "RIGHT"}, meta={"mcpsim/handle": ha})
            assert again.meta["mcpsim"]["step"] == 2 and "row 0, column 2" in again.content[0].text
            other = await b.call_tool("lake_move", {"action": "RIGHT"}, meta={"mcpsim/handle": hb})
            assert other.meta["mcpsim"]["step"] == 2 and "row 1, column 1" in other.content[0].text
            assert server.health()["handles"] == 2 and server.health()["sessions"] == 0
        async with httpx.AsyncClient() as http:
            assert (await http.delete(f"{url}/episodes/{ha}")).status_code == 200
            assert (await http.delete(f"{url}/episodes/{ha}")).status_code == 404
        assert server.health()["handles"] == 1
