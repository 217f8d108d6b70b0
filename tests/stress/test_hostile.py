"""Hostile input: no message from one client may end anything but its own request.

A client message of any kind, with any field malformed, through every front (`/mcp`, `/envs/{id}/mcp`,
`/sse` + `/messages/`, `serve --stdio`), gets at most an error for itself: another session keeps playing,
`/health` stays 200, and mcpsim's internal-error counter stays 0 (a caught bug would still count there).
"""

import json
import queue
import subprocess
import sys
import threading

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers.http import HTTP
from helpers.mcp_client import INIT
from helpers.serve import start_serve, survivors
from stress.profile import PROFILE

pytestmark = pytest.mark.slow

HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
FUZZ = settings(max_examples=PROFILE.fuzz_examples, deadline=None, suppress_health_check=list(HealthCheck))
MOVE = {"name": "lake_move", "arguments": {"action": "LEFT"}}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
REQUEST_METHODS = [
    "initialize", "ping", "tools/list", "tools/call", "resources/list", "resources/read", "resources/subscribe",
    "resources/unsubscribe", "resources/templates/list", "prompts/list", "prompts/get", "completion/complete",
    "logging/setLevel", "server/discover", "subscriptions/listen",
]  # fmt: skip
NOTIFICATION_METHODS = [
    "notifications/cancelled", "notifications/progress", "notifications/initialized",
    "notifications/roots/list_changed", "notifications/message",
]  # fmt: skip
PARAM_FIELDS = [
    "requestId", "progressToken", "progress", "total", "reason", "name", "arguments", "uri", "_meta",
    "protocolVersion", "capabilities", "clientInfo", "cursor", "level", "ref", "argument",
]  # fmt: skip


MISSING = object()


def message(**fields: st.SearchStrategy) -> st.SearchStrategy[dict]:
    """A message whose every field is, independently, well-formed (from `fields`), any JSON value, or absent."""
    choices = {key: st.one_of(valid, json_values, st.just(MISSING)) for key, valid in fields.items()}
    return st.fixed_dictionaries(choices).map(lambda d: {k: v for k, v in d.items() if v is not MISSING})


params = st.dictionaries(st.sampled_from(PARAM_FIELDS), json_values, max_size=4) | st.fixed_dictionaries(
    {"_meta": st.dictionaries(st.sampled_from(["progressToken", "x"]), json_values, max_size=2)}
)
version = st.just("2.0")
requests = message(jsonrpc=version, id=st.integers(0, 10**6), method=st.sampled_from(REQUEST_METHODS), params=params)
notifications = message(jsonrpc=version, method=st.sampled_from(NOTIFICATION_METHODS), params=params)
responses = message(jsonrpc=version, id=st.integers(0, 10), result=st.just({})) | message(
    jsonrpc=version, id=st.integers(0, 10), error=message(code=st.integers(), message=st.text(max_size=10))
)
client_messages = st.one_of(requests, notifications, responses)
any_message = client_messages | st.lists(client_messages, min_size=1, max_size=3) | json_values


@pytest.fixture(scope="module")
def serve(tmp_path_factory):
    server = start_serve(tmp_path_factory.mktemp("hostile"), "--env", "frozen_lake", "--fork-server")
    yield server
    server.stop()
    assert not survivors(server.seen_descendants)


def open_session(serve, seed: int = 3) -> str:
    response = HTTP.post(f"{serve.mcp}?seed={seed}", json=INIT, headers=HEADERS, timeout=60)
    assert response.status_code == 200, response.text
    return response.headers["mcp-session-id"]


