"""The in-server side of a live fork: a forked instance copies itself, at a quiet point, when mcpsim asks.

Loaded by the fork template (`fork_template.py`, by path: standard library only, as an isolated venv's interpreter
runs it) and armed in every child before the server's code runs; the server itself is unmodified. The pool holds
the other end of a per-instance control socket (`SOCK_SEQPACKET`, so each message keeps its file descriptors).
To branch, it sends one message per copy - `{"batch", "deadline"}` with four fds: the copy's stdin, stdout and
stderr pipes and its own control socket - and then `BRANCH_SIGNAL`. The handler runs in the main thread:

- Quiet point: the server must be idle in its asyncio loop's `select` (the pool holds its requests back, so none
  is in flight), with no thread running but idle anyio workers, and no file registered on the loop but its stdio
  pipes and its self-pipe (a socket would be shared by the copies). Anywhere else in the loop the answer is
  `{"busy": why}` and the pool signals again; a state that forking cannot copy safely is `{"error": why}` (the
  pool then branches by replay).
- One `fork()` per copy, all in one go (k copies are k forks in a loop, not k round trips). The copies are the
  source's children; the source reaps the ones that ended at its next branch (waiting for exactly their pids,
  never for another child of the server's, and installing no signal handler), so until then an ended copy is a
  zombie, from which the pool reads its exit status. The source answers `{"forked": n, "batch", "pids",
  "fork_ms"}` and goes on as if nothing happened. When the source ends first, its copies are adopted by the
  pool (a child subreaper).
- In the copy (still inside the handler): its own session and process group, fresh stdio (every fd that was one
  of the source's stdio pipes, found by inode, now points at the copy's), a new control socket, a new self-pipe
  and a new epoll set for the loop (the old ones are shared with the source), and anyio's thread pool emptied
  (its threads did not survive the fork). Then it returns into the event loop, which goes on with the copied
  state: memory is shared copy-on-write. It reports nothing (the source gave its pid); if its setup fails it says
  `{"error"}` on its control socket and exits. The pool moves it into its control group afterwards, off the
  critical path (`branching.py`).
"""

import contextlib
import json
import os
import select
import selectors
import signal
import socket
import sys
import threading
import time

BRANCH_SIGNAL = signal.SIGRTMIN + 3
"""Asks a forked instance to read its control socket (a real-time signal: queued, unused by servers)."""
MAX_FDS_PER_MESSAGE = 4

_state: dict = {}


def install(control_fd: int, stdio_fds: list[int]) -> None:
    """Arm the handler in a fresh child: `control_fd` is its end of the control socket, `stdio_fds` its 0, 1, 2."""
    _state["control"] = socket.socket(fileno=control_fd)
    _state["control"].setblocking(False)
    _state["stdio"] = [_inode(fd) for fd in stdio_fds]
    signal.signal(BRANCH_SIGNAL, _on_signal)


def _inode(fd: int) -> tuple[int, int]:
    info = os.fstat(fd)
    return info.st_dev, info.st_ino


def _reply(sock: socket.socket, message: dict) -> None:
    with contextlib.suppress(OSError):
        sock.send(json.dumps(message).encode())


def _on_signal(signum: int, frame: object) -> None:
    control = _state.get("control")
    if control is None:
        return
    try:
        refusal, busy = _refusal(frame)
        if refusal is not None:
            _reply(control, {"busy" if busy else "error": refusal})
            if busy:
                return
        requests = _drain(control)
        if refusal is not None:
            for _, fds in requests:
                for fd in fds:
                    os.close(fd)
            return
        for batch in {request.get("batch", 0) for request, _ in requests}:
            _reply(control, {"forking": batch})  # the pool stops signalling and waits for "forked"
        _reap_copies()
        began = time.monotonic()
        loop = _loop()
        batches: dict[int, list[tuple[int, dict, list[int]]]] = {}
        for index, (request, fds) in enumerate(requests):
            batches.setdefault(request.get("batch", 0), []).append((index, request, fds))
        _state["open"] = {fd for _, fds in requests for fd in fds}
        for batch, todo in batches.items():
            made = _make(todo, loop, report=False)
            if made is None:
                return  # this is a copy: back into its event loop
            took = round((time.monotonic() - began) * 1000, 2)
            pids = [made.get(index) for index, _, _ in todo if index in made or index in _state["delegated"]]
            _reply(control, {"forked": len(pids), "batch": batch, "pids": pids, "fork_ms": took})
    except Exception as exc:  # never let a branch request kill the server
        with contextlib.suppress(Exception):
            _reply(control, {"error": f"live fork failed in the server: {exc!r}"})


