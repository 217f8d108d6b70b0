"""`mcpsim.proc.cgroups` on every hierarchy this machine offers (v2, v1 freezer, v1 pids), with real processes.

A process that joins its group before exec (as an instance does) starts a daemon in a session of its own and
exits; the daemon is still in the group, found there, attributed to it, killed with it - one group alone, or
all of them through the pool's group, as the watchdog does - and the groups are removed. Hierarchies that are
missing or not writable here are skipped, with the reason.
"""

import os
import sys

import anyio
import psutil
import pytest

from helpers.procs import running
from mcpsim.errors import CgroupError
from mcpsim.proc.cgroups import Cgroup, hierarchies
from mcpsim.proc.spawn import Spawner

spawn = Spawner().spawn  # one spawner (and its thread) for this module's children

STARTER = (
    "import subprocess, sys;"
    "daemon = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], start_new_session=True);"
    "print(daemon.pid)"
)


@pytest.fixture(params=["cgroup2", "cgroup1:freezer", "cgroup1:pids"])
def pool_group(request):
    hierarchy = next((h for h in hierarchies() if h.name == request.param), None)
    if hierarchy is None:
        pytest.skip(f"no {request.param} hierarchy here")
    try:
        root = Cgroup.create(hierarchy.own / f"mcpsim-test-{os.getpid()}", hierarchy)
    except CgroupError as exc:
        pytest.skip(f"{request.param} is not writable here: {exc}")
    yield root
    root.kill()
    assert root.remove_when_empty()


async def start_daemon(group: Cgroup) -> int:
    lines: list[str] = []
    child = await spawn([sys.executable, "-c", STARTER], os.environ, lines.append, cgroup=group)
    assert child.stdout is not None
    pid = int(await child.stdout.readline())
    await child.stop()
    assert psutil.Process(pid).status() != psutil.STATUS_ZOMBIE and os.getsid(pid) == pid
    return pid


async def gone(pid: int) -> bool:
    with anyio.move_on_after(5):
        while running(pid):
            await anyio.sleep(0.02)
        return True
    return False


async def test_a_group_holds_and_kills_a_daemon_that_left_its_session(pool_group):
    first, second = pool_group.child("i-first"), pool_group.child("i-second")
    daemon_one, daemon_two = await start_daemon(first), await start_daemon(second)
    assert first.pids() == [daemon_one] and set(pool_group.pids()) == {daemon_one, daemon_two}
    assert pool_group.member_name(daemon_one) == "i-first" and pool_group.member_name(os.getpid()) is None

    first.kill()
    assert await gone(daemon_one)
    assert psutil.Process(daemon_two).is_running() and second.pids() == [daemon_two]
    assert first.remove_when_empty() and not first.path.exists()

    pool_group.kill()  # the pool's group: every instance's group in it (what the watchdog does)
    assert await gone(daemon_two)
    assert pool_group.remove_when_empty() and not pool_group.path.exists()


async def test_a_process_that_cannot_join_its_group_is_not_started(tmp_path):
    missing = Cgroup(tmp_path / "not-a-cgroup")
    with pytest.raises(OSError, match="could not join its control group"):
        await spawn([sys.executable, "-c", "pass"], os.environ, print, cgroup=missing)
