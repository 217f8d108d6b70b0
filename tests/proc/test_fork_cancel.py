"""A fork-server start that is cancelled (a client gone, a pool closing) leaves no child and no file descriptor.

Real template, real children: `ForkServer.spawn` is cancelled at many points of its life - before the request is
sent, while the template forks, just after the pid came back - and afterwards the template has no child left and
this process has the file descriptors it had before. A start after them works as usual.
"""

import sys
import time
from pathlib import Path

import anyio
import psutil

from helpers.procs import running
from helpers.serve import server_script
from mcpsim.proc.fork_client import ForkServer
from mcpsim.proc.spawn import Spawner, inherited_environment

TOOLBOX = server_script("toolbox.py")
DELAYS = [0, 0, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.008, 0.012, 0.02, 0.03, 0.05]
"""Cancel after this long: spread over the send, the fork and the pipes' attachment (a start takes ~5-30 ms)."""


def open_fds() -> int:
    return len(list(Path("/proc/self/fd").iterdir()))


async def test_cancelled_starts_leave_no_child_and_no_descriptor(tmp_path):
    argv = [sys.executable, TOOLBOX]
    env = inherited_environment({})
    forker = ForkServer(argv, sys.executable, Spawner(), cwd=str(tmp_path), label="toolbox")
    async with anyio.create_task_group() as tasks:
        assert await forker.start(tasks), forker.reason
        template = psutil.Process(forker.template_pid)
        before = open_fds()
        completed = []
        for delay in DELAYS:
            with anyio.move_on_after(delay):
                completed.append(await forker.spawn(argv, env, lambda _: None, None, True, 1 << 20))
        for child in completed:  # a start quicker than its delay: an ordinary child, stopped by its owner
            await child.stop()
        deadline = time.monotonic() + 10
        while (left := [p.pid for p in template.children() if running(p.pid)]) and time.monotonic() < deadline:
            await anyio.sleep(0.05)
        assert left == [], "children of cancelled starts outlived them"
        assert open_fds() == before, "a cancelled start left file descriptors open"
        assert len(completed) < len(DELAYS), "no start was cancelled: the test proves nothing"
        child = await forker.spawn(argv, env, lambda _: None, None, True, 1 << 20)
        assert running(child.pid)
        await child.stop()
        await forker.close()
        tasks.cancel_scope.cancel()
