"""A handshake-era-only backend (TypeScript SDK 1.x, `tests/servers/asking.cjs`) behind mcpsim, a 2026-07-28 client.

The server asks its client mid-call (sampling, elicitation, roots); mcpsim turns each ask into an
`input_required` round and resumes the held call with the client's `inputResponses`. The official Python SDK
client in `mode="2026-07-28"` drives the rounds itself, so a test that passes shows the whole loop works.
"""

import time

import anyio
import httpx
import pytest
from mcp import Client
from mcp.types import ListRootsResult, Root

from helpers.http import HTTP
from helpers.mcp_client import model, user
from helpers.serve import TESTS, start_serve, survivors

SERVER = TESTS / "servers" / "asking.cjs"
NODE_SDK = TESTS / "node" / "node_modules" / "@modelcontextprotocol" / "sdk"
ENVELOPE = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}


@pytest.fixture(scope="module")
def serve(tmp_path_factory):
    if not NODE_SDK.is_dir():
        pytest.fail("tests/node/node_modules is missing: run `make node-tools` (npm ci --prefix tests/node)")
    # --request-timeout 8: a held call waits at most 8 s for its retry (min(120 s, the timeout))
    serve = start_serve(tmp_path_factory.mktemp("rounds"), "--server", f"node {SERVER}", "--request-timeout", "8")
    try:
        yield serve
    finally:
        serve.stop()
    assert not survivors(serve.seen_descendants)


async def roots(context):
    return ListRootsResult(roots=[Root(uri="file:///work", name="work"), Root(uri="file:///tmp", name="tmp")])


async def test_server_requests_become_input_required_rounds(serve):
    client = Client(
        serve.mcp, mode="2026-07-28", sampling_callback=model, elicitation_callback=user, list_roots_callback=roots
    )
    async with client:
        asked = await client.call_tool("ask_model", {"prompt": "hello"})
        assert asked.content[0].text == "model said: HELLO"
        handle = asked.meta["mcpsim/handle"]
        both = await client.call_tool("ask_both", {"prompt": "two"}, meta={"mcpsim/handle": handle})  # two rounds
        assert both.content[0].text == "model said: TWO; user said: yes to The model said TWO. Agree?"
        assert both.meta["mcpsim/handle"] == handle
        listed = await client.call_tool("ask_roots", {}, meta={"mcpsim/handle": handle})
        assert listed.content[0].text == "roots: work, tmp"
    metrics = dict(line.split() for line in serve.get("/metrics").text.splitlines() if line.startswith("mcpsim_input"))
    assert float(metrics["mcpsim_input_rounds_total"]) >= 4 and metrics["mcpsim_input_held"] == "0.0"


def result_of(response: httpx.Response) -> dict:
    answer = response.json()
    assert "result" in answer, answer
    return answer["result"]


