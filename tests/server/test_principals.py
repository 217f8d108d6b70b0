"""The access model with several principals (`--auth-token-file` of several lines): each sees, drives and ends
only its own instances and sessions, and another's ids answer as if they did not exist; the admin sees all."""

import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from helpers.mcp_client import ACCEPT
from helpers.serve import server_script

PAINTER = f"python {server_script('painter.py')}"
TOKENS = {"admin": "admin-token-1", "alice": "alice-token-2", "bob": "bob-token-3"}
TOOLS_LIST = {"jsonrpc": "2.0", "id": 7, "method": "tools/list"}


def bearer(name: str) -> dict[str, str]:
    return {"authorization": f"Bearer {TOKENS[name]}"}


async def test_one_principal_cannot_see_drive_or_end_anothers_instances_or_sessions(serve_factory, tmp_path):
    """`/api/instances` and `/api/overview` published every session id and instance id, and each of those let any
    client drive or end the episode."""
    path = tmp_path / "tokens"
    path.write_text("".join(f"{name}:{token}\n" for name, token in TOKENS.items()))
    path.chmod(0o600)
    serve = serve_factory("--server", PAINTER, "--auth-token-file", str(path))
    http = httpx.Client(base_url=serve.url, timeout=60)

    def ids(name: str) -> list[str]:
        return sorted(item["id"] for item in http.get("/api/instances", headers=bearer(name)).json())

    alices = http.post("/api/instances", json={"seed": 1}, headers=bearer("alice")).json()
    bobs = http.post("/api/instances", json={"seed": 2}, headers=bearer("bob")).json()
    assert (alices["owner"], bobs["owner"]) == ("alice", "bob")
    assert ids("alice") == [alices["id"]] and ids("bob") == [bobs["id"]]
    assert ids("admin") == sorted([alices["id"], bobs["id"]])

    async with (
        httpx2.AsyncClient(headers=bearer("alice"), timeout=60) as alice_http,
        Client(streamable_http_client(f"{serve.mcp}?seed=3", http_client=alice_http), mode="legacy") as alice,
    ):
        assert (await alice.call_tool("paint", {"shade": 1})).content[0].text == "shade 1"
        [session] = [i for i in http.get("/api/instances", headers=bearer("alice")).json() if i["session_id"]]
        session_id, instance_id = session["session_id"], session["id"]
        assert session_id in {i["session_id"] for i in http.get("/api/instances", headers=bearer("admin")).json()}

        # bob learns neither id from any listing ...
        for listing in ("/api/instances", "/api/overview"):
            text = http.get(listing, headers=bearer("bob")).text
            assert session_id not in text and instance_id not in text and alices["id"] not in text, listing
        assert [i["id"] for i in http.get("/api/overview", headers=bearer("bob")).json()["instances"]] == [bobs["id"]]
        # ... and knowing them does not help: every address of alice's episodes answers like a missing one
        as_bob = {**ACCEPT, **bearer("bob"), "mcp-session-id": session_id}
        assert http.post("/mcp", json=TOOLS_LIST, headers=as_bob).status_code == 404
        assert http.get("/mcp", headers=as_bob).status_code == 404
        assert http.delete("/mcp", headers=as_bob).status_code == 404
        for victim in (instance_id, alices["id"]):
            for method, url in [
                ("GET", "/api/instances/{}"),
                ("DELETE", "/api/instances/{}"),
                ("GET", "/api/instances/{}/frame"),
                ("DELETE", "/envs/{}/mcp"),
                ("POST", "/envs/{}/mcp"),
            ]:
                headers, body = {**ACCEPT, **bearer("bob")}, TOOLS_LIST if method == "POST" else None
                answer = http.request(method, url.format(victim), headers=headers, json=body)
                missing = http.request(method, url.format("0" * 32), headers=headers, json=body)  # ids: 128 bits
                assert answer.status_code == missing.status_code == 404, (method, url)
                assert answer.text == missing.text.replace("0" * 32, victim), (method, url)
        # alice's episodes are untouched and still hers to drive
        assert (await alice.call_tool("paint", {"shade": 2})).content[0].text == "shade 2"
        assert ids("alice") == sorted([alices["id"], instance_id])
        handle = http.post(f"/envs/{alices['id']}/mcp", json=TOOLS_LIST, headers={**ACCEPT, **bearer("alice")})
        assert handle.status_code == 200

    # errors carry session ids too: each principal sees its own, the admin all
    failed = http.post("/api/instances", json={"seed": 4, "config": {"exit_at_start": 3}}, headers=bearer("alice"))
    assert failed.status_code >= 500

    def errors(name: str) -> list[dict]:
        return http.get("/api/overview", headers=bearer(name)).json()["errors"]

    assert any(e["event"] == "instance.start_failed" and e["owner"] == "alice" for e in errors("alice"))
    assert errors("bob") == [] and any(e["owner"] == "alice" for e in errors("admin"))
    # the admin may end anyone's instance
    assert http.delete(f"/api/instances/{alices['id']}", headers=bearer("admin")).status_code == 200
    assert ids("alice") == [] and ids("admin") == [bobs["id"]]
    http.close()
