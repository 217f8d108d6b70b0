"""Auth: no token on loopback; a token is required beyond it (and refused without one); when a token is set,
the dashboard, `/api/*`, `/mcp`, `/envs` and `/metrics` answer 401 without it, and `/health` stays open."""

import os
import subprocess
import sys
from urllib.parse import urlsplit

import httpx
import httpx2
import psutil
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from helpers.http import HTTP
from helpers.serve import server_script
from mcpsim.errors import TokenFileError
from mcpsim.proc import free_port
from mcpsim.server.principals import load_token_file

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
    assert HTTP.post(f"{serve.url}/api/instances", json={"seed": 1}, headers=same_origin, timeout=30).status_code == 201
    # a page of another site posting to the local server (no preflight for a text/plain body)
    forged = HTTP.post(
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

    created = HTTP.post(f"{serve.url}/api/instances", json={"seed": 4}, timeout=30)
    assert created.status_code == 401
    created = HTTP.post(f"{serve.url}/api/instances", json={"seed": 4}, headers=bearer, timeout=30)
    assert created.status_code == 201
    handle = serve.url + created.json()["url"]
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    accept = {"accept": "application/json, text/event-stream"}
    assert HTTP.post(handle, json=message, headers=accept, timeout=30).status_code == 401
    assert HTTP.post(handle, json=message, headers={**accept, **bearer}, timeout=30).status_code == 200
    assert HTTP.delete(handle, headers=bearer, timeout=30).status_code == 200

    # /mcp: refused without the token, served with it (header, or ?token= for clients that take only a URL)
    assert HTTP.post(f"{serve.mcp}?seed=1", json=message, headers=accept, timeout=30).status_code == 401
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


@pytest.mark.parametrize("fork", [False, True], ids=["spawn", "fork-server"])
def test_no_child_inherits_the_token(serve_factory, fork):
    """A token from MCPSIM_AUTH_TOKEN reached every backend (and the watchdog, the fork template) in its
    environment, where the backend's own code, or anyone reading /proc as its user, could take it."""
    serve = serve_factory(
        "--server", PAINTER, "--fork-server" if fork else "--no-fork-server", env={"MCPSIM_AUTH_TOKEN": TOKEN}
    )
    bearer = {"authorization": f"Bearer {TOKEN}"}
    created = HTTP.post(f"{serve.url}/api/instances", json={"seed": 3}, headers=bearer, timeout=60)
    assert created.status_code == 201, created.text
    [listed] = serve.get("/api/instances", headers=bearer).json()
    backend = psutil.Process(listed["pid"])
    if not fork:  # a forked backend's /proc environ is the template's; its os.environ is built like a spawn's
        assert backend.environ().get("MCPSIM_SEED") == "3"  # the environment is readable, and is the backend's
    children = serve.descendants()
    assert backend.pid in {child.pid for child in children} and len(children) >= 2  # the watchdog too
    for child in children:
        assert "MCPSIM_AUTH_TOKEN" not in child.environ(), child.cmdline()
        assert not any(TOKEN in value for value in child.environ().values()), child.cmdline()
        assert not any(TOKEN in part for part in child.cmdline())
    assert TOKEN not in serve.log()


def test_the_token_redirect_goes_only_to_a_path_of_this_server(serve_factory):
    """`GET //evil.example/?token=T` (Accept: text/html) answered 303 to `//evil.example/`: another site."""
    serve = serve_factory("--server", PAINTER, "--auth-token", TOKEN)
    html = {"accept": "text/html"}
    for path, expected in [
        ("//evil.example/", "/evil.example/"),
        ("///evil.example/x", "/evil.example/x"),
        ("/\\evil.example/", "/evil.example/"),
        ("/%2F%2Fevil.example/", "/evil.example/"),
        ("/%5C/evil.example/", "/evil.example/"),
        ("/api/overview", "/api/overview"),
    ]:
        redirect = HTTP.get(f"{serve.url}{path}?token={TOKEN}&x=1", headers=html, timeout=30)
        assert redirect.status_code == 303, path
        location = redirect.headers["location"]
        assert location == f"{expected}?x=1", (path, location)
        assert urlsplit(location).netloc == "" and location[1] not in "/\\", (path, location)
    assert "ps shows it to every user of this machine" in serve.log()  # --auth-token still works, with a warning


def test_auth_token_file_is_read_and_a_missing_or_empty_one_is_a_clear_error(tmp_path, serve_factory):
    path = tmp_path / "tokens"
    for content, needle in [(None, "cannot read --auth-token-file"), ("# only a comment\n\n", "holds no token")]:
        if content is not None:
            path.write_text(content)
        done = run_cli("serve", "--server", PAINTER, "--auth-token-file", str(path), "--port", str(free_port()))
        assert done.returncode == 2 and needle in done.stderr and str(path) in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    both = run_cli("serve", "--auth-token", "x", "--auth-token-file", str(path))
    assert both.returncode == 2 and "not allowed with argument" in both.stderr
    trajectory = tmp_path / "run.jsonl"
    trajectory.write_text('{"type": "header", "format": "mcpsim.trajectory/1"}\n')
    done = run_cli("view", str(trajectory), "--host", "0.0.0.0", "--auth-token-file", str(tmp_path / "nope"))
    assert done.returncode == 2 and "cannot read --auth-token-file" in done.stderr

    path.write_text(f"# mcpsim tokens\n{TOKEN}\n")
    path.chmod(0o600)
    serve = serve_factory("--server", PAINTER, "--host", "0.0.0.0", "--auth-token-file", str(path))
    assert serve.get("/api/instances").status_code == 401
    assert serve.get("/api/instances", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert "readable by other users" not in serve.log() and TOKEN not in serve.log()


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("admin:a1\nbob:a1\n", "line 2: this token is given twice"),
        ("admin:a1\nadmin:b2\n", "line 2: the name 'admin' is given twice"),
        ("bad name:t\n", "line 1: the name before ':'"),
        ("a:\n", "line 1: a token must be printable ASCII"),
        ("# tokens\n\nt\u00f6ken\n", "line 3: a token must be printable ASCII without spaces"),
        ("alice:a b\n", "line 1: a token must be printable ASCII without spaces"),
    ],
)
def test_token_file_lines_that_cannot_be_a_principal_are_refused_naming_the_line(tmp_path, content, needle):
    path = tmp_path / "tokens"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(TokenFileError, match=needle):
        load_token_file(path)


def test_token_file_principals_and_mode_warning(tmp_path):
    path = tmp_path / "tokens"
    text = "\ufeff# the first token is the admin\nroot:r-1:with:colons\n\n  plain-token  \nalice:a-2\n"
    path.write_text(text, "utf-8")  # an editor's byte-order mark first
    path.chmod(0o644)
    credentials, warnings = load_token_file(path)
    assert [(p.name, p.admin) for p in credentials.principals] == [("root", True), ("token4", False), ("alice", False)]
    assert credentials.identify("r-1:with:colons").admin and credentials.identify("plain-token").name == "token4"
    assert credentials.identify("a-2").name == "alice" and credentials.identify("a-") is None
    assert credentials.identify(None) is None
    assert warnings == [f"--auth-token-file {path} is readable by other users (mode 644); chmod 600 it"]
