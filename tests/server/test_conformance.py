"""The official MCP conformance suite against the conformance server, alone and behind `mcpsim serve`.

The suite (`@modelcontextprotocol/conformance`, server scenarios, pending ones included) runs once against
`tests/servers/conformance_server.py` served directly over streamable HTTP, and once through mcpsim's `/mcp`
for each backend transport. Every scenario opens its own MCP session, so behind mcpsim each one gets its own
instance. The proof of transparency is the comparison: every check has the same verdict through mcpsim as
against the server alone. The same holds in JSON-response mode, where the SDK's own server fails the scenarios
that need messages besides the response (the expected failures, listed with their reason).

Instances are started with `--fork-server` so that ~33 instances per run start in tens of milliseconds instead
of a second each (the protocol path is the same stdio/HTTP connection as with a plain spawn).
A summary of every run is written to `test-artifacts/conformance/`.
"""

import json
import re
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
from mcp import Client

from helpers.serve import ARTIFACTS, TESTS, ServeProcess, port_range, ports, server_script, start_serve, survivors

NODE_BIN = TESTS / "node" / "node_modules" / ".bin"
INSPECTOR_PACKAGE = TESTS / "node" / "node_modules" / "@modelcontextprotocol" / "inspector-cli"
SERVER = server_script("conformance_server.py")
SUITE_TIMEOUT = 240

EXPECTED_FAILURES: dict[str, str] = {}
"""Scenario -> why it may fail through mcpsim in the default (SSE response) mode: none, every check passes."""

JSON_RESPONSE_FAILURES = {
    "tools-call-with-logging": "a JSON response carries only the result, so log notifications have no wire",
    "tools-call-with-progress": "likewise progress notifications: no wire besides the result",
    "tools-call-sampling": "a server request needs a back-channel; the SDK server refuses it at once, so does mcpsim",
    "tools-call-elicitation": "elicitation/create is a server request: refused for lack of a back-channel",
    "elicitation-sep1034-defaults": "elicitation/create is a server request: refused for lack of a back-channel",
    "elicitation-sep1330-enums": "elicitation/create is a server request: refused for lack of a back-channel",
}
"""Scenario -> why it fails in JSON-response mode, against the SDK's own server and through mcpsim alike."""

SCENARIOS_AT_LEAST = {
    "server-initialize",
    "ping",
    "logging-set-level",
    "completion-complete",
    "tools-call-with-progress",
    "tools-call-sampling",
    "tools-call-elicitation",
    "json-schema-2020-12",
    "elicitation-sep1330-enums",
    "resources-subscribe",
    "prompts-get-with-image",
    "dns-rebinding-protection",
}


@pytest.fixture(scope="module", autouse=True)
def node_tools() -> None:
    if not (NODE_BIN / "conformance").exists() or not (NODE_BIN / "mcp-inspector-cli").exists():
        pytest.fail("the Node test tools are not installed: run `make node-tools` (npm ci --prefix tests/node)")


@dataclass
class SuiteRun:
    """One run of the conformance suite: every scenario's checks, as the suite wrote them."""

    label: str
    checks: dict[str, list[dict]]
    seconds: float

    def verdicts(self) -> dict[tuple[str, str], list[str]]:
        """(scenario, check id) -> statuses of the checks that judge (success, failure, warning), not INFO."""
        out: dict[tuple[str, str], list[str]] = {}
        for scenario, checks in self.checks.items():
            for check in checks:
                if check["status"] != "INFO":
                    out.setdefault((scenario, check["id"]), []).append(check["status"])
        return {key: sorted(statuses) for key, statuses in out.items()}

    def failed_scenarios(self) -> set[str]:
        return {scenario for scenario, checks in self.checks.items() if any(c["status"] == "FAILURE" for c in checks)}

    def failures(self) -> list[str]:
        return [
            f"{scenario}/{check['id']}: {check.get('errorMessage')}"
            for scenario, checks in self.checks.items()
            for check in checks
            if check["status"] == "FAILURE"
        ]

    def table(self) -> dict[str, str]:
        rows = {}
        for scenario, checks in sorted(self.checks.items()):
            counts = Counter(check["status"] for check in checks)
            rows[scenario] = f"{counts['SUCCESS']} passed, {counts['FAILURE']} failed, {counts['WARNING']} warnings"
        return rows


