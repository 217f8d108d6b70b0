"""Descendants that leave their instance's process group (double fork + setsid, as daemons do) end with it.

The toolbox's `spawn_daemon` starts one that ignores SIGTERM and SIGHUP and whose parent exits at once, so
neither the group signals nor the parent-death signal reach it. Every path an instance ends by is tried - its
session's DELETE, a crash, `mcpsim serve` stopped with SIGTERM or killed with SIGKILL - with plain spawns and
forks of the fork server, under both tracking mechanisms (`MCPSIM_PROCESS_TRACKING=cgroup` is skipped where
no control group is usable). The orphan check must see such a daemon when tracking cannot attribute it.
"""

import contextlib
import os
import signal
import time

import anyio
import psutil
import pytest
from mcp import Client

from helpers.serve import server_script
from mcpsim.pool import Instance, InstancePool, PoolConfig, parse_command
from mcpsim.server.ops import ResourceSampler

TOOLBOX = f"python {server_script('toolbox.py')}"
MODES = ["cgroup", "subreaper"]


@pytest.fixture
def daemons():
    """Pids (with their start times) of the daemons a test started; any still running at the end is killed."""
    started: dict[int, float] = {}
    yield started
    for pid, born in started.items():
        with contextlib.suppress(psutil.NoSuchProcess):
            if abs(psutil.Process(pid).create_time() - born) < 0.01:
                os.kill(pid, signal.SIGKILL)


def running(pid: int, born: float) -> bool:
    try:
        process = psutil.Process(pid)
        return abs(process.create_time() - born) < 0.01 and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def assert_gone(daemons: dict[int, float], pids: list[int], what: str, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while (alive := [pid for pid in pids if running(pid, daemons[pid])]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive, f"daemons still running {what}: {alive}"


def start(serve_factory, mode: str, fork: bool):
    serve = serve_factory("--server", TOOLBOX, "--fork-server" if fork else "--no-fork-server", env=tracking_env(mode))
    skip_unless_tracked_by(mode, serve.get("/health").json()["server"].get("process_tracking"))
    return serve


def skip_unless_tracked_by(mode: str, reported: str | None) -> None:
    if reported is None:  # a server from before tracking: the test should fail, not skip
        return
    if (mode == "cgroup" and not reported.startswith("cgroup")) or (mode != "cgroup" and reported != mode):
        pytest.skip(f"{mode} is not usable here (tracking: {reported})")


def tracking_env(mode: str) -> dict[str, str]:
    return {"MCPSIM_PROCESS_TRACKING": mode}


def daemon_kinds(mode: str, fork: bool) -> list[dict]:
    """An exec'd daemon always; one forked without exec too, except where only the environment variable could
    attribute it and a forked instance's environment block is the template's (see pool/tracking.py)."""
    return [{}] if (mode == "subreaper" and fork) else [{}, {"exec_daemon": False}]


async def spawn_daemon(client: Client, daemons: dict[int, float], **arguments) -> int:
    pid = (await client.call_tool("spawn_daemon", arguments)).structured_content["result"]
    daemons[pid] = psutil.Process(pid).create_time()
    assert running(pid, daemons[pid])
    return pid


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fork", [False, True], ids=["spawn", "fork"])
async def test_daemons_end_with_their_session_and_at_a_crash(serve_factory, daemons, mode, fork):
    serve = start(serve_factory, mode, fork)
    kinds = daemon_kinds(mode, fork)
    async with Client(f"{serve.mcp}?seed=1", mode="legacy") as client:
        ended = [await spawn_daemon(client, daemons, **kind) for kind in kinds]
        async with Client(f"{serve.mcp}?seed=2", mode="legacy") as crashing:
            crashed = [await spawn_daemon(crashing, daemons, **kind) for kind in kinds]
            with pytest.raises(Exception, match="exited with code 3"):
                await crashing.call_tool("crash", {"code": 3})
            assert_gone(daemons, crashed, "after their instance crashed (its session still open)")
        assert all(running(pid, daemons[pid]) for pid in ended), "another instance's end took these daemons"
    assert_gone(daemons, ended, "after their session ended")


@pytest.mark.parametrize(
    ("sig", "mode", "fork"),
    [
        (signal.SIGTERM, "cgroup", False),
        (signal.SIGTERM, "subreaper", True),
        (signal.SIGKILL, "cgroup", True),
        (signal.SIGKILL, "subreaper", False),
    ],
    ids=["SIGTERM-cgroup-spawn", "SIGTERM-subreaper-fork", "SIGKILL-cgroup-fork", "SIGKILL-subreaper-spawn"],
)
async def test_stopping_serve_ends_every_daemon(serve_factory, daemons, sig, mode, fork):
    serve = start(serve_factory, mode, fork)
    clients, pids = [], []
    for seed in range(2):
        client = Client(f"{serve.mcp}?seed={seed}", mode="legacy")
        await client.__aenter__()
        clients.append(client)
        pids += [await spawn_daemon(client, daemons, **kind) for kind in daemon_kinds(mode, fork)]
    serve.stop(sig)
    for client in clients:  # the server is gone; the clients just need closing
        with anyio.move_on_after(2), contextlib.suppress(Exception):
            await client.__aexit__(None, None, None)
    assert_gone(daemons, pids, f"after mcpsim serve got {sig!r}")


async def call(instance: Instance, tool: str, **arguments) -> int:
    assert instance.mux is not None
    result = await instance.mux.request("tools/call", {"name": tool, "arguments": arguments})
    return int(result["structuredContent"]["result"])


@pytest.mark.parametrize("mode", ["cgroup2", "cgroup1:freezer", "cgroup1:pids", "subreaper"])
async def test_orphan_check_attributes_live_daemons_and_reports_lost_ones(monkeypatch, daemons, mode):
    monkeypatch.setenv("MCPSIM_PROCESS_TRACKING", mode)
    async with InstancePool(PoolConfig(command=parse_command(TOOLBOX, None))) as pool:
        skip_unless_tracked_by(mode, getattr(pool, "tracker", None) and pool.tracker.mode)
        sampler = ResourceSampler(pool, max_age=0.0, orphan_grace=0.2)
        instance = await pool.start(5)
        kept = await call(instance, "spawn_daemon")
        # without MCPSIM_INSTANCE_ID only a control group knows whose it is
        lost = await call(instance, "spawn_daemon", keep_env=False)
        for pid in (kept, lost):
            daemons[pid] = psutil.Process(pid).create_time()
        await anyio.sleep(0.4)
        await sampler.refresh()
        assert sampler.usage(instance.id).processes == (2 if mode == "subreaper" else 3)
        assert kept not in {orphan["pid"] for orphan in sampler.orphans}
        await pool.end(instance.id)
        assert_gone(daemons, [kept], "after their instance ended")
        if mode != "subreaper":
            assert_gone(daemons, [lost], "after their instance ended")
        else:  # the server is its subreaper, so it is still under the server, where the check finds it
            assert running(lost, daemons[lost])
            await anyio.sleep(0.3)
            await sampler.refresh()
            assert lost in {orphan["pid"] for orphan in sampler.orphans}
    if running(lost, daemons[lost]):
        os.kill(lost, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(lost, 0)  # reparented to this process, which reaps it
