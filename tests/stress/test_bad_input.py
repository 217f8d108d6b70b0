"""Bad input, fuzzed: every malformed request gets a clear 4xx or JSON-RPC error, never a 5xx or a hang,
and the server keeps serving everyone else."""

import json
import subprocess
import sys
from urllib.parse import quote

import httpx
import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers.http import HTTP
from helpers.mcp_client import INIT
from helpers.serve import TESTS, start_serve, survivors
from stress.profile import PROFILE

pytestmark = pytest.mark.slow

ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
FUZZ = settings(max_examples=PROFILE.fuzz_examples, deadline=None, suppress_health_check=list(HealthCheck))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def serve(tmp_path_factory):
    server = start_serve(tmp_path_factory.mktemp("fuzz"), "--env", "frozen_lake", "--fork-server")
    yield server
    server.stop()
    assert not survivors(server.seen_descendants)


@pytest.fixture(scope="module")
def session(serve):
    """One open session, driven by raw HTTP."""
    response = HTTP.post(f"{serve.mcp}?seed=3", json=INIT, headers=ACCEPT, timeout=60)
    assert response.status_code == 200
    return response.headers["mcp-session-id"]


def assert_clear_error(response: httpx.Response) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    body = response.json()
    assert body["error"]["message"] and isinstance(body["error"]["code"], int)


def still_serving(serve, session: str) -> None:
    call = {
        "jsonrpc": "2.0",
        "id": 99,
        "method": "tools/call",
        "params": {"name": "lake_move", "arguments": {"action": "LEFT"}},
    }
    response = HTTP.post(serve.mcp, json=call, headers={**ACCEPT, "mcp-session-id": session}, timeout=30)
    assert response.status_code == 200 and '"mcpsim"' in response.text


@FUZZ
@given(body=st.binary(max_size=300))
def test_random_bytes_opening_a_session(serve, body):
    response = HTTP.post(serve.mcp, content=body, headers=ACCEPT, timeout=30)
    assert_clear_error(response)


@FUZZ
@given(message=json_values)
def test_random_json_opening_a_session(serve, message):
    response = HTTP.post(serve.mcp, json=message, headers=ACCEPT, timeout=30)
    assert_clear_error(response)


@FUZZ
@given(message=json_values)
def test_random_json_inside_a_session(serve, session, message):
    response = HTTP.post(serve.mcp, json=message, headers={**ACCEPT, "mcp-session-id": session}, timeout=30)
    assert response.status_code < 500, response.text[:300]
    if response.status_code >= 400:
        assert_clear_error(response)


@FUZZ
@given(method=st.text(min_size=1, max_size=30), params=st.dictionaries(st.text(max_size=8), json_values, max_size=3))
def test_unknown_methods_and_odd_params_get_json_rpc_errors(serve, session, method, params):
    message = {"jsonrpc": "2.0", "id": 7, "method": method, "params": params}
    response = HTTP.post(serve.mcp, json=message, headers={**ACCEPT, "mcp-session-id": session}, timeout=30)
    assert response.status_code < 500
    if response.status_code == 200 and method not in (
        "initialize",
        "ping",
        "tools/list",
        "resources/list",
        "prompts/list",
        "resources/templates/list",
    ):
        assert '"error"' in response.text or '"result"' in response.text


@FUZZ
@given(seed=st.text(max_size=25), config=st.text(max_size=25))
def test_query_strings_never_break_anything(serve, seed, config):
    response = HTTP.post(
        f"{serve.mcp}?seed={quote(seed)}&config={quote(config)}", json=INIT, headers=ACCEPT, timeout=60
    )
    if response.status_code == 200:  # a valid seed and config: a real session, end it again
        HTTP.delete(serve.mcp, headers={"mcp-session-id": response.headers["mcp-session-id"]}, timeout=30)
    else:
        assert_clear_error(response)


@FUZZ
@given(session_id=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=80))
def test_unknown_session_ids(serve, session_id):
    response = HTTP.post(
        serve.mcp,
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={**ACCEPT, "mcp-session-id": session_id},
        timeout=30,
    )
    assert response.status_code == 404 and "Session not found" in response.json()["error"]["message"]


@FUZZ
@given(path=st.text(max_size=40))
def test_paths_under_envs_are_handles_or_404(serve, path):
    response = HTTP.post(f"{serve.url}/envs/{quote(path, safe='/.%')}", json={}, headers=ACCEPT, timeout=30)
    assert response.status_code in (404, 405, 307), (path, response.status_code)


