"""The pool's side of a live fork: ask a forked instance for k copies of itself and adopt them.

The protocol is in `live_fork.py` (the server's side). Here: one message per copy on the instance's control
socket, each with the copy's stdio pipes and control socket, then the branch signal, repeated while the server
answers that it is busy, until `FORK_TIMEOUT_S`. The source forks all the copies in one go (a tree of forks
from 4 copies on: some are made by other copies) and answers with the pids of those it made; the others say
their pid on their own control socket. A copy that cannot set itself up says so there and exits. The caller must hold
the instance's requests back first (no request in flight), so the copies' state is the source's at that moment,
and moves the copies into their control groups afterwards (`branching.py`).

A copy is a child of its source, which reaps it at its next branch (`live_fork.py`); when the source ends
first the copy is adopted by the pool's process (a child subreaper, `tracking.py`). A `BranchedProcess` watches
its exit through a pidfd either way: it reaps the copy when it is the pool's child, else reads the exit status
of the zombie from /proc. It is registered in `spawn.CHILDREN` so the tracker's reaper leaves that exit status
to us.
"""

import asyncio
import contextlib
import itertools
import json
import os
import signal
import socket
import time
from collections.abc import Callable, Sequence

from mcpsim.errors import LiveForkRefused
from mcpsim.proc import procfs
from mcpsim.proc.child import ChildProcess
from mcpsim.proc.fork_client import ForkedProcess
from mcpsim.proc.live_fork import BRANCH_SIGNAL
from mcpsim.proc.spawn import CHILDREN

FORK_TIMEOUT_S = 5.0
"""How long a live fork may take to find a quiet point (busy retries), before the pool gives up (and replays)."""
PER_COPY_S = 0.5
"""And how long each copy may take on top (a fork of a big process on a loaded machine takes tens of ms)."""
BUSY_RETRY_S = 0.002
"""Pause before signalling a busy server again."""
NO_ANSWER_RESIGNAL_S = 0.2
"""Signal again when the server said nothing for this long (a signal can arrive while the handler runs)."""


_batches = itertools.count(1)


class ForkedCopies(list["BranchedProcess"]):
    """The copies of one live fork, and how long the server took to make them (its own measure)."""

    fork_ms: float | None = None


class BranchedProcess(ChildProcess):
    """A copy made by a live fork; its exit is watched through a pidfd, and reaped here when it is ours."""

    def __init__(self, pid: int, control: socket.socket) -> None:
        super().__init__(pid)
        self.control = control

    def watch_exit(self) -> None:
        with CHILDREN.starting() as pids:
            pids.add(self.pid)
        try:
            self.watch_pidfd()
        except ProcessLookupError:
            self._reap()

    def _reap(self) -> None:
        self.signal_group(signal.SIGKILL)  # what the copy left in its group, before its pid can be reused
        code = -signal.SIGKILL  # not known if someone else reaped it already
        try:
            _, status = os.waitpid(self.pid, 0)
            code = os.waitstatus_to_exitcode(status)
        except ChildProcessError:  # its source's child: still a zombie, which its source reaps
            stat = procfs.stat(self.pid)
            if stat is not None and stat.zombie and stat.wait_status is not None:
                code = os.waitstatus_to_exitcode(stat.wait_status)
        CHILDREN.reaped(self.pid)
        self.control.close()
        self.mark_exited(code)


