"""`mcpsim serve --stdio` with a handshake-era-only server and a 2026-07-28 client: the modern core translates.

Real processes only: the official SDK `Client(mode="2026-07-28")` launches `mcpsim serve --stdio --server ...`
(the TypeScript SDK 1.x FrozenLake example and `tests/servers/asking.cjs`, both handshake-only). A seeded
episode plays the same trajectory as `mode="legacy"`; a server request becomes an `input_required` round; a
listen gets the server's notifications on stdout, tagged with its subscription id; nothing is left running.
"""

import json
import os
import sys
import uuid

import anyio
import psutil
import pytest
from mcp import Client, StdioServerParameters

from helpers.mcp_client import model, user
from helpers.serve import REPO, TESTS

LAKE = REPO / "examples" / "js_frozen_lake"
ASKING = TESTS / "servers" / "asking.cjs"
MARK = "MCPSIM_TEST_STDIO_MARK"


@pytest.fixture(scope="module", autouse=True)
def node_modules():
    for needed in (LAKE / "node_modules" / "@modelcontextprotocol", TESTS / "node" / "node_modules"):
        if not needed.is_dir():
            pytest.fail(f"{needed} is missing: run `make node-deps` and `make node-tools`")


STARTED: set[str] = set()  # this worker's marks: another pytest-xdist worker's processes are not ours to count


def marked() -> set[int]:
    """Pids of processes started by these tests (their environment carries `MARK` with one of `STARTED`)."""
    pids = set()
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(MARK) in STARTED and proc.status() != psutil.STATUS_ZOMBIE:
                pids.add(proc.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return pids


async def assert_nothing_left() -> None:
    with anyio.move_on_after(10):
        while marked():
            await anyio.sleep(0.1)
    assert not marked(), "a process of mcpsim serve --stdio outlived its client"


def served(server: str, *args: str) -> StdioServerParameters:
    argv = ["-m", "mcpsim", "serve", "--stdio", "--server", server, "--log-level", "warning", *args]
    STARTED.add(mark := uuid.uuid4().hex)
    return StdioServerParameters(command=sys.executable, args=argv, env={**os.environ, MARK: mark})


async def play(mode: str, seed: int) -> list[tuple[str, dict]]:
    trace = []
    async with Client(served(str(LAKE), "--seed", str(seed)), mode=mode) as client:
        assert client.protocol_version == ("2025-11-25" if mode == "legacy" else "2026-07-28")
        first = await client.read_resource("game://initial_state")
        if mode != "legacy":  # one stdio client is one episode: the result names it, with no URL to reach
            assert set(first.meta) >= {"mcpsim/handle", "io.modelcontextprotocol/serverInfo"}
            assert "mcpsim/url" not in first.meta
        trace.append((first.contents[0].text, {}))
        for action in ["RIGHT", "RIGHT", "DOWN", "DOWN", "LEFT", "DOWN", "RIGHT", "RIGHT", "DOWN", "RIGHT"] * 3:
            result = await client.call_tool("lake_move", {"action": action})
            progress = (result.meta or {}).get("mcpsim", {})
            trace.append((result.content[0].text, progress))
            if progress.get("terminated") or progress.get("truncated"):
                break
    return trace


async def test_a_2026_client_plays_a_handshake_only_server_like_a_legacy_client():
    modern = await play("2026-07-28", 7)
    legacy = await play("legacy", 7)
    assert len(modern) > 2 and modern == legacy
    assert modern[1][1]["step"] == 1
    await assert_nothing_left()


async def test_server_requests_become_input_required_rounds_over_stdio():
    client = Client(served(f"node {ASKING}"), mode="2026-07-28", sampling_callback=model, elicitation_callback=user)
    async with client:
        # the SDK gives server/discover a fixed 10 s, which the first request's cold start of mcpsim's backend
        # (node, then its initialize) can exceed under `make test`'s load: start it with an untimed request first
        assert "ask_both" in {tool.name for tool in (await client.list_tools()).tools}
        discovered = await client.session.send_discover("2026-07-28")  # built from the server's initialize
        assert "2026-07-28" in discovered["supportedVersions"] and "tools" in discovered["capabilities"]
        assert discovered["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "asking"
        both = await client.call_tool("ask_both", {"prompt": "two"})  # two rounds, one held call
        assert both.content[0].text == "model said: TWO; user said: yes to The model said TWO. Agree?"
        assert both.result_type == "complete"
    await assert_nothing_left()


async def test_a_listen_over_stdio_gets_the_servers_notifications():
    async with Client(served(f"node {ASKING}"), mode="2026-07-28") as client:
        listening = client.listen(tools_list_changed=True, resource_subscriptions=["memo://note"])
        async with listening as subscription:
            assert subscription.honored.tools_list_changed is True
            assert subscription.honored.resource_subscriptions == ["memo://note"]
            assert (await client.call_tool("change", {})).content[0].text == "changed"  # the same stdio meanwhile
            seen = []
            with anyio.fail_after(20):
                async for event in subscription:
                    seen.append(type(event).__name__)
                    if len(seen) == 2:
                        break
        assert sorted(seen) == ["ResourceUpdated", "ToolsListChanged"]
        assert "changed" in (await client.read_resource("memo://note")).contents[0].text
    await assert_nothing_left()


async def test_an_unreadable_line_is_answered_with_a_parse_error_and_the_episode_goes_on():
    envelope = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    params = served(str(ASKING))
    first = {"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": envelope}}
    again = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {"_meta": envelope}}
    async with await anyio.open_process([params.command, *params.args], env=params.env, stderr=None) as proc:
        lines = []

        async def read_answers() -> None:
            buffer = b""
            async for chunk in proc.stdout:
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    lines.append(json.loads(line))
                    if len(lines) == 3:
                        return

        with anyio.fail_after(60):
            for message in (first, "{not json", again):
                text = message if isinstance(message, str) else json.dumps(message)
                await proc.stdin.send(text.encode() + b"\n")
            await read_answers()
        await proc.stdin.aclose()
        await proc.wait()
    by_id = {line.get("id"): line for line in lines}
    assert by_id[None]["error"]["code"] == -32700 and "Parse error" in by_id[None]["error"]["message"]
    assert "serverInfo" in json.dumps(by_id[1]["result"]) and "tools" in by_id[2]["result"]
    await assert_nothing_left()


