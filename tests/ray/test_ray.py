"""`mcpsim serve --ray`: instances on a 3-node local Ray cluster behind stateless fronts.

One cluster and one front for the whole module (conftest.py); raw HTTP where a test must hold or move a
session id between fronts, JSON-RPC errors checked for the node they name. Timings are `mcpsim bench --ray`'s.
"""

import contextlib
import json
import signal
import time
from typing import Any

import httpx
import psutil
import pytest

import ray
from helpers.http import HTTP
from helpers.mcp_client import ACCEPT, INIT

pytestmark = [pytest.mark.ray, pytest.mark.xdist_group("ray")]  # one cluster, one worker (--dist loadfile or loadgroup)

ENVELOPE = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}


def _answer(reply: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC message of a JSON or SSE answer."""
    if reply.headers.get("content-type", "").startswith("text/event-stream"):
        for line in reply.text.splitlines():
            if line.startswith("data:") and line[5:].strip():
                message = json.loads(line[5:])
                if "id" in message:
                    return message
    return reply.json()


def open_session(url: str, seed: int = 0) -> str:
    reply = HTTP.post(f"{url}/mcp?seed={seed}", json=INIT, headers=ACCEPT, timeout=60)
    assert reply.status_code == 200, reply.text
    session = reply.headers["mcp-session-id"]
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    headers = {**ACCEPT, "mcp-session-id": session, "mcp-protocol-version": "2025-11-25"}
    HTTP.post(f"{url}/mcp", json=note, headers=headers, timeout=30)
    return session


def move(url: str, session: str, action: str = "LEFT") -> tuple[int, dict[str, Any]]:
    body = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": "lake_move", "arguments": {"action": action}},
    }
    headers = {**ACCEPT, "mcp-session-id": session, "mcp-protocol-version": "2025-11-25"}
    reply = HTTP.post(f"{url}/mcp", json=body, headers=headers, timeout=30)
    return reply.status_code, _answer(reply)


def modern_move(url: str, handle: str | None = None) -> tuple[int, dict[str, Any]]:
    meta = {**ENVELOPE, **({"mcpsim/handle": handle} if handle else {})}
    params = {"name": "lake_move", "arguments": {"action": "LEFT"}, "_meta": meta}
    headers = {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "lake_move", **ACCEPT}
    body = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": params}
    reply = HTTP.post(f"{url}/mcp", json=body, headers=headers, timeout=30)
    return reply.status_code, _answer(reply)


def instances(url: str) -> list[dict[str, Any]]:
    return HTTP.get(f"{url}/api/instances", timeout=30).json()


def of_session(url: str, session: str) -> dict[str, Any]:
    return next(item for item in instances(url) if item["session_id"] == session)


def end(url: str, session: str) -> None:
    HTTP.delete(f"{url}/mcp", headers={"mcp-session-id": session}, timeout=30)


def test_sessions_spread_over_nodes_and_ops_show_every_node(ray_cluster, front):
    sessions = [open_session(front.url, seed) for seed in range(6)]
    try:
        for session in sessions:
            status, answer = move(front.url, session)
            assert status == 200 and "FrozenLake" in answer["result"]["content"][0]["text"], answer
        listed = [of_session(front.url, session) for session in sessions]
        for item in listed:
            ray_cluster.note(item["pid"])
        assert len({item["node"] for item in listed}) == 3, "6 sessions on 3 nodes of 3 slots each use all three"
        # the front's figures are the nodes' /health as of its last refresh (every 0.5 s, `REFRESH`)
        deadline = time.monotonic() + 15
        while (health := HTTP.get(f"{front.url}/health", timeout=30).json())["instances"]["live"] < 6:
            assert time.monotonic() < deadline, health
            time.sleep(0.2)
        assert len(health["nodes"]) == 3 and health["limits"]["max_instances"] == 9
        metrics = HTTP.get(f"{front.url}/metrics", timeout=30).text
        assert "mcpsim_ray_nodes 3" in metrics
        assert len({line.split('node="')[1].split('"')[0] for line in metrics.splitlines() if 'node="' in line}) == 3
        overview = HTTP.get(f"{front.url}/api/overview", timeout=30).json()
        assert {item["node"] for item in overview["instances"]} >= {item["node"] for item in listed}
        assert overview["health"]["fork_server"]  # what the page reads besides the instances
        assert 'class="node-col"' in HTTP.get(f"{front.url}/", timeout=30).text
    finally:
        for session in sessions:
            end(front.url, session)


def test_a_full_cluster_refuses_clearly(ray_cluster, front):
    sessions, refusal = [], None
    try:
        for seed in range(12):
            reply = HTTP.post(f"{front.url}/mcp?seed={seed}", json=INIT, headers=ACCEPT, timeout=60)
            if reply.status_code != 200:
                refusal = reply
                break
            sessions.append(reply.headers["mcp-session-id"])
        assert refusal is not None and refusal.status_code == 503, "9 slots: the tenth session is refused"
        assert "no room on the Ray cluster" in refusal.json()["error"]["message"] or "every node" in refusal.text
        assert len(sessions) <= 9
    finally:
        for session in sessions:
            end(front.url, session)


def test_two_fronts_share_sessions_and_handles(ray_cluster, front, tmp_path):
    other = ray_cluster.front(tmp_path)
    session = open_session(front.url, 5)
    status, answer = move(other.url, session)  # a handshake session opened on one front, served by the other
    assert status == 200 and "FrozenLake" in answer["result"]["content"][0]["text"], answer
    status, minted = modern_move(other.url)  # a 2026 episode minted on the other front...
    handle = minted["result"]["_meta"]["mcpsim/handle"]
    assert minted["result"]["_meta"]["mcpsim/url"] == f"{other.url}/envs/{handle}/mcp"
    status, again = modern_move(front.url, handle)  # ...continued on the first
    assert status == 200 and again["result"]["_meta"]["mcpsim/handle"] == handle, again
    via_url = HTTP.delete(f"{front.url}/envs/{handle}/mcp", timeout=30)
    assert via_url.status_code < 300
    status, gone = modern_move(other.url, handle)
    assert status == 404 and "error" in gone
    end(other.url, session)
    other.stop()


def _until_failed(url: str, session: str, deadline_s: float = 15) -> tuple[int, dict[str, Any]]:
    """The first failed call of `session` (a call may still succeed while the node's end reaches the front;
    how long that takes is `mcpsim bench --ray`'s figure, not a test's)."""
    end = time.monotonic() + deadline_s
    while True:
        status, answer = move(url, session)
        if status != 200 or time.monotonic() > end:
            return status, answer
        time.sleep(0.1)


def _agent_of(node_id: str):

    return ray.get_actor(f"mcpsim-agent-{node_id}", namespace="mcpsim")


def test_a_killed_agent_fails_its_sessions_naming_the_node(ray_cluster, front):
    session = open_session(front.url, 11)
    item = of_session(front.url, session)
    ray_cluster.note(item["pid"])

    agent = _agent_of(item["node"])
    info = ray.get(agent.info.remote())
    ray_cluster.note(info["pid"])
    ray.kill(agent, no_restart=True)
    status, answer = _until_failed(front.url, session)
    assert status == 404 and item["node"][:12] in answer["error"]["message"], answer
    assert answer["error"]["data"]["node"] == item["node"]
    from helpers.serve import survivors

    pids = {pid: born for pid, born in ray_cluster.seen_pids.items() if pid in (item["pid"], info["pid"])}
    assert survivors(pids, deadline_s=10) == [], "the node's mcpsim and its instance end with the agent"
    fresh = open_session(front.url, 12)  # new sessions go to live agents (the front starts a new one there)
    status, answer = move(front.url, fresh)
    assert status == 200, answer
    end(front.url, fresh)


def test_a_killed_node_fails_its_sessions_and_nothing_of_it_survives(ray_cluster, front):
    head = ray_cluster.local.node_id(0)
    sessions = [open_session(front.url, seed) for seed in range(20, 24)]
    placed = {session: of_session(front.url, session) for session in sessions}
    for item in placed.values():
        ray_cluster.note(item["pid"])
    victim = next(item for item in placed.values() if item["node"] != head)
    index = next(i for i in range(1, 3) if ray_cluster.local.node_id(i) == victim["node"])
    ray_cluster.local.remove(index)
    session = next(s for s, item in placed.items() if item["node"] == victim["node"])
    status, answer = _until_failed(front.url, session)
    assert status == 404 and victim["node"][:12] in answer["error"]["message"], answer
    from helpers.serve import survivors

    lost = {pid: born for pid, born in ray_cluster.seen_pids.items() if pid == victim["pid"]}
    assert survivors(lost, deadline_s=10) == []
    for s, item in placed.items():
        if item["node"] != victim["node"]:
            assert move(front.url, s)[0] == 200  # the other nodes' sessions go on
        end(front.url, s)
    ray_cluster.replace_node(index)  # the next tests keep three nodes


@pytest.mark.parametrize("lease", [None, "1"])
def test_a_killed_front(ray_cluster, front, tmp_path, lease):
    doomed = ray_cluster.front(tmp_path, *(["--ray-lease", lease] if lease else []))
    session = open_session(doomed.url, 30)
    item = of_session(front.url, session)
    ray_cluster.note(item["pid"])
    doomed.process.send_signal(signal.SIGKILL)
    doomed.process.wait()
    if lease is None:  # left to its idle timeout: another front still serves it
        time.sleep(1)
        assert move(front.url, session)[0] == 200
        end(front.url, session)
    else:  # the agent ends it once the lease (1 s) runs out
        deadline = time.monotonic() + 10
        while any(i["session_id"] == session for i in instances(front.url)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(i["session_id"] == session for i in instances(front.url))


def test_bad_ray_options_are_refused_before_anything_starts(capsys):
    import subprocess
    import sys

    from mcpsim.cli import main

    for args, why in ((["--ray", "local:99"], "local or local:N"), (["--ray-lease", "5"], "--ray-lease needs --ray")):
        with pytest.raises(SystemExit) as exited:
            main(["serve", *args])
        assert exited.value.code == 2 and why in capsys.readouterr().err
    unreachable = subprocess.run(  # its own process: a failed join would end this process's Ray driver
        [sys.executable, "-m", "mcpsim", "serve", "--ray", "127.0.0.1:1"], capture_output=True, text=True, timeout=60
    )
    assert unreachable.returncode == 2 and "nothing answers there" in unreachable.stderr


CLIENT_SERVER = """
import sys
import ray.util.client.server.proxier as proxier
from ray.util.client.server.server import main
low = int(sys.argv.pop(1))
proxier.MIN_SPECIFIC_SERVER_PORT, proxier.MAX_SPECIFIC_SERVER_PORT = low, low + 7
main()
"""
"""What `ray start --ray-client-server-port` runs on the head (Ray Client's proxy, `--mode proxy`), with the
per-client drivers' ports in this run's range instead of Ray's fixed 23000-23999."""


@contextlib.contextmanager
def _ray_client_server(ray_cluster, tmp_path):
    """The head's Ray Client server on ray_cluster's base+2 (free in its layout), its drivers on base+3..+9; the
    drivers end 2 s after their client left (Ray: 30 s). Yields its `ray://` address; SIGINT ends it (and its
    drivers) as Ray's own shutdown does."""
    import os
    import subprocess
    import sys

    from mcpsim.ray.local import NODE_PORTS_OFFSET

    base = ray_cluster.local.port_base
    head = ray_cluster.local.nodes[0]
    log = (tmp_path / "ray-client-server.log").open("wb")
    server = subprocess.Popen(
        [
            sys.executable, "-c", CLIENT_SERVER, str(base + 3), "--mode", "proxy", "--host", "127.0.0.1",
            "--port", str(base + 2), "--address", ray_cluster.local.address, "--node-id", head.node_id,
            f"--runtime-env-agent-address=http://127.0.0.1:{base + NODE_PORTS_OFFSET + 5}",
        ],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "TIMEOUT_FOR_SPECIFIC_SERVER_S": "2"},
    )  # fmt: skip
    ray_cluster.note(server.pid)
    try:
        yield f"ray://127.0.0.1:{base + 2}"
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)
        log.close()


