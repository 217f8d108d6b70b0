"""Every kind of MCP message passes through the managed server unmodified, both ways, on stdio and HTTP backends."""

import json

import anyio
import httpx
import pytest
from mcp import Client
from mcp.types import CreateMessageResult, TextContent

from helpers.http import HTTP
from helpers.serve import port_range, server_script


@pytest.fixture(scope="module", params=["stdio", "http"])
def toolbox(request, tmp_path_factory):
    from helpers.serve import start_serve, survivors

    template = f"python {server_script('toolbox.py')}"
    if request.param == "http":
        template += " --port {port}"
    serve = start_serve(tmp_path_factory.mktemp("toolbox"), "--server", template, "--port-range", port_range(0, 100))
    yield serve
    serve.stop()
    assert not survivors(serve.seen_descendants)


async def test_tools_resources_prompts_pass_through(toolbox):
    async with Client(f"{toolbox.mcp}?seed=5", mode="legacy") as client:
        assert client.instructions == "toolbox seed 5"
        assert client.server_info.name == "toolbox"
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert {"echo", "crash", "slow", "chatty", "progress", "change_tools", "ask_model"} <= tools
        result = await client.call_tool("echo", {"text": "hi"})
        assert result.content[0].text.startswith("hi seed=5 calls=1")
        info = await client.read_resource("data://info")
        assert json.loads(info.contents[0].text)["seed"] == 5
        templates = await client.list_resource_templates()
        assert templates.resource_templates[0].uri_template == "data://items/{item}"
        assert (await client.read_resource("data://items/abc")).contents[0].text == "item abc"
        prompts = await client.list_prompts()
        assert prompts.prompts[0].name == "greeting"
        prompt = await client.get_prompt("greeting", {"name": "Ada"})
        assert prompt.messages[0].content.text == "Hello Ada, seed 5"


async def test_progress_and_logging_notifications_reach_the_client(toolbox):
    progress: list[tuple[float, float | None, str | None]] = []
    logs: list[str] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    async def on_log(params) -> None:
        logs.append(params.data)

    async with Client(f"{toolbox.mcp}?seed=1", mode="legacy", logging_callback=on_log) as client:
        result = await client.call_tool("progress", {"steps": 3}, progress_callback=on_progress)
        assert result.content[0].text == "done"
    assert progress == [(1, 3, "step 1"), (2, 3, "step 2"), (3, 3, "step 3")]
    assert logs == ["progress log 1", "progress log 2", "progress log 3"]


async def test_list_changed_notification_reaches_the_client(toolbox):
    seen: list[str] = []

    async def handler(message) -> None:
        method = getattr(getattr(message, "root", message), "method", None)
        if method:
            seen.append(method)

    async with Client(f"{toolbox.mcp}?seed=2", mode="legacy", message_handler=handler) as client:
        await client.call_tool("change_tools", {})
        with anyio.fail_after(5):
            while "notifications/tools/list_changed" not in seen:
                await anyio.sleep(0.02)
        tools = {tool.name for tool in (await client.list_tools(cache_mode="refresh")).tools}
        assert "added_tool" in tools


async def test_server_to_client_sampling_request_round_trips(toolbox):
    asked: list[str] = []

    async def sampling(context, params) -> CreateMessageResult:
        asked.append(params.messages[0].content.text)
        return CreateMessageResult(role="assistant", content=TextContent(type="text", text="forty-two"), model="test")

    async with Client(f"{toolbox.mcp}?seed=3", mode="legacy", sampling_callback=sampling) as client:
        result = await client.call_tool("ask_model", {"prompt": "meaning of life?"})
    assert asked == ["meaning of life?"]
    assert result.content[0].text == "model said: forty-two"


def _fast_requests(serve) -> float:
    text = HTTP.get(f"{serve.url}/metrics").text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith("mcpsim_session_requests_fast"))


async def test_session_requests_take_the_envelope_only_path_with_their_streams_intact(toolbox):
    # fronts/fastpost.py: a plain request is carried without the SDK transport; its progress, its server request
    # (sampling) and its answer must still reach that request's own stream
    before = _fast_requests(toolbox)
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async def sampling(context, params) -> CreateMessageResult:
        return CreateMessageResult(role="assistant", content=TextContent(type="text", text="yes"), model="test")

    async with Client(f"{toolbox.mcp}?seed=7", mode="legacy", sampling_callback=sampling) as client:
        assert (await client.call_tool("progress", {"steps": 2}, progress_callback=on_progress)).content[
            0
        ].text == "done"
        assert (await client.call_tool("ask_model", {"prompt": "ok?"})).content[0].text == "model said: yes"
        assert (await client.call_tool("echo", {"text": "x"})).content[0].text.startswith("x seed=7")
    assert progress == [1, 2]
    assert _fast_requests(toolbox) - before >= 3
    # a request with a member beyond the envelope is the SDK transport's to judge, and still answered
    async with httpx.AsyncClient(timeout=30) as http:
        headers = await _open_raw_session(http, toolbox.mcp, seed=8)
        before = _fast_requests(toolbox)
        odd = {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": "y"}},
        }
        answer = await http.post(toolbox.mcp, json={**odd, "extra": 1}, headers=headers)
        assert '"id":2' in answer.text and "y seed=8" in answer.text
        assert _fast_requests(toolbox) == before
        await http.delete(toolbox.mcp, headers=headers)


async def test_a_fast_path_request_in_flight_ends_when_its_session_is_deleted(toolbox):
    async with httpx.AsyncClient(timeout=30) as http:
        headers = await _open_raw_session(http, toolbox.mcp, seed=9)
        before = _fast_requests(toolbox)
        slow = {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "slow", "arguments": {"seconds": 60}},
        }
        with anyio.fail_after(15):  # not the 60 s the call would take: the deleted session ends its stream
            async with http.stream("POST", toolbox.mcp, json=slow, headers=headers) as response:
                # the event stream opens once the request is on its way to the instance
                assert response.headers["content-type"].startswith("text/event-stream")
                assert (await http.delete(toolbox.mcp, headers=headers)).status_code in (200, 204)
                body = (await response.aread()).decode()
    assert '"result"' not in body  # the session's end, not an answer
    assert _fast_requests(toolbox) == before + 1


async def _open_raw_session(http: httpx.AsyncClient, mcp: str, seed: int) -> dict[str, str]:
    """A handshake-era session opened by hand (no SDK client); returns the headers its later requests carry."""
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    init = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    opened = await http.post(
        f"{mcp}?seed={seed}", json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init}, headers=headers
    )
    headers |= {"mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
    await http.post(mcp, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
    return headers
