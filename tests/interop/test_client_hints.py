"""What eval-protocol / reward-kit clients send, spoken raw: seed and config in `clientInfo` extras (plain, or
nested under `_extra` as their pydantic models serialize them), a `/` appended to the URL, and `/control/*`
requests keyed by the client's own session key, forwarded to the session's own (HTTP) instance."""

import hashlib
import json
from typing import Any

import httpx
import pytest

from helpers.http import HTTP
from helpers.mcp_client import ACCEPT
from helpers.serve import ServeProcess, port_range
from interop.clients import ep_server_command, lake_module

LAKE = lake_module()
JSON = {**ACCEPT, "content-type": "application/json"}


def initialize(client_info: dict[str, Any]) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": client_info},
    }


def answer_of(response: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC message of a response, whether a JSON body or an SSE stream of one message."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
        return json.loads(data[-1])
    return response.json()


def open_session(serve: ServeProcess, path: str, client_info: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Open a session at `path`; its session id and its instance as `/api/instances` lists it."""
    response = HTTP.post(f"{serve.url}{path}", json=initialize(client_info), headers=JSON, timeout=60)
    assert response.status_code == 200, response.text
    session_id = response.headers["mcp-session-id"]
    listed = [item for item in serve.get("/api/instances").json() if item["session_id"] == session_id]
    assert len(listed) == 1
    return session_id, listed[0]


def move(serve: ServeProcess, session_id: str, action: str) -> None:
    """One `lake_move` on the session, raw (after the `initialized` notification its client owes)."""
    headers = {**JSON, "mcp-session-id": session_id, "mcp-protocol-version": "2025-06-18"}
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert HTTP.post(serve.mcp, json=note, headers=headers, timeout=30).status_code == 202
    params = {"name": "lake_move", "arguments": {"action": action}}
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": params}
    answer = answer_of(HTTP.post(serve.mcp, json=call, headers=headers, timeout=60))
    assert not answer["result"].get("isError"), answer


def close(serve: ServeProcess, session_id: str) -> None:
    HTTP.delete(f"{serve.mcp}", headers={**ACCEPT, "mcp-session-id": session_id}, timeout=30)


@pytest.mark.parametrize(
    ("path", "client_info", "seed"),
    [
        ("/mcp", {"name": "reward-kit", "version": "1.0.0", "_extra": {"seed": 42, "session_id": "k"}}, 42),
        ("/mcp/", {"name": "eval-protocol", "version": "1", "seed": 7}, 7),  # plain extras, URL with a slash
        ("/mcp?seed=3", {"name": "reward-kit", "version": "1", "_extra": {"seed": 42}}, 3),  # the query wins
        ("/mcp?seed=42/", {"name": "t", "version": "1"}, 42),  # a client appended / after the query string
        ("/mcp/?seed=5", {"name": "t", "version": "1"}, 5),
    ],
)
def test_the_seed_comes_from_the_query_else_from_client_info(frozen_lake_server, path, client_info, seed):
    session_id, instance = open_session(frozen_lake_server, path, client_info)
    try:
        assert instance["seed"] == seed
    finally:
        close(frozen_lake_server, session_id)


def test_bad_hints_in_client_info_are_refused_naming_them(frozen_lake_server):
    bad = [({"seed": "abc"}, "clientInfo: invalid seed 'abc'"), ({"config": [1]}, "clientInfo: invalid config")]
    for extra, named in bad:
        body = initialize({"name": "t", "version": "1", "_extra": extra})
        response = HTTP.post(frozen_lake_server.mcp, json=body, headers=JSON, timeout=30)
        assert response.status_code == 400
        assert named in response.json()["error"]["message"]


def test_control_requests_need_a_known_session_with_an_http_backend(frozen_lake_server):
    url = f"{frozen_lake_server.url}/control/reward"
    missing = HTTP.get(url, timeout=30)
    assert missing.status_code == 400 and "mcp-session-id" in missing.json()["error"]["message"]
    unknown = HTTP.get(url, headers={"mcp-session-id": "nobody"}, timeout=30)
    assert unknown.status_code == 404 and "nobody" in unknown.json()["error"]["message"]
    session_id, _ = open_session(frozen_lake_server, "/mcp", {"name": "t", "version": "1", "session_id": "key-1"})
    try:
        for key in (session_id, "key-1"):
            stdio = HTTP.get(url, headers={"mcp-session-id": key}, timeout=30)
            assert stdio.status_code == 404 and "stdio server" in stdio.json()["error"]["message"]
    finally:
        close(frozen_lake_server, session_id)
    gone = HTTP.get(url, headers={"mcp-session-id": "key-1"}, timeout=30)
    assert gone.status_code == 404  # the key went with its session


def test_control_requests_reach_the_sessions_own_instance(serve_factory):
    serve = serve_factory("--server", ep_server_command(), "--port-range", port_range(1760, 10))
    info = {"name": "reward-kit", "version": "1.0.0", "_extra": {"seed": 12, "session_id": "client-key-a"}}
    first, _ = open_session(serve, "/mcp/", info)
    other, _ = open_session(serve, "/mcp", {**info, "_extra": {"seed": 31, "session_id": "client-key-b"}})
    try:
        control = f"{serve.url}/control"
        by_key = HTTP.get(f"{control}/initial_state", headers={"mcp-session-id": "client-key-a"}, timeout=30)
        assert by_key.status_code == 200
        assert by_key.json()["grid"] == "\n".join(LAKE.generate_map(12))
        b = HTTP.get(f"{control}/initial_state", headers={"mcp-session-id": "client-key-b"}, timeout=30)
        assert b.json()["grid"] == "\n".join(LAKE.generate_map(31))
        move(serve, first, LAKE.shortest_path(LAKE.generate_map(12))[0])
        # the step is in the episode the server keeps under the client's key, whichever name the client uses:
        # mcpsim's own session id is asked for under the client's key
        for key in ("client-key-a", first):
            status = HTTP.get(f"{control}/status", headers={"mcp-session-id": key}, timeout=30)
            assert status.json() == {"terminated": False, "truncated": False, "step_count": 1, "total_reward": 0.0}
        b_status = HTTP.get(f"{control}/status", headers={"mcp-session-id": "client-key-b"}, timeout=30)
        assert b_status.json()["step_count"] == 0  # b's own instance, untouched
        reset = HTTP.post(
            f"{control}/reset_session", headers={"mcp-session-id": "client-key-a"}, json={"seed": 12}, timeout=30
        )
        assert reset.status_code == 200 and reset.json() == {"message": "Session reset successfully"}
        status = HTTP.get(f"{control}/status", headers={"mcp-session-id": first}, timeout=30)
        assert status.json()["step_count"] == 0
        # reward-kit 0.4 sends no session_id: its key is the MD5 of seed, config, name and version
        rk_info = {"name": "reward-kit", "version": "1.0.0", "_extra": {"seed": 44, "config": {"seed": 44}}}
        rk_session, _ = open_session(serve, "/mcp/", rk_info)
        stable = {"seed": 44, "config": {"seed": 44}, "name": "reward-kit", "version": "1.0.0"}
        rk_key = hashlib.md5(json.dumps(stable, sort_keys=True).encode()).hexdigest()
        move(serve, rk_session, LAKE.shortest_path(LAKE.generate_map(44))[0])
        rk_status = HTTP.get(f"{control}/status", headers={"mcp-session-id": rk_key}, timeout=30)
        assert rk_status.status_code == 200 and rk_status.json()["step_count"] == 1
        close(serve, rk_session)
        # the server's own answers pass through as they are, status included
        unknown_route = HTTP.get(f"{control}/nothing", headers={"mcp-session-id": "client-key-a"}, timeout=30)
        assert unknown_route.status_code == 404
    finally:
        close(serve, first)
        close(serve, other)
