"""Hostile or careless starts: limits that hold while the fork server prepares, clients that give up during a
slow start, seeds and configs that used to be answered with 500 or a failed spawn, per-client versions."""

import json
import threading
import time
from urllib.parse import quote

import httpx
import pytest

from helpers.http import HTTP
from helpers.mcp_client import INIT
from helpers.serve import server_script

pytestmark = pytest.mark.slow

HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def open_session(url: str, query: str = "seed=1", body: dict | None = None, timeout: float = 60) -> httpx.Response:
    return HTTP.post(f"{url}/mcp?{query}", json=body or INIT, headers=HEADERS, timeout=timeout)


def test_max_instances_holds_while_the_fork_server_prepares(serve_factory):
    serve = serve_factory("--env", "frozen_lake", "--fork-server", "--max-instances", "2")
    statuses: list[int] = []
    threads = [threading.Thread(target=lambda s=seed: statuses.append(open_session(serve.url, f"seed={s}").status_code))
               for seed in range(12)]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(statuses) == [200, 200] + [503] * 10, statuses
    assert len(serve.get("/api/instances").json()) == 2


def test_a_client_that_gives_up_during_a_slow_start_leaves_no_instance(serve_factory):
    serve = serve_factory("--server", f"python {server_script('toolbox.py')}", "--idle-timeout", "600")
    slow = quote(json.dumps({"start_delay": 2}))
    for path in (f"/mcp?seed=1&config={slow}", f"/sse?seed=2&config={slow}"):
        with pytest.raises(httpx.TimeoutException):
            if path.startswith("/mcp"):
                HTTP.post(serve.url + path, json=INIT, headers=HEADERS, timeout=0.5)
            else:
                with HTTP.stream("GET", serve.url + path, timeout=0.5) as stream:
                    stream.read()
    with pytest.raises(httpx.TimeoutException):
        HTTP.post(f"{serve.url}/api/instances", json={"seed": 3, "config": {"start_delay": 2}}, timeout=0.5)
    deadline = time.monotonic() + 15
    while serve.get("/api/instances").json() or serve.instance_processes():
        assert time.monotonic() < deadline, (serve.get("/api/instances").json(), serve.instance_processes())
        time.sleep(0.1)
    assert "session abandoned" in serve.log()


@pytest.mark.parametrize(
    ("query", "status", "needle"),
    [
        ("seed=" + "9" * 5000, 400, "invalid seed"),
        ("seed=" + "0" * 30 + "7", 200, ""),  # leading zeros are still a small seed
        ("seed=1&config=" + quote("[" * 1100 + "]" * 1100), 400, "nested"),
        ("seed=1&config=" + quote('{"a":' * 100 + "1" + "}" * 100), 400, "nested deeper"),
    ],
)
def test_pathological_seeds_and_configs_are_4xx_on_every_front(frozen_lake_server, query, status, needle):
    serve = frozen_lake_server
    response = open_session(serve.url, query)
    assert response.status_code == status, response.text[:300]
    if status == 200:
        HTTP.delete(serve.mcp, headers={"mcp-session-id": response.headers["mcp-session-id"]})
        return
    assert needle in response.json()["error"]["message"]
    with HTTP.stream("GET", f"{serve.url}/sse?{query}", timeout=30) as sse:
        assert sse.status_code == status
        assert needle in json.loads(sse.read())["error"]["message"]


def test_pathological_api_bodies_are_4xx_and_health_stays_ok(frozen_lake_server):
    serve = frozen_lake_server
    api = f"{serve.url}/api/instances"
    for body, status in (
        (b'{"seed": "' + b"9" * 5000 + b'"}', 400),
        (b'{"seed": ' + b"9" * 5000 + b"}", 400),
        (b'{"seed": 1, "config": ' + b'{"a":' * 1100 + b"1" + b"}" * 1100 + b"}", 400),
        (json.dumps({"seed": 1, "config": {"blob": "x" * 200_000}}).encode(), 413),
    ):
        response = HTTP.post(api, content=body, headers={"content-type": "application/json"}, timeout=60)
        assert response.status_code == status, response.text[:300]
        assert response.json()["error"]["message"]
    assert serve.get("/health").json()["status"] == "ok"


@pytest.mark.parametrize("version", ["2025-06-18", "2025-03-26", "2024-11-05"])
def test_each_client_gets_the_protocol_version_it_asked_for(serve_factory, version):
    serve = serve_factory("--env", "frozen_lake", "--fork-server", "--warm", "1")
    body = {**INIT, "params": {**INIT["params"], "protocolVersion": version}}
    response = open_session(serve.url, "seed=4", body)
    assert response.status_code == 200
    assert f'"protocolVersion":"{version}"' in response.text.replace(" ", "")
    latest = open_session(serve.url, "")  # a latest-version client still finds the warm instance
    assert '"protocolVersion":"2025-11-25"' in latest.text.replace(" ", "")
    handle = serve.url + HTTP.post(f"{serve.url}/api/instances", json={"seed": 5}, timeout=60).json()["url"]
    on_handle = HTTP.post(handle, json=body, headers=HEADERS, timeout=30)
    assert f'"protocolVersion":"{version}"' in on_handle.text.replace(" ", "")
