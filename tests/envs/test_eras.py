"""Every shipped env serves both revisions (SDK 2.3 servers are dual-era): the same seeded steps either way."""

import pytest

from helpers.envs import env_client, step_record

FIRST_ACTION = {
    "frozen_lake": ("lake_move", {"action": "RIGHT"}),
    "taxi": ("taxi_move", {"action": "SOUTH"}),
    "lunar_lander": ("lander_action", {"action": "FIRE_MAIN"}),
}


async def steps(module: str, mode: str) -> list:
    async with env_client(module, 5, mode=mode) as client:
        assert client.protocol_version == ("2026-07-28" if mode != "legacy" else "2025-11-25")
        tools = [tool.name for tool in (await client.list_tools()).tools]
        name, arguments = FIRST_ACTION[module]
        assert name in tools, tools
        initial = await client.read_resource("game://initial_state")
        records = [[getattr(c, "text", None) or getattr(c, "blob", None) for c in initial.contents]]
        for _ in range(3):
            blocks, meta, is_error = step_record(await client.call_tool(name, arguments))
            if mode != "legacy":  # a 2026 result names its server in _meta; the rest must be identical
                assert meta.pop("io.modelcontextprotocol/serverInfo")["name"] == module
            records.append((blocks, meta, is_error))
        return records


@pytest.mark.parametrize("module", sorted(FIRST_ACTION))
async def test_a_shipped_env_plays_the_same_in_both_eras(module):
    assert await steps(module, "2026-07-28") == await steps(module, "legacy") == await steps(module, "auto")
