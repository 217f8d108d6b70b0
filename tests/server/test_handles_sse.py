"""A handshake-era client on an instance handle (`/envs/{id}/mcp`) gets SSE answers: the server's requests,
progress and logs made while serving a request travel on that request's stream, and the client's answers to the
server's requests, POSTed to the same handle, reach the server. A client that accepts only JSON gets JSON. Its
`initialize` opens a protocol session on the handle, whose DELETE ends the session, not the episode.

Real processes: `mcpsim serve` over the handshake-only TypeScript SDK server `tests/servers/asking.cjs`, driven
by the official Python SDK client (`mode="legacy"`) pointed at the handle URL, and by raw HTTP.
"""

from mcp import Client

from helpers.http import HTTP
from helpers.mcp_client import ACCEPT, INIT, answer_of, model, user
from helpers.serve import TESTS
from mcpsim.server.fronts.handle_sessions import MAX_SESSIONS_PER_HANDLE

ASKING = TESTS / "servers" / "asking.cjs"


async def test_server_requests_progress_and_logs_reach_a_handshake_client_on_a_handle(serve_factory):
    serve = serve_factory("--server", f"node {ASKING}")
    item = HTTP.post(f"{serve.url}/api/instances", json={"seed": 3}, timeout=60).json()
    handle = serve.url + item["url"]
    logs, progress = [], []

    async def logged(params) -> None:
        logs.append(params.data)

    async def counted(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total))

    client = Client(handle, mode="legacy", sampling_callback=model, elicitation_callback=user, logging_callback=logged)
    async with client:
        both = await client.call_tool("ask_both", {"prompt": "two"})  # two server requests, answered by POSTs
        assert both.content[0].text == "model said: TWO; user said: yes to The model said TWO. Agree?"
        assert (await client.call_tool("log", {})).content[0].text == "logged"
        assert logs == [f"a {level} message" for level in ("debug", "info", "warning", "error")]
        assert (await client.call_tool("count", {"n": 3}, progress_callback=counted)).content[0].text == "counted 3"
        assert progress == [(1, 3), (2, 3), (3, 3)]
    # JSON for a client that takes only JSON: the answer alone, and a server request is refused, not left hanging
    json_only = {"accept": "application/json"}
    listed = HTTP.post(handle, json={**INIT, "id": 2, "method": "tools/list", "params": {}}, headers=json_only)
    assert listed.headers["content-type"].startswith("application/json") and "ask_model" in listed.text
    call = {
        "jsonrpc": "2.0",
        "id": 3,
        "method": "tools/call",
        "params": {"name": "ask_model", "arguments": {"prompt": "x"}},
    }
    refused = HTTP.post(handle, json=call, headers=json_only, timeout=60).json()
    assert "no connected client can answer" in str(refused), refused
    streamed = HTTP.post(handle, json={**INIT, "id": 4, "method": "tools/list", "params": {}}, headers=ACCEPT)
    assert streamed.headers["content-type"].startswith("text/event-stream")
    assert HTTP.delete(handle, timeout=30).status_code == 200


def test_initialize_on_a_handle_opens_a_session_whose_delete_leaves_the_episode(serve_factory):
    serve = serve_factory("--server", f"node {ASKING}")
    handle = serve.url + HTTP.post(f"{serve.url}/api/instances", json={"seed": 3}, timeout=60).json()["url"]
    opened = HTTP.post(handle, json=INIT, headers=ACCEPT, timeout=30)
    session = {"mcp-session-id": opened.headers["mcp-session-id"], **ACCEPT}
    assert opened.status_code == 200 and answer_of(opened)["result"]["serverInfo"]["name"] == "asking"
    with HTTP.stream("GET", handle, headers=session, timeout=30) as stream:  # the session's own GET stream
        assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
    listed = HTTP.post(handle, json={**INIT, "id": 2, "method": "tools/list", "params": {}}, headers=session)
    assert "ask_model" in str(answer_of(listed))
    assert HTTP.delete(handle, headers=session, timeout=30).status_code == 200  # ends the session only
    gone = HTTP.post(handle, json={**INIT, "id": 3, "method": "tools/list", "params": {}}, headers=session)
    assert gone.status_code == 404 and ("Session not found" in gone.text or "terminated" in gone.text), gone.text
    still = HTTP.post(handle, json={**INIT, "id": 4, "method": "tools/list", "params": {}}, headers=ACCEPT)
    assert "ask_model" in str(answer_of(still))  # the episode goes on
    others = [HTTP.post(handle, json=INIT, headers=ACCEPT, timeout=30) for _ in range(MAX_SESSIONS_PER_HANDLE + 1)]
    assert all(each.status_code == 200 for each in others)  # past the limit the least recently used one ends
    ids = [{"mcp-session-id": each.headers["mcp-session-id"], **ACCEPT} for each in others]
    ping = {**INIT, "id": 5, "method": "ping", "params": {}}
    assert HTTP.post(handle, json=ping, headers=ids[0], timeout=30).status_code == 404
    assert all(HTTP.post(handle, json=ping, headers=each, timeout=30).status_code == 200 for each in ids[1:])
    assert HTTP.delete(handle, timeout=30).status_code == 200  # without a session id: the episode ends
    assert HTTP.post(handle, json=INIT, headers=ACCEPT, timeout=30).status_code == 404
