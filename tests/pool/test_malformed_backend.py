"""A server that breaks the protocol fails only the request concerned: the instance and its session go on."""

import anyio
import pytest
from mcp import Client

from helpers.serve import server_script


@pytest.fixture
def rogue(serve_factory):
    return serve_factory("--server", f"python {server_script('rogue.py')}", "--max-message-bytes", "1048576")


async def test_a_malformed_tool_result_is_a_json_rpc_error_and_the_instance_stays(rogue):
    async with Client(f"{rogue.mcp}?seed=1", mode="legacy") as client:
        assert (await client.call_tool("well", {})).content[0].text == "calls 1"
        with pytest.raises(Exception, match="'content' must be a list of content blocks, got int"):
            await client.call_tool("malformed", {})
        assert (await client.call_tool("well", {})).content[0].text == "calls 3"  # the same instance


async def test_an_oversized_server_line_fails_its_request_only(rogue):
    async with (
        Client(f"{rogue.mcp}?seed=1", mode="legacy") as client,
        Client(f"{rogue.mcp}?seed=2", mode="legacy") as other,
    ):
        with anyio.fail_after(30), pytest.raises(Exception, match="larger than --max-message-bytes"):
            await client.call_tool("huge", {"mb": 3})
        assert (await client.call_tool("well", {})).content[0].text == "calls 2"
        assert (await other.call_tool("well", {})).content[0].text == "calls 1"
    assert "instance.oversized" in rogue.log() or "larger than --max-message-bytes" in rogue.log()