def call(serve, session: str, request_id: int = 99) -> httpx.Response:
    message = {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": MOVE}
    return HTTP.post(serve.mcp, json=message, headers={**HEADERS, "mcp-session-id": session}, timeout=30)


def assert_everyone_else_unharmed(serve, victim: str) -> None:
    """The other session plays, health is 200, and no unexpected error was caught anywhere."""
    response = call(serve, victim)
    assert response.status_code == 200 and '"mcpsim"' in response.text, response.text[:300]
    health = serve.get("/health")
    assert health.status_code == 200 and health.json()["status"] in ("ok", "degraded"), health.text
    metrics = serve.get("/metrics").text
    caught = [line for line in metrics.splitlines() if line.startswith("mcpsim_internal_errors")]
    assert not [line for line in caught if not line.endswith(" 0.0")], caught


@pytest.fixture(scope="module")
def victim(serve):
    return open_session(serve, seed=5)


@pytest.fixture(scope="module")
def attacker(serve):
    return open_session(serve, seed=6)


@pytest.mark.parametrize("request_id", [{"x": 1}, [1], True, 1.5, None, "no-such-request"])
def test_a_malformed_cancel_ends_nothing(serve, victim, attacker, request_id):
    """The reported attack: `notifications/cancelled` with an object id stopped every session of every user."""
    cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": request_id}}
    response = HTTP.post(serve.mcp, json=cancel, headers={**HEADERS, "mcp-session-id": attacker}, timeout=30)
    assert response.status_code == 202, response.text
    assert_everyone_else_unharmed(serve, victim)
    assert call(serve, attacker).status_code == 200  # and the sender's own session goes on
    open_session(serve, seed=9)  # new sessions are still admitted


@FUZZ
@given(message=any_message)
def test_fuzzed_messages_inside_an_mcp_session(serve, victim, attacker, message):
    response = HTTP.post(serve.mcp, json=message, headers={**HEADERS, "mcp-session-id": attacker}, timeout=30)
    assert response.status_code < 500, response.text[:300]
    assert_everyone_else_unharmed(serve, victim)


@pytest.fixture(scope="module")
def handle(serve):
    created = HTTP.post(f"{serve.url}/api/instances", json={"seed": 4}, timeout=60)
    assert created.status_code == 201, created.text
    return serve.url + created.json()["url"]


@FUZZ
@given(message=any_message)
def test_fuzzed_messages_on_an_envs_handle(serve, victim, handle, message):
    response = HTTP.post(handle, json=message, headers=HEADERS, timeout=30)
    assert response.status_code < 500, response.text[:300]
    assert_everyone_else_unharmed(serve, victim)
    played = HTTP.post(
        handle, json={"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": MOVE}, headers=HEADERS, timeout=30
    )
    assert played.status_code == 200 and '"mcpsim"' in played.text, played.text[:300]


class SseSession:
    """A legacy SSE session held open in a thread; `post` sends to its `/messages/` endpoint."""

    def __init__(self, serve) -> None:
        self.serve = serve
        self.events: queue.Queue[str] = queue.Queue()
        self.endpoint: queue.Queue[str] = queue.Queue()
        self._client = httpx.Client(timeout=httpx.Timeout(30, read=None))
        threading.Thread(target=self._listen, daemon=True).start()
        self.messages_url = serve.url + self.endpoint.get(timeout=60)

    def _listen(self) -> None:
        try:
            with self._client.stream("GET", f"{self.serve.url}/sse?seed=8") as stream:
                event = None
                for line in stream.iter_lines():
                    if line.startswith("event:"):
                        event = line.split(":", 1)[1].strip()
                    elif line.startswith("data:"):
                        data = line.split(":", 1)[1].strip()
                        (self.endpoint if event == "endpoint" else self.events).put(data)
        except httpx.HTTPError:  # closed by `close()` or by the server at the end of the module
            pass

    def post(self, message) -> httpx.Response:
        return HTTP.post(self.messages_url, json=message, timeout=30)

    def close(self) -> None:
        self._client.close()


@pytest.fixture(scope="module")
def sse_session(serve):
    session = SseSession(serve)
    assert session.post(INIT).status_code == 202
    session.events.get(timeout=30)
    session.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
    yield session
    session.close()


@FUZZ
@given(message=any_message)
def test_fuzzed_messages_on_the_sse_front(serve, victim, sse_session, message):
    response = sse_session.post(message)
    assert response.status_code < 500, response.text[:300]
    assert_everyone_else_unharmed(serve, victim)
    while not sse_session.events.empty():
        sse_session.events.get_nowait()
    assert sse_session.post({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": MOVE}).status_code == 202
    while '"id":1,' not in (reply := sse_session.events.get(timeout=30)).replace(" ", ""):
        pass
    assert '"mcpsim"' in reply, reply[:300]


def test_fuzzed_lines_on_the_stdio_front_fail_only_themselves():
    """One client on stdio: junk of every kind, then a valid call still plays (its own session survives)."""
    examples: list = []

    @settings(max_examples=PROFILE.fuzz_examples, deadline=None, database=None)
    @given(message=any_message)
    def collect(message):
        examples.append(message)

    collect()
    process = subprocess.Popen(
        [sys.executable, "-m", "mcpsim", "serve", "--stdio", "--seed", "2", "--env", "frozen_lake"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        lines = [json.dumps(INIT)] + [json.dumps(example) for example in examples]
        lines += ['{"jsonrpc": "2.0", "id": "final", "method": "tools/call", "params": ' + json.dumps(MOVE) + "}"]
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(("\n".join(lines) + "\n").encode())
        process.stdin.flush()
        for line in process.stdout:
            reply = json.loads(line)
            if reply.get("id") == "final":
                assert "mcpsim" in reply["result"]["_meta"], reply
                break
        else:
            pytest.fail(f"the stdio front ended before answering (exit {process.poll()})")
    finally:
        process.kill()
        process.wait(10)


def test_an_oversized_body_inside_a_session_is_refused_before_it_is_read(serve, victim, attacker):
    huge = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"x":"' + b"a" * (5 * 2**20) + b'"}}'
    response = HTTP.post(serve.mcp, content=huge, headers={**HEADERS, "mcp-session-id": attacker}, timeout=60)
    assert response.status_code == 413 and "max-message-bytes" in response.json()["error"]["message"]

    def endless():
        for _ in range(6 * 1024):  # chunked, no Content-Length
            yield b"a" * 1024

    for url, headers in ((serve.mcp, {**HEADERS, "mcp-session-id": attacker}), (f"{serve.url}/api/instances", {})):
        response = HTTP.post(url, content=endless(), headers=headers, timeout=60)
        assert response.status_code == 413, (url, response.status_code)
    assert call(serve, attacker).status_code == 200
    assert_everyone_else_unharmed(serve, victim)


def test_oversized_bodies_on_the_handle_and_sse_fronts(serve, victim, handle, sse_session):
    huge = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"x":"' + b"a" * (5 * 2**20) + b'"}}'
    on_handle = HTTP.post(handle, content=huge, headers=HEADERS, timeout=60)
    assert on_handle.status_code == 413 and "max-message-bytes" in on_handle.json()["error"]["message"]
    on_sse = HTTP.post(sse_session.messages_url, content=huge, headers=HEADERS, timeout=60)
    assert on_sse.status_code == 413
    assert_everyone_else_unharmed(serve, victim)