def _cmdline(pid: int) -> str:
    with contextlib.suppress(psutil.Error):
        return " ".join(psutil.Process(pid).cmdline())
    return ""


def _specific_servers(ray_cluster) -> list[int]:
    """The Ray Client's per-client driver processes on the head (`ray://`: one per connected front)."""
    found = []
    for process in ray_cluster.ours():
        with contextlib.suppress(psutil.Error):
            if "specific-server" in " ".join(process.cmdline()) and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process.pid)
    return found


@pytest.mark.parametrize("how", ["auto", "ray-client"])
def test_a_front_joins_by_auto_or_ray_client(ray_cluster, tmp_path, how):
    """`--ray auto` (RAY_ADDRESS in the front's environment) and `--ray ray://HOST:PORT` (the head's Ray Client
    server) serve sessions like a GCS address does, and leave nothing behind: the instance ends with its session,
    and the Ray Client's driver on the head ends with the front."""
    with contextlib.ExitStack() as stack:
        if how == "auto":
            other = ray_cluster.front(tmp_path, address="auto", env={"RAY_ADDRESS": ray_cluster.local.address})
        else:
            address = stack.enter_context(_ray_client_server(ray_cluster, tmp_path))
            try:
                other = ray_cluster.front(tmp_path, address=address)
            except RuntimeError as exc:  # what Ray's client server said: its logs are gone with the cluster
                logs = sorted((ray_cluster.root / "ray" / "session_latest" / "logs").glob("ray_client_server*"))
                said = "".join(f"\n--- {log.name}\n{log.read_text()[-3000:]}" for log in logs)
                raise AssertionError(f"{exc}{said}") from None
            drivers = _specific_servers(ray_cluster)  # the front is a Ray Client: its driver runs on the head
            base = ray_cluster.local.port_base
            assert len(drivers) == 1 and any(f"--port={base + i} " in f"{_cmdline(drivers[0])} " for i in range(3, 10))
        _play_and_end(ray_cluster, other)


def _play_and_end(ray_cluster, other) -> None:
    from helpers.serve import survivors

    session = open_session(other.url, 40)
    status, answer = move(other.url, session)
    assert status == 200 and "FrozenLake" in answer["result"]["content"][0]["text"], answer
    for _ in range(2):  # a hole may end the episode: the game answers either way, through the same instance
        status, answer = move(other.url, session)
        assert status == 200 and answer["result"]["content"], answer
    item = of_session(other.url, session)
    ray_cluster.note(item["pid"])
    end(other.url, session)
    deadline = time.monotonic() + 10  # the node ends the instance after answering the DELETE
    while any(i["session_id"] == session for i in instances(other.url)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(i["session_id"] == session for i in instances(other.url))
    assert survivors({item["pid"]: ray_cluster.seen_pids[item["pid"]]}, deadline_s=10) == []
    other.stop(signal.SIGTERM)
    assert other.process.returncode == 0, other.log()
    deadline = time.monotonic() + 15
    while _specific_servers(ray_cluster) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _specific_servers(ray_cluster) == []
