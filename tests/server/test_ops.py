"""`/health` and `/metrics` of a real `mcpsim serve` follow a scripted sequence of sessions, up and back down;
the orphan check and the resource sampler see real processes."""

import json
import subprocess
import sys
import time
from urllib.parse import quote

import anyio
import httpx
from mcp import Client
from prometheus_client.parser import text_string_to_metric_families

from helpers.http import HTTP
from helpers.mcp_client import ACCEPT as HEADERS
from helpers.mcp_client import INIT
from helpers.serve import server_script
from mcpsim.pool import InstancePool, PoolConfig, parse_command
from mcpsim.pool.labels import MAX_NAME, MAX_TOOLS, DeclaredTools, method_label
from mcpsim.server.ops import ResourceSampler, health

PAINTER = f"python {server_script('painter.py')}"


def metrics(serve) -> dict[tuple[str, tuple], float]:
    response = serve.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    values = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def metric(values: dict, name: str, **labels: str) -> float:
    """Sum of the samples called `name` whose labels include `labels` (0 when there is none)."""
    return sum(
        value
        for (sample, sample_labels), value in values.items()
        if sample == name and set(labels.items()) <= set(sample_labels)
    )


def wait_for(predicate, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


async def test_health_and_metrics_follow_a_scripted_sequence_of_sessions(serve_factory):
    serve = serve_factory("--server", PAINTER, "--max-instances", "8", "--startup-timeout", "20")
    base = serve.get("/health").json()
    assert base["status"] == "ok" and base["instances"] == {
        "live": 0,
        "starting": 0,
        "ready": 0,
        "stopping": 0,
        "exited": 0,
        "failed": 0,
    }
    assert base["limits"] == {"max_instances": 8, "idle_timeout_s": 600.0, "startup_timeout_s": 20.0}
    assert base["recent_spawn_failures"] == [] and base["server"]["transport"] == "stdio"
    m0 = metrics(serve)
    assert metric(m0, "mcpsim_instances_live") == 0 and metric(m0, "mcpsim_sessions_created_total") == 0
    assert metric(m0, "mcpsim_instances_limit") == 8

    async with Client(f"{serve.mcp}?seed=1", mode="legacy") as a:
        async with Client(f"{serve.mcp}?seed=2", mode="legacy") as b:
            await a.call_tool("paint", {"shade": 1})
            await a.call_tool("paint", {"shade": 2})
            assert (await b.call_tool("refuse", {})).is_error
            await b.call_tool("burn", {"seconds": 0.6})
            during = serve.get("/health").json()
            assert during["instances"]["live"] == 2 and during["instances"]["ready"] == 2
            m1 = metrics(serve)
            assert metric(m1, "mcpsim_instances", state="ready") == 2
            assert metric(m1, "mcpsim_instances_live") == 2
            assert metric(m1, "mcpsim_sessions_open") == 2
            assert metric(m1, "mcpsim_sessions_created_total") == 2
            assert metric(m1, "mcpsim_spawn_seconds_count") == 2
            assert metric(m1, "mcpsim_request_seconds_count", method="tools/call", tool="paint") == 2
            assert metric(m1, "mcpsim_request_seconds_count", method="tools/call", tool="refuse") == 1
            assert metric(m1, "mcpsim_request_errors_total", tool="refuse") == 1
            assert metric(m1, "mcpsim_request_errors_total", tool="paint") == 0
            assert metric(m1, "mcpsim_requests_total", method="tools/call") == 4
            assert metric(m1, "mcpsim_messages_total", sender="client", kind="request") >= 4
            assert metric(m1, "mcpsim_messages_total", sender="server", kind="response") >= 6  # + 2 handshakes
            assert metric(m1, "mcpsim_instance_processes") == 2
            assert metric(m1, "mcpsim_instances_rss_bytes") > 2 * 10_000_000  # two Python processes
            assert metric(m1, "mcpsim_instances_cpu_percent") > 10  # the 0.6 s burn since the last sample
            assert metric(m1, "mcpsim_orphan_processes") == 0
            checks = metric(m1, "mcpsim_orphan_checks_total")
            time.sleep(1.1)  # the resource pass is cached for a second
            assert metric(metrics(serve), "mcpsim_orphan_checks_total") == checks + 1
            listing = {item["seed"]: item for item in serve.get("/api/instances").json()}
            assert listing[1]["calls"] == 2 and listing[1]["last_tool"] == "paint" and listing[1]["frame"] == 2
            assert listing[2]["errors"] == 1 and listing[2]["last_tool"] == "burn"
        # b ended: one instance left
        wait_for(lambda: serve.get("/health").json()["instances"]["live"] == 1, what="b's instance to end")
        m2 = metrics(serve)
        assert metric(m2, "mcpsim_sessions_open") == 1 and metric(m2, "mcpsim_sessions_ended_total") == 1
        assert metric(m2, "mcpsim_instances_ended_total") == 1
        assert metric(m2, "mcpsim_instance_processes") == 1
        for kind in ("request", "response"):  # counts of the ended instance are kept
            assert metric(m2, "mcpsim_messages_total", kind=kind) >= metric(m1, "mcpsim_messages_total", kind=kind)

    wait_for(lambda: serve.get("/health").json()["instances"]["live"] == 0, what="all instances to end")
    m3 = metrics(serve)
    assert metric(m3, "mcpsim_sessions_open") == 0 and metric(m3, "mcpsim_sessions_ended_total") == 2
    assert metric(m3, "mcpsim_instances_ended_total") == 2 and metric(m3, "mcpsim_instances_live") == 0
    assert metric(m3, "mcpsim_instances_rss_bytes") == 0 and metric(m3, "mcpsim_instance_processes") == 0
    assert serve.get("/health").json()["status"] == "ok"

    # a start that fails turns the server degraded and is counted, with its cause
    config = quote(json.dumps({"exit_at_start": 3}))
    refused = HTTP.post(f"{serve.mcp}?seed=9&config={config}", json=INIT, headers=HEADERS, timeout=30)
    assert refused.status_code == 502 and "exited with code 3" in refused.json()["error"]["message"]
    after = serve.get("/health").json()
    assert after["status"] == "degraded" and after["instances"]["live"] == 0
    assert len(after["recent_spawn_failures"]) == 1 and after["recent_spawn_failures"][0]["seed"] == 9
    assert "exited with code 3" in after["recent_spawn_failures"][0]["error"]
    m4 = metrics(serve)
    assert metric(m4, "mcpsim_spawn_failures_total") == 1 and metric(m4, "mcpsim_sessions_created_total") == 2
    errors = HTTP.get(f"{serve.url}/api/overview").json()["errors"]
    assert [e["event"] for e in errors] == ["instance.start_failed", "request.error"]
    assert errors[1]["tool"] == "refuse" and "refuse" in errors[1]["message"] and errors[1]["instance_id"]


def test_health_is_503_unless_serving():
    pool = InstancePool(PoolConfig(command=parse_command(PAINTER, None), max_instances=4))
    for phase in ("starting", "stopping"):
        status, body = health(pool, phase)
        assert status == 503 and body["status"] == phase
    status, body = health(pool, "serving", public=True)
    assert status == 200 and body["status"] == "ok" and "command" not in body["server"]


async def test_resource_pass_measures_instances_and_reports_an_orphan():
    config = PoolConfig(command=parse_command(PAINTER, None))
    async with InstancePool(config) as pool:
        sampler = ResourceSampler(pool, max_age=0.0, orphan_grace=0.2)
        instance = await pool.start(5)
        # a child of this process that no instance owns: exactly what the check is for
        stray = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            await anyio.sleep(0.4)
            await sampler.refresh()
            orphans = {orphan["pid"]: orphan for orphan in sampler.orphans}
            assert stray.pid in orphans and "time.sleep(60)" in orphans[stray.pid]["cmdline"]
            assert instance.pid not in orphans and not pool.service_pids & set(orphans)
            usage = sampler.usage(instance.id)
            assert usage.processes == 1 and usage.rss_bytes > 10_000_000
        finally:
            stray.kill()
            stray.wait()
        await sampler.refresh()
        assert stray.pid not in {orphan["pid"] for orphan in sampler.orphans}
        assert sampler.checks == 2 and sampler.last_pass_seconds > 0


def test_health_is_degraded_near_the_instance_limit(serve_factory):
    serve = serve_factory("--server", PAINTER, "--max-instances", "2")
    created = [HTTP.post(f"{serve.url}/api/instances", json={"seed": s}, timeout=30).json() for s in (1, 2)]
    body = serve.get("/health").json()
    assert body["status"] == "degraded" and body["instances"]["live"] == 2
    assert HTTP.delete(f"{serve.url}/api/instances/{created[0]['id']}", timeout=30).status_code == 200
    assert serve.get("/health").json()["status"] == "ok"


def rpc(http: httpx.Client, url: str, method: str, params: dict | None = None) -> dict:
    """One request on an open `/mcp` session (`http` carries its id); the answer, also when it comes as SSE."""
    message = {"jsonrpc": "2.0", "id": 1, "method": method, **({"params": params} if params is not None else {})}
    response = http.post(url, json=message)
    assert response.status_code == 200, response.text
    if response.headers["content-type"].startswith("text/event-stream"):
        [data] = [line[5:] for line in response.text.splitlines() if line.startswith("data:")]
        return json.loads(data)
    return response.json()


def test_client_chosen_names_do_not_become_metric_labels(serve_factory):
    """Unique 2 kB tool names and unknown methods count under `other`: the series, the `/metrics` body and what
    the dashboard keeps stay bounded; tools the server declared keep their own label (issue 13, item 3)."""
    serve = serve_factory("--server", PAINTER)
    opened = HTTP.post(f"{serve.mcp}?seed=3", json=INIT, headers=HEADERS, timeout=30)
    assert opened.status_code == 200
    calls = 150
    with httpx.Client(headers={**HEADERS, "mcp-session-id": opened.headers["mcp-session-id"]}, timeout=30) as http:
        # no tools/list from this client: the first call of a declared tool is labelled by its name all the same
        assert rpc(http, serve.mcp, "tools/call", {"name": "paint", "arguments": {"shade": 1}})["result"]
        for n in range(calls):
            rpc(http, serve.mcp, "tools/call", {"name": f"{n:04d}" + "t" * 2000, "arguments": {}})
            assert rpc(http, serve.mcp, f"{n:04d}/" + "m" * 2000)["error"]["code"] == -32601
        listing = serve.get("/api/instances").json()
        overview = HTTP.get(f"{serve.url}/api/overview", timeout=30)
    response = serve.get("/metrics")
    assert len(response.content) < 100_000, len(response.content)
    values = metrics(serve)
    assert metric(values, "mcpsim_request_seconds_count", method="tools/call", tool="paint") == 1
    assert metric(values, "mcpsim_request_seconds_count", method="tools/call", tool="other") == calls
    assert metric(values, "mcpsim_requests_total", method="other") == calls
    assert metric(values, "mcpsim_request_errors_total", method="other") == calls
    labels = {labels for name, labels in values if name == "mcpsim_request_seconds_count"}
    assert len(labels) <= 5, labels  # initialize and tools/list (the pool's own), tools/call x2, other
    assert max(len(value) for name, labels in values for _, value in labels) <= 128
    # the dashboard keeps short names only
    assert len(listing[0]["last_tool"]) <= 131 and listing[0]["last_tool"].startswith(f"{calls - 1:04d}t")
    assert len(overview.content) < 100_000, len(overview.content)
    shown = overview.json()
    assert {tool for _, _, tool, _ in shown["call_latency"]} == {"paint", "other"}
    assert all(len(error["method"]) <= 131 and len(error.get("tool") or "") <= 131 for error in shown["errors"])


def test_declared_tools_are_bounded():
    tools = DeclaredTools()
    assert not tools.listed and tools.label("paint") == "other"
    assert tools.should_ask() and not tools.should_ask()  # the pool asks once
    tools.learn({"tools": "not a list"})
    assert tools.listed and tools.names == set()
    tools.learn({"tools": [{"name": "x" * (MAX_NAME + 1)}, {"name": ""}, {"name": 5}, "paint", {"name": "paint"}]})
    assert tools.names == {"paint"} and tools.label("paint") == "paint" and tools.label(None) == "other"
    tools.learn({"tools": [{"name": f"tool{n}"} for n in range(2 * MAX_TOOLS)]})
    assert (
        len(tools.names) == MAX_TOOLS and "paint" in tools.names and tools.label(f"tool{2 * MAX_TOOLS - 1}") == "other"
    )
    assert method_label("tools/call") == "tools/call" and method_label("tools/call2") == "other"
