"""The listing cache follows a translated backend whose tool list changes (`tests/servers/growing.cjs`).

Handle-less lists are answered from one probe per config (`fronts/listings.py`), and a handle-bound
`tools/call` checks its `Mcp-Param-*` headers against the tool as listed. The server's `grow` adds `shout`
(whose `region` is mirrored into `Mcp-Param-Region`) and sends `notifications/tools/list_changed`: from then on
the episode's calls of `shout` are checked against its new list (a stale cache knew no `shout`, so a wrong
header passed unchecked), and the next handle-less list probes again.
"""

import json

import httpx
import pytest

from helpers.http import HTTP
from helpers.serve import TESTS, start_serve, survivors

SERVER = TESTS / "servers" / "growing.cjs"
ENVELOPE = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}


@pytest.fixture(scope="module")
def serve(tmp_path_factory):
    if not (TESTS / "node" / "node_modules").is_dir():
        pytest.fail("tests/node/node_modules is missing: run `make node-tools` (npm ci --prefix tests/node)")
    serve = start_serve(tmp_path_factory.mktemp("growing"), "--server", f"node {SERVER}")
    try:
        yield serve
    finally:
        serve.stop()
    assert not survivors(serve.seen_descendants)


def post(url: str, method: str, params: dict, headers: dict | None = None) -> httpx.Response:
    sent = {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": method, "accept": "application/json"}
    if "name" in params:
        sent["Mcp-Name"] = params["name"]
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": method,
        "params": {**params, "_meta": {**ENVELOPE, **params.get("_meta", {})}},
    }
    return HTTP.post(url, json=body, headers={**sent, **(headers or {})}, timeout=60)


def names(response: httpx.Response) -> list[str]:
    return [tool["name"] for tool in response.json()["result"]["tools"]]


def test_a_list_change_refreshes_the_listing_cache(serve):
    assert names(post(serve.mcp, "tools/list", {})) == ["grow"]  # handle-less: the probe's list, now cached
    grown = post(serve.mcp, "tools/call", {"name": "grow", "arguments": {}}).json()["result"]
    handle = grown["_meta"]["mcpsim/handle"]
    episode = f"{serve.url}/envs/{handle}/mcp"
    assert names(post(episode, "tools/list", {})) == ["grow", "shout"]
    shout = {"name": "shout", "arguments": {"region": "eu"}}
    wrong = post(episode, "tools/call", shout, {"Mcp-Param-Region": "us"})
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == -32020, wrong.text  # checked, new list
    right = post(episode, "tools/call", shout, {"Mcp-Param-Region": "eu"}).json()["result"]
    assert right["content"][0]["text"] == "EU!"
    assert names(post(serve.mcp, "tools/list", {})) == ["grow"]  # a fresh probe: a new episode has no shout
    assert "mcpsim_listing_refreshes_total 1.0" in serve.get("/metrics").text


def test_a_handle_less_listen_hears_its_configs_list_changes(serve):
    headers = {
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": "subscriptions/listen",
        "accept": "text/event-stream",
    }
    asked = {"toolsListChanged": True, "promptsListChanged": True, "resourceSubscriptions": ["memo://x"]}
    body = {"jsonrpc": "2.0", "id": "l1", "method": "subscriptions/listen", "params": {"_meta": ENVELOPE}}
    body["params"]["notifications"] = asked
    frames = []
    with HTTP.stream("POST", serve.mcp, json=body, headers=headers, timeout=60) as stream:
        lines = (line for line in stream.iter_lines() if line.startswith("data:"))
        frames.append(json.loads(next(lines)[5:]))
        grown = post(serve.mcp, "tools/call", {"name": "grow", "arguments": {}})  # another episode: no handle
        assert grown.status_code == 200, grown.text
        frames.append(json.loads(next(lines)[5:]))
    ack, changed = frames
    assert ack["method"] == "notifications/subscriptions/acknowledged"
    assert ack["params"]["notifications"] == {"toolsListChanged": True}  # what the server can announce, no more
    assert changed["method"] == "notifications/tools/list_changed"
    assert changed["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == "l1"


def test_a_handle_less_listen_hears_a_2026_backends_list_changes(tmp_path):
    """A 2026-07-28 backend announces a change only on a listen opened on its own instance: mcpsim opens one on
    each instance minted while a handle-less listen of its config is open, so the change still reaches it."""
    conformance = start_serve(tmp_path, "--server", f"{{python}} {TESTS / 'servers' / 'conformance_server.py'}")
    try:
        headers = {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "subscriptions/listen"}
        body = {"jsonrpc": "2.0", "id": "l2", "method": "subscriptions/listen", "params": {"_meta": ENVELOPE}}
        body["params"]["notifications"] = {"promptsListChanged": True}
        with HTTP.stream(
            "POST", conformance.mcp, json=body, headers={**headers, "accept": "text/event-stream"}, timeout=30
        ) as stream:
            lines = (line for line in stream.iter_lines() if line.startswith("data:"))
            ack = json.loads(next(lines)[5:])
            tools = post(conformance.mcp, "tools/call", {"name": "test_trigger_tool_change", "arguments": {}})
            prompts = post(conformance.mcp, "tools/call", {"name": "test_trigger_prompt_change", "arguments": {}})
            assert tools.status_code == prompts.status_code == 200, (tools.text, prompts.text)
            changed = json.loads(next(lines)[5:])
    finally:
        conformance.stop()
    assert ack["method"] == "notifications/subscriptions/acknowledged"
    assert changed["method"] == "notifications/prompts/list_changed"  # the tools change was not asked for
    assert changed["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == "l2"
    assert not survivors(conformance.seen_descendants)
