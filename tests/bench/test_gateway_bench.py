"""`mcpsim bench --gateway`: its settings, its refusal without supergateway, and its raw client on a real server.

The comparison itself needs supergateway from npm, so it is not run here (docs/performance.md has the figures);
what is checked is that a missing gateway or a bad session count is refused by name before anything starts, and
that the minimal client the comparison drives both servers with really opens a session and reads SSE answers.
"""

import subprocess
import sys

import httpx2
import pytest

from mcpsim.bench.gateway import GatewaySettings, RawSession
from mcpsim.errors import ConfigError


def test_a_missing_supergateway_is_refused_naming_how_to_install_it(tmp_path):
    argv = [sys.executable, "-m", "mcpsim", "bench", "--gateway", "4", "--gateway-bin", str(tmp_path / "none")]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode != 0
    assert "supergateway not found" in result.stderr and "npm install" in result.stderr


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [({"sessions": (0,)}, "between 1 and"), ({"sessions": ()}, "between 1 and"), ({"seconds": 0.1}, "seconds")],
)
def test_bad_gateway_settings_are_refused_by_name(kwargs, words):
    with pytest.raises(ConfigError, match=words):
        GatewaySettings(**kwargs)


async def test_the_raw_client_opens_a_session_and_reads_its_answers(frozen_lake_server):
    async with httpx2.AsyncClient(timeout=60) as http:
        session = RawSession(http, f"{frozen_lake_server.mcp}?seed=2")
        await session.open()
        assert "mcp-session-id" in session.headers
        answers = [await session.call(action) for action in ("LEFT", "DOWN")]
        await session.close()
    assert [answer["id"] for answer in answers] == [3, 4]
    assert all("mcpsim" in answer["result"]["_meta"] for answer in answers)  # FrozenLake's reward and end flags