RESULT_DIR = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d\d-\d\dT[\d-]+Z$")


def run_suite(url: str, out: Path, label: str) -> SuiteRun:
    """Run every server scenario against `url` and read the checks.json files the suite writes per scenario."""
    started = time.monotonic()
    proc = subprocess.run(
        [str(NODE_BIN / "conformance"), "server", "--url", url, "--suite", "all", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=SUITE_TIMEOUT,
    )
    seconds = time.monotonic() - started
    (out / "suite-output.txt").write_text(proc.stdout + proc.stderr)
    checks = {}
    for path in out.glob("server-*/checks.json"):
        match = RESULT_DIR.match(path.parent.name)
        assert match, f"unexpected result folder {path.parent.name}"
        checks[match["scenario"]] = json.loads(path.read_text())
    assert checks.keys() >= SCENARIOS_AT_LEAST, f"the suite did not run every scenario:\n{proc.stdout[-3000:]}"
    run = SuiteRun(label, checks, seconds)
    record(run)
    return run


def record(run: SuiteRun) -> None:
    folder = ARTIFACTS / "conformance"
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"# {run.label} ({run.seconds:.1f} s)", ""]
    lines += [f"- {scenario}: {row}" for scenario, row in run.table().items()]
    name = re.sub(r"[^a-z0-9]+", "-", run.label.lower()).strip("-")
    (folder / f"{name}.md").write_text("\n".join(lines) + "\n")


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the conformance server exited with {process.returncode}"
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"the conformance server did not listen on {port}")


def direct_server(port: int, *extra: str):
    process = subprocess.Popen([sys.executable, SERVER, "--port", str(port), *extra], stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, process)
    except BaseException:
        process.kill()
        raise
    return process


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


@pytest.fixture(scope="module")
def direct(tmp_path_factory) -> SuiteRun:
    """The suite against the conformance server alone: the baseline mcpsim is compared with."""
    port = ports(900, 2)[0]
    process = direct_server(port)
    try:
        return run_suite(f"http://127.0.0.1:{port}/mcp", tmp_path_factory.mktemp("direct"), "direct")
    finally:
        stop(process)


@pytest.fixture(scope="module")
def managed(tmp_path_factory):
    """`mcpsim serve` with the conformance server as a stdio backend (shared with the inspector test)."""
    serve = start_serve(tmp_path_factory.mktemp("serve"), "--server", f"python {SERVER}", "--fork-server")
    yield serve
    stop_and_check(serve)


def stop_and_check(serve: ServeProcess) -> None:
    serve.stop()
    left = survivors(serve.seen_descendants)
    assert not left, f"processes left behind by mcpsim serve: {left}\n{serve.log()[-3000:]}"


def assert_same_verdicts(through: SuiteRun, alone: SuiteRun) -> None:
    mine, theirs = through.verdicts(), alone.verdicts()
    differing = {
        key: (mine.get(key), theirs.get(key)) for key in mine.keys() | theirs.keys() if mine.get(key) != theirs.get(key)
    }
    assert not differing, f"checks judged differently through mcpsim (through, alone): {differing}"


def test_the_conformance_server_alone_passes_every_check(direct):
    assert not direct.failures(), direct.failures()
    assert sum(statuses.count("SUCCESS") for statuses in direct.verdicts().values()) >= 44


def test_mcpsim_passes_the_suite_like_the_server_alone_with_a_stdio_backend(managed, direct, tmp_path):
    run = run_suite(managed.mcp, tmp_path, "mcpsim, stdio backend")
    assert run.failed_scenarios() <= EXPECTED_FAILURES.keys(), run.failures()
    assert_same_verdicts(run, direct)
    # Each scenario opened one session, so one instance of its own; all are still open (the suite's client
    # closes without DELETE, so they would end at the idle timeout).
    instances = managed.get("/api/instances").json()
    assert len(instances) == len({instance["session_id"] for instance in instances}) == len(run.checks)