@pytest.mark.parametrize(
    "path",
    [
        "/envs/../api/instances/mcp",
        "/envs/%2e%2e/%2e%2e/etc/passwd/mcp",
        "/envs/..%2f..%2fapi/mcp",
        "/envs/0123456789ab/../../health",
        "/envs//mcp",
    ],
)
def test_path_traversal_in_handles(serve, path):
    response = HTTP.post(serve.url + path, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers=ACCEPT)
    assert response.status_code in (404, 405), response.text


def test_invalid_utf8_and_huge_or_endless_bodies(serve, session):
    for body in (b'{"jsonrpc": "2.0", "id": 1, "method": "\xff\xfe"}', b"\xc3\x28" * 50):
        assert_clear_error(HTTP.post(serve.mcp, content=body, headers=ACCEPT))
        assert_clear_error(HTTP.post(serve.mcp, content=body, headers={**ACCEPT, "mcp-session-id": session}))
    huge = b'{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"x": "' + b"a" * (5 * 2**20) + b'"}}'
    response = HTTP.post(serve.mcp, content=huge, headers=ACCEPT, timeout=60)
    assert response.status_code == 413 and "larger than" in response.json()["error"]["message"]

    def endless():
        for _ in range(6 * 1024):  # chunked, no Content-Length: 6 MiB
            yield b"a" * 1024

    response = HTTP.post(serve.mcp, content=endless(), headers=ACCEPT, timeout=60)
    assert response.status_code == 413
    still_serving(serve, session)


@FUZZ
@given(payload=json_values)
def test_random_api_requests(serve, payload):
    response = HTTP.post(f"{serve.url}/api/instances", json=payload, timeout=60)
    if response.status_code in (201, 202):
        if response.status_code == 201:
            HTTP.delete(f"{serve.url}/api/instances/{response.json()['id']}", timeout=30)
        return
    assert 400 <= response.status_code < 500 and response.json()["error"]["message"]


def test_the_query_string_cannot_inject_arguments_or_environment(tmp_path):
    # spawned, not forked: its command line and /proc environment are its own
    serve = start_serve(tmp_path, "--env", "frozen_lake", "--no-fork-server")
    try:
        check_no_injection(serve, tmp_path)
    finally:
        serve.stop()
        assert not survivors(serve.seen_descendants)


def check_no_injection(serve, tmp_path) -> None:
    marker = tmp_path / "pwned"
    config = json.dumps({"x": f"$(touch {marker}); `touch {marker}`", "--seed": "9"})
    response = HTTP.post(f"{serve.mcp}?seed=42&config={quote(config)}", json=INIT, headers=ACCEPT, timeout=60)
    assert response.status_code == 200
    session = response.headers["mcp-session-id"]
    (item,) = [i for i in serve.get("/api/instances").json() if i["session_id"] == session]
    proc = psutil.Process(item["pid"])
    assert proc.cmdline()[1:] == ["-m", "mcpsim.envs.frozen_lake", "--seed", "42"]
    assert proc.environ()["MCPSIM_SEED"] == "42"
    assert json.loads(proc.environ()["MCPSIM_CONFIG"]) == json.loads(config)
    assert not marker.exists()
    HTTP.delete(serve.mcp, headers={"mcp-session-id": session})
    for bad in ("42;rm -rf /", "42 --config x", "0x10", "4 2"):
        assert_clear_error(HTTP.post(f"{serve.mcp}?seed={quote(bad)}", json=INIT, headers=ACCEPT))


def test_after_all_that_the_server_is_healthy_and_serving(serve, session):
    still_serving(serve, session)
    health = serve.get("/health").json()
    assert health["status"] in ("ok", "degraded") and health["instances"]["failed"] == 0


def test_binds_loopback_by_default_and_refuses_bad_server_paths(tmp_path):
    serve = start_serve(tmp_path, "--env", "frozen_lake")
    try:
        listening = [c.laddr for c in psutil.Process(serve.process.pid).net_connections() if c.status == "LISTEN"]
        assert listening and all(address.ip == "127.0.0.1" for address in listening)
    finally:
        serve.stop()
    for server in ("../../../../etc", "/etc", "./nonexistent-dir/", "examples/../../../../usr"):
        result = subprocess.run(
            [sys.executable, "-m", "mcpsim", "serve", "--server", server],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=str(TESTS),
        )
        assert result.returncode == 2 and "error" in result.stderr, (server, result.stderr)
