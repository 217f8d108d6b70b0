"""JSON log lines parse and carry the correlation ids; an instance's drained stderr carries its instance id."""

import json

from helpers.http import HTTP
from helpers.mcp_client import ACCEPT as HEADERS
from helpers.mcp_client import INIT
from helpers.serve import server_script

PAINTER = f"python {server_script('painter.py')}"


def post(url: str, session_id: str, message: dict) -> dict:
    response = HTTP.post(url, json=message, headers={**HEADERS, "mcp-session-id": session_id}, timeout=30)
    assert response.status_code == 200, response.text
    if response.headers["content-type"].startswith("text/event-stream"):  # the answer as one SSE event
        [data] = [line[5:] for line in response.text.splitlines() if line.startswith("data:")]
        return json.loads(data)
    return response.json()


def call(url: str, session_id: str, request_id: int, tool: str, arguments: dict) -> dict:
    params = {"name": tool, "arguments": arguments}
    return post(url, session_id, {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params})


def test_json_lines_carry_session_instance_and_request_ids(serve_factory):
    serve = serve_factory("--server", PAINTER, "--log-format", "json", "--log-level", "debug")
    opened = HTTP.post(f"{serve.mcp}?seed=7", json=INIT, headers=HEADERS, timeout=30)
    assert opened.status_code == 200
    session_id = opened.headers["mcp-session-id"]
    [instance] = serve.get("/api/instances").json()
    assert instance["session_id"] == session_id
    instance_id = instance["id"]
    assert call(serve.mcp, session_id, 4243, "paint", {"shade": 5})["result"]["content"][0]["text"] == "shade 5"
    assert call(serve.mcp, session_id, 4242, "refuse", {})["result"]["isError"] is True
    unknown = post(serve.mcp, session_id, {"jsonrpc": "2.0", "id": 4244, "method": "no/such_method"})
    assert unknown["error"]["code"] == -32601
    ended = HTTP.delete(serve.mcp, headers={"mcp-session-id": session_id}, timeout=30)
    assert ended.status_code in (200, 204)
    serve.stop()

    lines = [line for line in serve.log().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"ts", "level", "logger", "event", "message"} <= set(record) for record in records)
    mine = [record for record in records if record.get("instance_id") == instance_id]
    events = [record["event"] for record in mine]
    for expected in (
        "instance.starting",
        "instance.ready",
        "session.opened",
        "instance.output",
        "request.done",
        "request.error",
        "session.ended",
        "instance.ended",
    ):
        assert expected in events, f"no {expected} line for the instance: {events}"
    # every line about the instance carries its session and seed, from its start to its end
    assert all(record["session_id"] == session_id and record["seed"] == 7 for record in mine)
    # the backend's stderr, drained into the log, with the instance's ids
    [output] = [record for record in mine if "painting shade 5" in record["message"]]
    assert output["event"] == "instance.output" and output["message"].startswith("stderr: ")
    # lines about a request carry the client's JSON-RPC id
    errors = {record["request_id"]: record for record in mine if record["event"] == "request.error"}
    assert set(errors) == {4242, 4244}
    assert errors[4242]["tool"] == "refuse" and errors[4242]["level"] == "debug"  # an isError tool result
    assert errors[4244]["method"] == "no/such_method" and errors[4244]["level"] == "info"  # a JSON-RPC error
    done = {record["request_id"] for record in mine if record["event"] == "request.done"}
    assert {4242, 4243, 4244} <= done
    # lines about anything else carry no stray ids
    assert not [record for record in records if record["event"] == "server.start" and "instance_id" in record]


def test_text_lines_name_the_ids(serve_factory):
    serve = serve_factory("--server", PAINTER, "--log-format", "text")
    opened = HTTP.post(f"{serve.mcp}?seed=3", json=INIT, headers=HEADERS, timeout=30)
    session_id = opened.headers["mcp-session-id"]
    [instance] = serve.get("/api/instances").json()
    call(serve.mcp, session_id, 11, "paint", {"shade": 9})
    serve.stop()
    [line] = [line for line in serve.log().splitlines() if "painting shade 9" in line]
    assert f"instance_id={instance['id']}" in line and f"session_id={session_id}" in line
