"""JSON-response mode: a server request has no wire to the client, so it is refused at once, never left hanging."""

import anyio
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import CreateMessageResult, TextContent

from helpers.serve import server_script, start_serve, survivors


async def test_a_server_request_is_refused_at_once_in_json_response_mode(tmp_path):
    serve = start_serve(tmp_path, "--server", f"python {server_script('toolbox.py')}", "--json-response")
    asked: list[str] = []

    async def sampling(context, params) -> CreateMessageResult:
        asked.append(params.messages[0].content.text)
        return CreateMessageResult(role="assistant", content=TextContent(type="text", text="no"), model="test")

    try:
        async with Client(f"{serve.mcp}?seed=3", mode="legacy", sampling_callback=sampling) as client:
            with anyio.fail_after(30):  # the fault was a wait until the client's own timeout (60 s)
                try:
                    result = await client.call_tool("ask_model", {"prompt": "anyone there?"})
                    outcome = result.content[0].text
                    assert result.is_error, outcome
                except MCPError as exc:
                    outcome = str(exc)
            assert "sampling/createMessage" in outcome
            echoed = await client.call_tool("echo", {"text": "still here"})
            assert echoed.content[0].text.startswith("still here seed=3")
        assert asked == []
    finally:
        serve.stop()
        assert not survivors(serve.seen_descendants)