def _reap_copies() -> None:
    """Reap the copies that ended (only them: the server's own children are its business)."""
    for pid in list(_state.get("copies", ())):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            _state["copies"].discard(pid)


def _drain(control: socket.socket) -> list[tuple[dict, list[int]]]:
    requests = []
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(control, 65536, MAX_FDS_PER_MESSAGE)
        except (BlockingIOError, InterruptedError):
            return requests
        if not data:
            return requests
        if len(fds) != MAX_FDS_PER_MESSAGE:
            for fd in fds:
                os.close(fd)
            continue
        requests.append((json.loads(data), fds))


def _loop() -> object | None:
    events = sys.modules.get("asyncio.events")
    return events._get_running_loop() if events is not None else None


def _anyio_workers(loop: object) -> tuple[set, list]:
    lowlevel = sys.modules.get("anyio.lowlevel")
    backend = sys.modules.get("anyio._backends._asyncio")
    if lowlevel is None or backend is None:
        return set(), []
    run_vars = lowlevel._run_vars.get(loop, {})
    return run_vars.get(backend._threadpool_workers, set()), run_vars.get(backend._threadpool_idle_workers, [])


def _refusal(frame: object) -> tuple[str | None, bool]:
    """(why the server cannot be copied now, whether waiting may help); (None, _) at a quiet point."""
    loop = _loop()
    if loop is None:
        return "the server's main thread runs no asyncio event loop", False
    selector = getattr(loop, "_selector", None)
    if type(selector) is not selectors.EpollSelector:
        return f"the server's event loop uses {type(selector).__name__}, not epoll", False
    idle = _anyio_workers(loop)[1]
    idle_ids = {id(worker) for worker in idle}
    for thread in threading.enumerate():
        if thread is threading.main_thread() or id(thread) in idle_ids:
            continue
        # Not worth waiting for: no request is in flight, so a busy thread is the server's own background work
        # (or the SDK's thread-backed stdin reader), and a copy would lack it.
        return f"the server runs a thread besides its event loop: {thread.name!r}", False
    allowed = {*_state["stdio"], _inode(loop._ssock.fileno())}
    for key in selector.get_map().values():
        try:
            inode = _inode(key.fd)
        except OSError:
            continue
        if inode not in allowed:
            return f"the server has fd {key.fd} open on its event loop besides its stdio (a socket, a file)", False
    if getattr(frame, "f_code", None) is not selectors.EpollSelector.select.__code__:
        return "the server is running code (not idle in its event loop)", True
    return None, False


SPLIT_AT = 4
"""From this many copies left to make, a process hands half of them to the copy it forks next, which makes
them before it sets itself up: forks of a big process then run in parallel (on both cores, and with a fair
share of a loaded machine's CPU), a tree of depth log2(k) instead of a row of k."""


