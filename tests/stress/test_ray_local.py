"""`mcpsim serve --ray local:2` end to end: the front starts its own cluster, serves sessions on both nodes, and
on SIGTERM ends its agents, their instances and every Ray process, leaving nothing behind.

Only in `make stress` (MCPSIM_STRESS=long): a second local cluster costs 20-40 s on this machine, and it uses
the ports tests/ray's shared cluster uses (offsets 1800-1899), which `make stress` does not run.
"""

import os
import shutil
import signal
import tempfile
from pathlib import Path

import psutil
import pytest

from helpers.http import HTTP
from helpers.mcp_client import ACCEPT, INIT
from helpers.serve import ports, start_serve, survivors

pytestmark = pytest.mark.skipif(os.environ.get("MCPSIM_STRESS") != "long", reason="make stress only")


def test_local_cluster_front_leaves_nothing_behind(tmp_path):
    pytest.importorskip("ray")
    root = Path(tempfile.mkdtemp(prefix="mcpsim-ray-local-"))
    base = ports(1800, 100)[0]
    serve = start_serve(
        tmp_path, "--ray", "local:2", "--ray-port-base", str(base), "--ray-temp-dir", str(root), "--fork-server",
        "--max-instances", "1", ready_timeout=180,
    )  # fmt: skip
    sessions = []
    for seed in range(2):
        reply = HTTP.post(f"{serve.url}/mcp?seed={seed}", json=INIT, headers=ACCEPT, timeout=60)
        assert reply.status_code == 200, reply.text
        sessions.append(reply.headers["mcp-session-id"])
    listed = HTTP.get(f"{serve.url}/api/instances", timeout=30).json()
    assert len({item["node"] for item in listed}) == 2, "one slot per node: one session on each"
    tree = {p.pid: p.create_time() for p in psutil.Process(serve.process.pid).children(recursive=True)}
    assert serve.stop(signal.SIGTERM) == 0
    assert survivors(tree, deadline_s=15) == [], "agents, node fronts, instances and Ray's daemons all end"
    left = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        if str(root) in " ".join(process.info["cmdline"] or []) and process.pid != os.getpid():
            left.append(process.pid)
    shutil.rmtree(root, ignore_errors=True)
    assert left == [], f"Ray processes of the front's cluster survived it: {left}"
