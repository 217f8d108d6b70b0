"""`mcpsim serve --fast-io`: uvloop and httptools under the same front, same episodes, same cleanup.

The event loop and HTTP parser are swapped under everything (the fork server's sockets, stdio pipes, SSE
streams), so the same trajectories as the standard stack and a clean shutdown are what is checked.
"""

import importlib.util

import pytest

from helpers.mcp_client import initial_map, lake, move

pytestmark = pytest.mark.skipif(
    not (importlib.util.find_spec("uvloop") and importlib.util.find_spec("httptools")),
    reason="uvloop and httptools are not installed (extra `fast`)",
)
ACTIONS = ["RIGHT", "DOWN", "LEFT", "DOWN", "RIGHT"]


async def trace(url: str, seed: int) -> list:
    async with lake(url, seed) as client:
        return [await initial_map(client)] + [await move(client, action) for action in ACTIONS]


async def test_fast_io_serves_the_same_episodes_as_the_standard_stack(serve_factory):
    standard = serve_factory("--env", "frozen_lake", "--fork-server")
    fast = serve_factory("--env", "frozen_lake", "--fork-server", "--fast-io")
    for seed in (1, 7):
        assert await trace(fast.url, seed) == await trace(standard.url, seed)
    assert "(uvloop loop, httptools)" in fast.log()
    assert "(asyncio loop, h11)" in standard.log()
    assert fast.get("/health").json()["fork_server"]["active"]