def _make(todo: list[tuple[int, dict, list[int]]], loop: object, report: bool) -> dict[int, int] | None:
    """Fork a copy for each request of `todo` (index, request, its fds): {index: pid} of the copies forked by
    this process, the delegated ones listed in `_state["delegated"]`; None in a copy, which returns into its
    loop. `report`: the copies say their pid on their control socket (the pool does not learn it otherwise)."""
    made: dict[int, int] = {}
    _state["delegated"] = set()
    while todo:
        (index, request, fds), rest = todo[0], todo[1:]
        share = rest[len(rest) // 2 :] if len(rest) + 1 >= SPLIT_AT else []
        todo = rest[: len(rest) - len(share)]
        if time.monotonic() > request.get("deadline", 0):  # the pool gave up on this batch already
            for _, _, other in [(index, request, fds), *share]:
                _close(other)
            continue
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            try:
                _state["copies"] = set()  # its source's copies are not its children; its own are
                keep = set(fds).union(*(set(other) for _, _, other in share))
                _close([fd for fd in _state["open"] if fd not in keep])  # the other copies' pipes are not its own
                _state["open"] = keep
                if share and _make(share, loop, report=True) is None:
                    return None  # one of the copies it made
            except BaseException:  # never back into the loop as a second source
                os._exit(1)
            _become_copy(fds, loop, report)
            return None
        _state.setdefault("copies", set()).add(pid)
        made[index] = pid
        _state["delegated"].update(other_index for other_index, _, _ in share)
        for _, _, other in [(index, request, fds), *share]:
            _close(other)
    return made


def _close(fds: list[int]) -> None:
    for fd in fds:
        if fd in _state["open"]:
            _state["open"].discard(fd)
            os.close(fd)


def _become_copy(fds: list[int], loop: object, report: bool) -> None:
    new_in, new_out, new_err, new_control = fds
    control = socket.socket(fileno=new_control)
    try:
        os.setsid()
        _rewire_stdio([new_in, new_out, new_err])
        sys.modules["asyncio.events"]._set_running_loop(loop)  # it is tied to the pid: this process's now
        _fresh_self_pipe(loop)
        _fresh_epoll(loop)
        workers, idle = _anyio_workers(loop)
        workers.clear()  # their threads exist only in the source; new ones start on demand
        idle.clear()
        loop._default_executor = None
        old = _state["control"]
        os.dup2(new_control, old.fileno(), inheritable=False)  # keep the number the handler knows
        control.close()
        old.setblocking(False)
        _state["open"] = set()
        if report:
            _reply(old, {"pid": os.getpid()})
    except BaseException as exc:
        _reply(control, {"error": f"the copy could not be set up: {exc!r}"})
        os._exit(1)


def _rewire_stdio(new: list[int]) -> None:
    """Point every fd that was one of the source's stdio pipes at the copy's (a server may hold duplicates)."""
    by_inode = dict(zip(_state["stdio"], new, strict=True))
    for name in os.listdir("/proc/self/fd"):  # noqa: PTH208 - names are fd numbers
        fd = int(name)
        if fd in new:
            continue
        try:
            inode = _inode(fd)
        except OSError:
            continue
        if inode in by_inode:
            blocking = os.get_blocking(fd)  # a file status flag: the new pipe's are its own
            os.dup2(by_inode[inode], fd, inheritable=fd <= 2)
            os.set_blocking(fd, blocking)
    _state["stdio"] = [_inode(fd) for fd in new]
    for fd in new:
        os.close(fd)


def _fresh_self_pipe(loop: object) -> None:
    ssock, csock = loop._ssock, loop._csock
    a, b = socket.socketpair()
    a.setblocking(False)  # O_NONBLOCK belongs to the file, so it does not come with the fd number
    b.setblocking(False)
    os.dup2(a.fileno(), ssock.fileno(), inheritable=False)
    os.dup2(b.fileno(), csock.fileno(), inheritable=False)
    a.close()
    b.close()


def _fresh_epoll(loop: object) -> None:
    """A new epoll set with the same registrations (by fd number, so on the copy's files), at the old fd number:
    the `epoll_wait` the signal interrupted resumes on it."""
    selector = loop._selector
    fresh = select.epoll()
    for key in selector.get_map().values():
        mask = (select.EPOLLIN if key.events & selectors.EVENT_READ else 0) | (
            select.EPOLLOUT if key.events & selectors.EVENT_WRITE else 0
        )
        fresh.register(key.fd, mask)
    os.dup2(fresh.fileno(), selector._selector.fileno(), inheritable=False)
    fresh.close()