async def fork_copies(
    source: ForkedProcess,
    logs: Sequence[Callable[[str], None]],
    line_limit: int,
) -> ForkedCopies:
    """`len(logs)` copies of `source`, pipes attached, exit watched (not yet in a control group).

    Raises `LiveForkRefused` (nothing left running) when the server cannot be copied now."""
    if source.control is None or not source.running:
        raise LiveForkRefused("the instance has no live-fork control channel")
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + FORK_TIMEOUT_S + PER_COPY_S * len(logs)
    batch = next(_batches)
    ours: list[tuple[int, int, int, socket.socket]] = []
    copies = ForkedCopies()
    try:
        message = json.dumps({"batch": batch, "deadline": deadline}).encode()
        for _ in logs:
            in_r, in_w = os.pipe()
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            mine.setblocking(False)
            ours.append((in_w, out_r, err_r, mine))
            try:
                socket.send_fds(source.control, [message], [in_r, out_w, err_w, theirs.fileno()])
            except OSError as exc:
                raise LiveForkRefused(f"cannot send the fork request: {exc}") from None
            finally:
                for fd in (in_r, out_w, err_w):
                    os.close(fd)
                theirs.close()
        pids, copies.fork_ms = await _until_forked(loop, source, batch, len(logs), deadline)
        for (in_w, out_r, err_r, mine), log, pid in zip(ours, logs, pids, strict=True):
            if pid is None:  # made by another copy (a tree of forks, `live_fork.py`): it says its pid itself
                try:
                    reply = await _receive(loop, mine, deadline)
                except TimeoutError:
                    raise LiveForkRefused("a copy made by another copy did not report its pid in time") from None
                if not isinstance(reply.get("pid"), int):
                    raise LiveForkRefused(reply.get("error", "a copy did not report its pid"))
                pid = reply["pid"]
            copy = BranchedProcess(pid, mine)
            copy.watch_exit()
            copies.append(copy)
            await copy.attach_fds((in_w, out_r, err_r), log, True, line_limit)
        return copies
    except BaseException:
        for copy in copies:
            await copy.stop(eof_grace=0.0, term_grace=0.0)
        for in_w, out_r, err_r, mine in ours[len(copies) :]:
            for fd in (in_w, out_r, err_r):
                os.close(fd)
            mine.close()
        raise


async def _until_forked(
    loop: asyncio.AbstractEventLoop, source: ForkedProcess, batch: int, count: int, deadline: float
) -> tuple[list[int | None], float | None]:
    """Signal until the source answers `forked` for `batch` (busy: again, after a pause): the copies' pids and
    the server's time to fork them; raise on a refusal.
    Answers about other batches are late ones (a request this pool gave up on) and are skipped."""
    assert source.control is not None
    reason = "the server did not answer the fork request (it may handle the branch signal itself)"
    quiet_by = min(deadline, time.monotonic() + FORK_TIMEOUT_S)
    forking = False
    while time.monotonic() < (deadline if forking else quiet_by):
        if not forking:
            with contextlib.suppress(ProcessLookupError):
                os.kill(source.pid, BRANCH_SIGNAL)
        try:
            wait = deadline if forking else min(quiet_by, time.monotonic() + NO_ANSWER_RESIGNAL_S)
            reply = await _receive(loop, source.control, wait)
        except TimeoutError:
            continue
        if reply.get("forking") == batch:
            forking = True
            continue
        if "forked" in reply:
            if reply.get("batch") != batch:
                continue
            pids = reply.get("pids")
            if reply["forked"] != count or not isinstance(pids, list) or len(pids) != count:
                raise LiveForkRefused(f"the server made {reply['forked']} of {count} copies")
            took = reply.get("fork_ms")
            made = [None if pid is None else int(pid) for pid in pids]
            return made, float(took) if isinstance(took, int | float) else None
        if "error" in reply:
            raise LiveForkRefused(reply["error"])
        if forking:  # "busy": the answer to a signal sent before the source began
            continue
        reason = reply.get("busy", reason)
        await asyncio.sleep(BUSY_RETRY_S)
    if forking:
        raise LiveForkRefused(f"the server did not finish forking {count} copies in time")
    raise LiveForkRefused(f"no quiet point within {FORK_TIMEOUT_S:g} s: {reason}")


async def _receive(loop: asyncio.AbstractEventLoop, sock: socket.socket, deadline: float) -> dict:
    try:
        async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
            data = await loop.sock_recv(sock, 65536)
    except TimeoutError:
        raise
    except OSError as exc:
        raise LiveForkRefused(f"the control channel failed: {exc!r}") from None
    if not data:
        raise LiveForkRefused("the server closed its control channel (it exited?)")
    return json.loads(data)