def post(url: str, params: dict, rpc_id: int = 1, name: str = "ask_user") -> httpx.Response:
    headers = {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": name}
    body = {"jsonrpc": "2.0", "id": rpc_id, "method": "tools/call", "params": {"name": name, **params}}
    return HTTP.post(url, json=body, headers={**headers, "accept": "application/json"}, timeout=60)


def test_the_wire_of_a_round(serve):
    """The raw rounds: the ask, a retry missing the answer (asked again), a tampered or reused state (-32602),
    and a request that did not declare the capability (-32021 naming it)."""
    asking = {**ENVELOPE, "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}}}
    params = {"arguments": {"question": "Ready?"}, "_meta": asking}
    first = result_of(post(serve.mcp, params))
    assert first["resultType"] == "input_required"
    [(key, ask)] = first["inputRequests"].items()
    assert ask["method"] == "elicitation/create" and ask["params"]["message"] == "Ready?"
    state = first["requestState"]
    assert state.startswith(f"mcpsim1.{first['_meta']['mcpsim/handle']}.r.")

    extra = {"other": {"action": "decline"}}  # a key nobody asked for: ignored, the real one asked again
    again = result_of(post(serve.mcp, {**params, "requestState": state, "inputResponses": extra}, 2))
    assert again["resultType"] == "input_required" and list(again["inputRequests"]) == [key]
    assert post(serve.mcp, {**params, "requestState": state}, 3).json()["error"]["code"] == -32602  # used once

    other = result_of(post(serve.mcp, {"arguments": {}, "_meta": ENVELOPE}, 7, "log"))["_meta"]["mcpsim/handle"]
    stolen = again["requestState"].replace(first["_meta"]["mcpsim/handle"], other)  # bound to its own handle
    assert post(serve.mcp, {**params, "requestState": stolen}, 8).json()["error"]["code"] == -32602
    tampered = again["requestState"][:-4] + "AAAA"
    assert post(serve.mcp, {**params, "requestState": tampered}, 4).json()["error"]["code"] == -32602
    answer = {key: {"action": "accept", "content": {"answer": "go"}}}
    done = post(serve.mcp, {**params, "requestState": again["requestState"], "inputResponses": answer}, 5).json()
    assert done["result"]["resultType"] == "complete"
    assert done["result"]["content"][0]["text"] == "user said: go"

    undeclared = post(serve.mcp, {"arguments": {"prompt": "x"}, "_meta": ENVELOPE}, 6, "ask_model")
    assert undeclared.status_code == 400
    error = undeclared.json()["error"]
    assert error["code"] == -32021 and error["data"] == {"requiredCapabilities": {"sampling": {}}}


async def test_notifications_reach_a_listen_and_logs_only_the_requests_that_ask(serve):
    """Item 2: the backend's list_changed and resources/updated reach a listen on the episode's handle (and only
    what the filter admits: prompts are not announced by this server, so not honoured); its log messages reach a
    request only at or above that request's own logLevel, and none without one."""
    logs: list[tuple[str, str]] = []

    async def keep(params):
        logs.append((params.level, params.data))

    async with Client(serve.mcp, mode="2026-07-28", logging_callback=keep) as client:
        handle = (await client.read_resource("memo://note")).meta["mcpsim/handle"]
        mine = {"mcpsim/handle": handle}
        assert (await client.call_tool("log", {}, meta=mine)).content[0].text == "logged"
        assert logs == []  # no logLevel on the request: the spec's MUST NOT
        async with Client(f"{serve.url}/envs/{handle}/mcp", mode="2026-07-28") as watcher:
            listening = watcher.listen(
                tools_list_changed=True, prompts_list_changed=True, resource_subscriptions=["memo://note"]
            )
            async with listening as subscription:
                assert subscription.honored.tools_list_changed is True
                assert not subscription.honored.prompts_list_changed
                assert subscription.honored.resource_subscriptions == ["memo://note"]
                await client.call_tool("change", {}, meta=mine)
                seen = []
                with anyio.fail_after(20):
                    async for event in subscription:
                        seen.append(event)
                        if len(seen) == 2:
                            break
        assert sorted(type(event).__name__ for event in seen) == ["ResourceUpdated", "ToolsListChanged"]
        assert any(getattr(event, "uri", None) == "memo://note" for event in seen)
    async with Client(serve.mcp, mode="2026-07-28", logging_callback=keep, log_level="warning") as client:
        await client.call_tool("log", {}, meta=mine)
    assert logs == [("warning", "a warning message"), ("error", "a error message")]


def test_a_held_call_expires(serve):
    """Nobody retries: after the held call's limit (here 8 s) the state is refused and the episode goes on."""
    asking = {**ENVELOPE, "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}}}
    params = {"arguments": {"question": "Still there?"}, "_meta": asking}
    first = result_of(post(serve.mcp, params))
    time.sleep(10)
    late = post(serve.mcp, {**params, "requestState": first["requestState"], "inputResponses": {}}, 2).json()
    assert late["error"] == {"code": -32602, "message": "Invalid or expired requestState", "data": None}
    handle = {"mcpsim/handle": first["_meta"]["mcpsim/handle"]}
    logged = post(serve.mcp, {"arguments": {}, "_meta": {**ENVELOPE, **handle}}, 3, "log").json()
    assert logged["result"]["content"][0]["text"] == "logged"


def test_held_calls_are_bounded_per_episode(serve):
    """The 17th call held on one episode ends the oldest (its state is then refused); the others still resume."""
    asking = {**ENVELOPE, "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}}}
    first = result_of(post(serve.mcp, {"arguments": {"question": "q0"}, "_meta": asking}))
    meta = {**asking, "mcpsim/handle": first["_meta"]["mcpsim/handle"]}
    rounds = [first] + [
        result_of(post(serve.mcp, {"arguments": {"question": f"q{n}"}, "_meta": meta}, n + 1)) for n in range(16)
    ]
    assert all(r["resultType"] == "input_required" for r in rounds)

    def resume(index: int) -> dict:
        r = rounds[index]
        [key] = r["inputRequests"]
        answer = {key: {"action": "accept", "content": {"answer": f"a{index}"}}}
        params = {"arguments": {"question": f"q{index}"}, "_meta": meta, "requestState": r["requestState"]}
        return post(serve.mcp, {**params, "inputResponses": answer}, 100 + index).json()

    assert resume(0)["error"]["code"] == -32602  # evicted by the 17th
    assert resume(16)["result"]["content"][0]["text"] == "user said: a16"
    assert resume(1)["result"]["content"][0]["text"] == "user said: a1"
