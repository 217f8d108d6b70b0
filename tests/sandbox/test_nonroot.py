"""The sandbox's non-root path, run for real: `mcpsim serve` as `nobody` (bwrap then makes a user namespace
mapping it to nobody, and the limits are rlimits), with a sandboxed HTTP backend behind its relay.

This machine runs as root, and the interpreter lives under a 0700 `/root`, which nobody cannot enter. So the
test starts the server in a private mount namespace (`unshare -m`) where `/root` is an empty world-readable
tmpfs with only the interpreter's tree bound back; nothing else changes for the server. Skipped, saying why,
where that cannot be done (not root, no unshare/setpriv, user namespaces refused)."""

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from mcp import Client

from helpers.serve import server_script
from sandbox.test_hostile import port_of, text
from sandbox.test_same_trajectories import LAKE, trajectories

NOBODY = 65534


def _prefix(tmp_path: Path, request_cleanup) -> tuple[tuple[str, ...], Path]:
    """unshare -m + a view of /root nobody can traverse + setpriv to nobody, exec'ing `mcpsim serve`."""
    if os.geteuid() != 0:
        pytest.skip("the test switches to nobody, which needs root (as non-root the suite runs this path anyway)")
    if shutil.which("unshare") is None or shutil.which("setpriv") is None:
        pytest.skip("unshare and setpriv (util-linux) are needed")
    python = os.path.realpath(sys.executable)
    view = ""
    if python.startswith("/root/") and not Path("/root").stat().st_mode & 0o001:
        top = "/root/" + python.split("/")[2]  # e.g. /root/.pyenv
        keep = tmp_path / "root-view"
        keep.mkdir()
        view = (
            f"mount --bind /root {keep} && mount -t tmpfs -o mode=0755,size=1m tmpfs /root && "
            f"mkdir -p {top} && mount --bind {keep}{top[5:]} {top} && umount {keep} && "
        )
    home = Path(tempfile.mkdtemp(prefix="mcpsim-nonroot-"))  # pytest's own temp dirs are root's, 0700
    os.chown(home, NOBODY, NOBODY)
    request_cleanup(lambda: shutil.rmtree(home, ignore_errors=True))
    setpriv = f"setpriv --reuid {NOBODY} --regid {NOBODY} --clear-groups"
    env = f"env HOME={home} TMPDIR={home} MCPSIM_CACHE_DIR={home}/cache"
    shell = f'{view}exec {setpriv} -- {env} "$@"'
    return ("unshare", "-m", "--propagation", "private", "sh", "-c", shell, "sh"), home


async def test_an_unprivileged_serve_runs_a_sandboxed_http_backend(serve_factory, tmp_path, request):
    prefix, _ = _prefix(tmp_path, request.addfinalizer)
    tool, actions = LAKE
    seeds = range(2)
    flags = ("--env", "frozen_lake", "--backend-transport", "http")
    plain = serve_factory(*flags)
    expected = await trajectories(plain.mcp, tool, actions, seeds)
    plain.stop()
    boxed = serve_factory(*flags, "--sandbox", "standard", prefix=prefix)
    assert boxed.process.pid and Path(f"/proc/{boxed.process.pid}/status").read_text().count(f"\t{NOBODY}\t") >= 1
    got = await trajectories(boxed.mcp, tool, actions, seeds)
    assert got == expected
    limits = boxed.get("/health").json()["limits"]["sandbox"]["enforced_by"]
    assert limits["memory"] == "RLIMIT_AS" and limits["pids"] == "RLIMIT_NPROC", limits  # no cgroup as nobody


async def test_an_unprivileged_sandboxed_http_backend_reaches_nothing_outside(serve_factory, tmp_path, request):
    prefix, home = _prefix(tmp_path, request.addfinalizer)
    planted = tmp_path / "planted.txt"
    planted.write_text("secret")
    planted.chmod(0o644)
    command = f"python {server_script('hostile.py')} --transport http --port {{port}}"
    serve = serve_factory("--server", command, "--backend-transport", "http", "--sandbox", "standard", prefix=prefix)
    async with Client(f"{serve.mcp}?seed=1", mode="legacy") as client:
        own_port = await client.call_tool("connect", {"host": "127.0.0.1", "port": port_of(serve.url)})
        loopback = await client.call_tool("listen_loopback", {})
        read = await client.call_tool("read", {"path": str(planted)})
        processes = await client.call_tool("processes", {})
        status = await client.call_tool("read", {"path": "/proc/self/status"})
        assert len(list(home.glob("mcpsim-sandbox-*/*.sock"))) == 1  # its TMPDIR: nobody's own
    assert text(own_port).startswith("refused"), text(own_port)  # another network namespace
    assert text(loopback).startswith("ok: listened on"), text(loopback)
    assert text(read).startswith("refused"), text(read)  # /tmp is a private tmpfs
    assert "mcpsim serve" not in text(processes), text(processes)  # own pid namespace
    uid_line = next(line for line in text(status).splitlines() if line.startswith("Uid:"))
    assert uid_line.split()[1:] == [str(NOBODY)] * 4, uid_line  # nobody inside its user namespace too
