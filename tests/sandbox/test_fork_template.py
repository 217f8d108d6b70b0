"""A sandboxed fork template runs what it preloads (the server's own imports, nobody vetted them) as `nobody`
without any capability, and its children still end up in their control groups before the server runs."""

import json
from pathlib import Path

import psutil
from mcp import Client

from helpers.serve import server_script

NOBODY = 65534
PROBE = f"python {server_script('preload_probe.py')}"


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


async def test_code_the_template_preloads_runs_as_nobody_without_capabilities(serve_factory):
    serve = serve_factory("--server", PROBE, "--fork-server", "--sandbox", "strict")
    async with Client(f"{serve.mcp}?seed=1", mode="legacy") as client:
        facts = json.loads((await client.call_tool("facts", {})).content[0].text)
    assert serve.get("/health").json()["fork_server"]["state"] == "active"
    assert facts["imported_by"] != facts["pid"], "the helper was not preloaded by the template"
    assert facts["resuid"] == [NOBODY, NOBODY, NOBODY], facts
    assert facts["caps"] == {"CapEff": 0, "CapPrm": 0, "CapInh": 0, "CapAmb": 0}, facts
    template = _status(facts["imported_by"])  # still running: the template
    assert template["Uid"].split() == [str(NOBODY)] * 4 and template["NoNewPrivs"].strip() == "1"
    assert "fork_template.py" in " ".join(psutil.Process(facts["imported_by"]).cmdline())


async def test_a_forked_sandboxed_instance_is_in_its_groups_from_the_start(serve_factory):
    serve = serve_factory("--server", PROBE, "--fork-server", "--sandbox", "strict", "--limit-memory", "256M")
    async with Client(f"{serve.mcp}?seed=1", mode="legacy") as client:
        pid = json.loads((await client.call_tool("facts", {})).content[0].text)["pid"]
        groups = Path(f"/proc/{pid}/cgroup").read_text()
        [instance] = serve.get("/api/instances").json()
    assert instance["pid"] == pid
    assert instance["id"] in groups, groups  # the tracking group (named after the instance)
    memory = next(line.split(":", 2)[2] for line in groups.splitlines() if line.split(":")[1] == "memory")
    assert instance["id"] in memory, groups  # and its memory limit group
