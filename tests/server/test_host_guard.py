"""DNS-rebinding protection: on loopback, mcpsim refuses requests that name another host or origin."""

import pytest

from helpers.http import HTTP
from helpers.mcp_client import ACCEPT, INIT
from mcpsim.server.auth import is_loopback


def instance_count(serve) -> int:
    return len(serve.get("/api/instances").json())


def test_a_foreign_host_or_origin_is_refused_before_an_instance_starts(frozen_lake_server):
    serve = frozen_lake_server
    before = instance_count(serve)
    rebound = HTTP.post(f"{serve.mcp}?seed=1", json=INIT, headers={**ACCEPT, "host": "evil.example.com"})
    assert rebound.status_code == 421
    assert "'evil.example.com' is not a loopback name" in rebound.json()["error"]["message"]
    foreign = HTTP.post(f"{serve.mcp}?seed=1", json=INIT, headers={**ACCEPT, "origin": "http://evil.example.com"})
    assert foreign.status_code == 403
    assert "Origin 'http://evil.example.com'" in foreign.json()["error"]["message"]
    api = HTTP.post(f"{serve.url}/api/instances", json={"seed": 1}, headers={"host": "localhost.evil.example.com"})
    assert api.status_code == 421
    assert instance_count(serve) == before


def test_loopback_hosts_and_origins_are_served(frozen_lake_server):
    serve = frozen_lake_server
    port = serve.url.rsplit(":", 1)[1]
    for host, origin in [(f"localhost:{port}", f"http://localhost:{port}"), (f"127.0.0.1:{port}", None)]:
        headers = {"host": host, **({"origin": origin} if origin else {})}
        assert HTTP.get(f"{serve.url}/health", headers=headers).status_code == 200
    origin = {"origin": f"http://127.0.0.1:{port}"}
    opened = HTTP.post(f"{serve.mcp}?seed=1", json=INIT, headers={**ACCEPT, **origin}, timeout=60)
    assert opened.status_code == 200
    HTTP.delete(serve.mcp, headers={"mcp-session-id": opened.headers["mcp-session-id"]}, timeout=30)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.2.1", True),
        ("localhost", True),
        ("LocalHost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("192.168.1.10", False),
        ("evil.example.com", False),
        ("localhost.evil.example.com", False),
        ("127.0.0.1.nip.io", False),
        ("", False),
        (None, False),
    ],
)
def test_what_counts_as_loopback(host, loopback):
    assert is_loopback(host) is loopback
