"""Auth: no token on loopback; a token is required beyond it (and refused without one); when a token is set,
the dashboard, `/api/*`, `/mcp`, `/envs` and `/metrics` answer 401 without it, and `/health` stays open."""

import os
import subprocess
import sys

import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from conftest import server_script
from mcpsim.pool.ports import free_port

TOKEN = "s3cret-token-for-tests"
PAINTER = f"python {server_script('painter.py')}"


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key != "MCPSIM_AUTH_TOKEN"}
    return subprocess.run(
        [sys.executable, "-m", "mcpsim", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**environment, **(env or {})},
    )


def test_a_non_loopback_bind_without_a_token_refuses_to_start(tmp_path):
    for host in ("0.0.0.0", "::"):
        done = run_cli("serve", "--host", host, "--port", str(free_port()))
        assert done.returncode == 2
        assert f"refusing to serve on {host}" in done.stderr and "--auth-token" in done.stderr
        assert "MCPSIM_AUTH_TOKEN" in done.stderr
    trajectory = tmp_path / "run.jsonl"
    trajectory.write_text('{"type": "header", "format": "mcpsim.trajectory/1"}\n')
    done = run_cli("view", str(trajectory), "--host", "0.0.0.0", "--port", str(free_port()))
    assert done.returncode == 2 and "refusing to serve on 0.0.0.0" in done.stderr


def test_loopback_needs_no_token_but_refuses_other_sites_and_rebound_names(serve_factory):
    serve = serve_factory("--server", PAINTER)
    assert serve.get("/api/instances").status_code == 200
    assert serve.get("/", headers={"accept": "text/html"}).status_code == 200
    same_origin = {"origin": serve.url}
    assert (
        httpx.post(f"{serve.url}/api/instances", json={"seed": 1}, headers=same_origin, timeout=30).status_code == 201
    )
    # a page of another site posting to the local server (no preflight for a text/plain body)
    forged = httpx.post(
        f"{serve.url}/api/instances",
        content=b'{"seed": 2}',
        headers={"origin": "http://evil.example", "content-type": "text/plain"},
        timeout=30,
    )
    assert forged.status_code == 403 and "cross-origin" in forged.json()["error"]["message"]
    # a DNS-rebinding page: same origin as far as the browser knows, but not a loopback name
    port = serve.url.rsplit(":", 1)[1]
    rebound = serve.get("/api/instances", headers={"host": f"evil.example:{port}"})
    assert rebound.status_code == 421 and "not a loopback name" in rebound.json()["error"]["message"]
    assert serve.get("/api/instances", headers={"host": f"localhost:{port}"}).status_code == 200
    assert [item["seed"] for item in serve.get("/api/instances").json()] == [1]


async def test_with_a_token_every_endpoint_but_health_needs_it(serve_factory):
    # bound to every address with the token from the environment; the test only talks to 127.0.0.1
    serve = serve_factory("--server", PAINTER, "--host", "0.0.0.0", env={"MCPSIM_AUTH_TOKEN": TOKEN})
    bearer = {"authorization": f"Bearer {TOKEN}"}
    health = serve.get("/health")
    assert health.status_code == 200 and "command" not in health.json()["server"]  # open, but says less

    for path in ("/api/instances", "/api/overview", "/metrics", "/"):
        denied = serve.get(path)
        assert denied.status_code == 401, path
        assert denied.headers["www-authenticate"].startswith("Bearer")
        assert "requires a token" in denied.json()["error"]["message"]
        assert serve.get(path, headers={"authorization": "Bearer wrong"}).status_code == 401
        assert serve.get(path, headers=bearer).status_code == 200, path
    page = serve.get("/", headers={"accept": "text/html"})
    assert page.status_code == 401 and "Token required" in page.text
    wrong = serve.get("/api/instances?token=nope")
    assert wrong.status_code == 401 and "token is wrong" in wrong.json()["error"]["message"]

    created = httpx.post(f"{serve.url}/api/instances", json={"seed": 4}, timeout=30)
    assert created.status_code == 401
    created = httpx.post(f"{serve.url}/api/instances", json={"seed": 4}, headers=bearer, timeout=30)
    assert created.status_code == 201
    handle = serve.url + created.json()["url"]
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    accept = {"accept": "application/json, text/event-stream"}
    assert httpx.post(handle, json=message, headers=accept, timeout=30).status_code == 401
    assert httpx.post(handle, json=message, headers={**accept, **bearer}, timeout=30).status_code == 200
    assert httpx.delete(handle, headers=bearer, timeout=30).status_code == 200

    # /mcp: refused without the token, served with it (header, or ?token= for clients that take only a URL)
    assert httpx.post(f"{serve.mcp}?seed=1", json=message, headers=accept, timeout=30).status_code == 401
    async with (
        httpx2.AsyncClient(headers=bearer, timeout=30) as http,
        Client(streamable_http_client(f"{serve.mcp}?seed=1", http_client=http), mode="legacy") as client,
    ):
        result = await client.call_tool("paint", {"shade": 3})
        assert result.content[0].text == "shade 3"
    async with Client(f"{serve.mcp}?seed=2&token={TOKEN}", mode="legacy") as client:
        assert (await client.call_tool("paint", {"shade": 4})).content[0].text == "shade 4"

    # a browser opening /?token=... gets an HttpOnly cookie and the URL without the token
    with httpx.Client(base_url=serve.url, timeout=30) as browser:
        redirect = browser.get(f"/?token={TOKEN}", headers={"accept": "text/html"})
        assert redirect.status_code == 303 and redirect.headers["location"] == "/"
        cookie = redirect.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert browser.get("/", headers={"accept": "text/html"}).status_code == 200
        assert browser.get("/api/overview").status_code == 200