async def test_requests_past_max_in_flight_and_reused_ids_are_refused_at_once_and_the_others_go_on():
    envelope = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    }

    def call(request_id: int, seconds: float) -> dict:
        params = {"_meta": envelope, "name": "wait", "arguments": {"seconds": seconds}}
        return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}

    params = served(f"node {ASKING}", "--max-in-flight", "2")
    async with await anyio.open_process([params.command, *params.args], env=params.env, stderr=None) as proc:
        answers: dict = {}  # request id -> the answers to it, in order
        buffer = b""

        async def until(request_id: int, count: int = 1) -> dict:
            nonlocal buffer
            while len(answers.get(request_id, [])) < count:
                buffer += await proc.stdout.receive()
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    message = json.loads(line)
                    answers.setdefault(message.get("id"), []).append(message)
            return answers[request_id][count - 1]

        async def send(*messages: dict) -> None:
            await proc.stdin.send(b"".join(json.dumps(message).encode() + b"\n" for message in messages))

        with anyio.fail_after(60):
            await send({"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": envelope}})
            await until(1)
            await send(call(10, 3), call(11, 3), call(12, 0), call(10, 0))  # 12: a third; 10 again: in flight
            past_limit, reused = (await until(12))["error"], (await until(10))["error"]
            assert past_limit["code"] == -32012 and "--max-in-flight allows (2)" in past_limit["message"]
            assert reused["code"] == -32600 and "already in flight" in reused["message"]
            assert 11 not in answers  # both refused at once, while the two calls still run
            for first_call in (await until(10, 2), await until(11)):
                assert first_call["result"]["content"][0]["text"] == "waited 3"
            await send(call(13, 0))  # with those answered, a request is served again
            assert (await until(13))["result"]["content"][0]["text"] == "waited 0"
        await proc.stdin.aclose()
        await proc.wait()
    await assert_nothing_left()


async def test_a_bad_max_in_flight_is_refused_before_anything_starts():
    for args, message in (
        (["--stdio", "--max-in-flight", "0"], "--max-in-flight must be between 1 and 4096, not 0"),
        (["--max-in-flight", "3"], "--max-in-flight needs --stdio"),
    ):
        argv = [sys.executable, "-m", "mcpsim", "serve", "--server", f"node {ASKING}", *args]
        result = await anyio.run_process(argv, check=False)
        assert result.returncode != 0 and message in result.stderr.decode(), result.stderr.decode()[-2000:]
