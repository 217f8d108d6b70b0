"""A 2026-07-28 backend behind mcpsim (the conformance server, dual-era): passed through, not translated.

Multi round-trip requests keep the server's own input keys and sealed `requestState` (mcpsim wraps the state
with the handle, so a handle-less retry reaches the instance that asked), and a `subscriptions/listen` on an
episode's handle carries that episode's events, tagged with the client's own listen id.
"""

import json
import threading

import httpx
import pytest
from mcp import Client
from mcp.types import ElicitResult

from helpers.http import HTTP
from helpers.serve import server_script, start_serve, survivors

ENVELOPE = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}


def call(url: str, name: str, rpc_id: int = 1) -> httpx.Response:
    headers = {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": name}
    body = {"jsonrpc": "2.0", "id": rpc_id, "method": "tools/call", "params": {"name": name, "arguments": {}}}
    body["params"]["_meta"] = ENVELOPE
    return HTTP.post(url, json=body, headers={**headers, "accept": "application/json"}, timeout=60)


@pytest.fixture(scope="module")
def serve(tmp_path_factory):
    serve = start_serve(
        tmp_path_factory.mktemp("passthrough"),
        "--server",
        f"{{python}} {server_script('conformance_server.py')}",
        "--fork-server",
    )
    try:
        yield serve
    finally:
        serve.stop()
    assert not survivors(serve.seen_descendants)


def test_a_handle_less_call_with_bad_param_headers_starts_no_instance(serve):
    """`Mcp-Param-*` headers are checked against the cached listing before a handle-less call gets an instance:
    a request that is refused (-32020, 400) costs no instance (a flood of them cannot exhaust --port-range)."""
    minted = serve.log().count("handle minted")
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call"}
    body["params"] = {"name": "test_custom_header", "arguments": {"region": "us-west1"}, "_meta": ENVELOPE}
    headers = {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "test_custom_header"}
    for region in ("eu-north1", None):  # a mismatch, then a missing header
        sent = {**headers, **({"Mcp-Param-Region": region} if region else {}), "accept": "application/json"}
        answer = HTTP.post(serve.mcp, json=body, headers=sent, timeout=60)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["code"] == -32020
    assert serve.log().count("handle minted") == minted
    sent = {**headers, "Mcp-Param-Region": "us-west1", "accept": "application/json"}
    answer = HTTP.post(serve.mcp, json=body, headers=sent, timeout=60).json()
    assert answer["result"]["content"][0]["text"] == "region: us-west1"
    assert serve.log().count("handle minted") == minted + 1  # the count above can fail


async def test_mrtr_round_trip_and_listen_through_mcpsim(serve):
    asked = []

    async def answer(context, params):
        asked.append(params.message)
        return ElicitResult(action="accept", content={"ok": True})

    async with Client(serve.mcp, mode="2026-07-28", elicitation_callback=answer) as client:
        result = await client.call_tool("test_input_required_result_request_state", {})  # no handle at all
    assert asked == ["Please confirm"]
    assert result.content[0].text == "state-ok: confirmed=True"

    first = call(serve.mcp, "test_simple_text").json()["result"]
    handle = first["_meta"]["mcpsim/handle"]
    envs = f"{serve.url}/envs/{handle}/mcp"
    frames: list[dict] = []
    opened = threading.Event()

    def listen() -> None:
        headers = {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "subscriptions/listen"}
        body = {"jsonrpc": "2.0", "id": "mine", "method": "subscriptions/listen", "params": {"_meta": ENVELOPE}}
        body["params"]["notifications"] = {"toolsListChanged": True}
        with HTTP.stream("POST", envs, json=body, headers={**headers, "accept": "text/event-stream"}) as s:
            for line in s.iter_lines():
                if line.startswith("data:"):
                    frames.append(json.loads(line[5:]))
                    opened.set()
                    if len(frames) == 2:
                        return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert opened.wait(30), "the listen stream was acknowledged"
    assert call(envs, "test_trigger_tool_change", 2).status_code == 200
    listener.join(30)
    assert [frame["method"] for frame in frames] == [
        "notifications/subscriptions/acknowledged",
        "notifications/tools/list_changed",
    ]
    assert {frame["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] for frame in frames} == {"mine"}
    assert serve.get("/health").status_code == 200