def test_mcpsim_passes_the_suite_like_the_server_alone_with_an_http_backend(direct, tmp_path):
    serve = start_serve(
        tmp_path,
        "--server",
        f"python {SERVER} --port {{port}}",
        "--fork-server",
        "--port-range",
        port_range(910, 60),
    )
    try:
        assert serve.get("/health").json()["server"]["transport"] == "http"
        run = run_suite(serve.mcp, tmp_path / "suite", "mcpsim, http backend")
        assert run.failed_scenarios() <= EXPECTED_FAILURES.keys(), run.failures()
        assert_same_verdicts(run, direct)
    finally:
        stop_and_check(serve)


def test_json_response_mode_fails_only_what_the_sdk_server_itself_fails(tmp_path):
    port = ports(900, 2)[1]
    process = direct_server(port, "--json-response")
    try:
        alone = run_suite(f"http://127.0.0.1:{port}/mcp", tmp_path / "direct", "direct, JSON responses")
    finally:
        stop(process)
    serve = start_serve(tmp_path, "--server", f"python {SERVER}", "--fork-server", "--json-response")
    try:
        through = run_suite(serve.mcp, tmp_path / "managed", "mcpsim, JSON responses")
    finally:
        stop_and_check(serve)
    assert alone.failed_scenarios() == JSON_RESPONSE_FAILURES.keys(), alone.failures()
    assert through.failed_scenarios() == JSON_RESPONSE_FAILURES.keys(), through.failures()
    assert_same_verdicts(through, alone)
    # A server request is refused at once with a reason, not left to the client's 60 s timeout.
    (sampling,) = through.checks["tools-call-sampling"]
    assert "sampling/createMessage" in sampling["errorMessage"], sampling


@pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")  # handshake-era subscriptions
async def test_a_subscribed_resource_update_reaches_the_client_through_mcpsim(managed):
    """Beyond the suite, which only subscribes: the update notification itself travels through the proxy."""
    updated: list[str] = []

    async def handler(message) -> None:
        if getattr(message, "method", None) == "notifications/resources/updated":
            updated.append(message.params.uri)

    async with Client(f"{managed.mcp}?seed=8", mode="legacy", message_handler=handler) as client:
        await client.subscribe_resource("test://watched-resource")
        result = await client.call_tool("update_watched_resource", {"content": "changed"})
        assert result.content[0].text == "updated; subscriber notified: True"
        with anyio.fail_after(10):
            while not updated:
                await anyio.sleep(0.02)
        assert updated == ["test://watched-resource"]
        assert (await client.read_resource("test://watched-resource")).contents[0].text == "changed"
        await client.unsubscribe_resource("test://watched-resource")
        result = await client.call_tool("update_watched_resource", {"content": "again"})
        assert result.content[0].text == "updated; subscriber notified: False"


def inspector(url: str, *args: str) -> dict:
    """One call of the MCP Inspector CLI, as an outside client would run it; its JSON output.

    inspector-cli 1.0.3 finds its own package.json relative to the working directory, so it runs from its
    package's `build` folder.
    """
    proc = subprocess.run(
        [str(NODE_BIN / "mcp-inspector-cli"), "--cli", url, "--transport", "http", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=INSPECTOR_PACKAGE / "build",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def test_inspector_cli_lists_and_calls_tools_through_mcpsim(managed):
    url = f"{managed.mcp}?seed=7"
    before = [instance["seed"] for instance in managed.get("/api/instances").json()].count(7)
    tools = {tool["name"]: tool for tool in inspector(url, "--method", "tools/list")["tools"]}
    assert {"test_simple_text", "test_sampling", "json_schema_2020_12_tool"} <= tools.keys()
    assert tools["json_schema_2020_12_tool"]["inputSchema"]["$defs"]["address"]["type"] == "object"
    called = inspector(url, "--method", "tools/call", "--tool-name", "test_simple_text")
    assert called["content"] == [{"type": "text", "text": "This is a simple text response for testing."}]
    read = inspector(url, "--method", "resources/read", "--uri", "test://template/9/data")
    assert json.loads(read["contents"][0]["text"]) == {"id": "9", "templateTest": True, "data": "Data for ID: 9"}
    after = [instance["seed"] for instance in managed.get("/api/instances").json()].count(7)
    assert after - before == 3, "each inspector call is a session of its own, on an instance of seed 7"
