"""Child processes of the pool: started off the event loop, watched without threads, ended as a group.

Every child is the leader of its own session and process group, so ending it reaches whatever it started
(`npx` -> `node`, shell wrappers). It gets SIGKILL if the thread that started it dies (`PR_SET_PDEATHSIG`);
spawning happens on one long-lived thread, so that thread lives as long as the process and the signal means
"mcpsim died". Grandchildren are covered by the watchdog (see `watchdog.py`), and those that leave the group
(`setsid`) by the instance's control group, which the child joins before exec (see `tracking.py`).

Exit is observed through a pidfd registered with the event loop (no thread, no polling per child), and the
pipes are asyncio pipe transports, so 500 children cost 500 sets of file descriptors and nothing else.
"""

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import os
import resource
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any, Protocol, TypeVar

from mcpsim.pool.cgroups import Cgroup
from mcpsim.wire import TOKEN_VARIABLE

logger = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
MAX_LINE_LOGGED = 2000
STDOUT_LIMIT = 64 * 1024 * 1024
"""Default bound of one line of a stdio server's protocol stdout (the pool passes `--max-message-bytes`)."""

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_prctl = _libc.prctl
T = TypeVar("T")
helper_pids: set[int] = set()
"""Pids of helper commands (installers) running now: children that are not instances."""
spawned_pids: set[int] = set()
"""Every child started here and not reaped yet: a subreaper's reaping must leave these to `Popen.wait`."""
_spawn_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mcpsim-spawn")
_parent_pid = os.getpid()


def _die_with_parent() -> None:  # runs in the child between fork and exec: no allocation, no locks
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != _parent_pid:  # the parent died before the signal was armed
        os._exit(1)


def _child_setup(die_with_parent: bool, procs_file: str | None) -> Callable[[], None] | None:
    """What the child runs between fork and exec: join its control group (so whatever it starts is in it from
    the first instruction of the server on), then arm the parent-death signal."""
    if procs_file is None:
        return _die_with_parent if die_with_parent else None

    def setup() -> None:
        fd = os.open(procs_file, os.O_WRONLY)
        os.write(fd, b"0")
        os.close(fd)
        if die_with_parent:
            _die_with_parent()

    return setup


class LineSink(asyncio.Protocol):
    """Drains a child's output pipe line by line into the log, rate-limited, keeping a tail for error messages.

    A child that prints megabytes must never stall (a full pipe would block it) and never flood the log, so
    lines beyond the budget are counted and reported as one "suppressed" line when the budget refills.
    """

    def __init__(self, log: Callable[[str], None], burst: int = 200, per_second: float = 100.0) -> None:
        self._log = log
        self._partial = b""
        self.tail: deque[str] = deque(maxlen=20)
        self.closed = asyncio.get_running_loop().create_future()
        self._tokens = float(burst)
        self._burst = burst
        self._rate = per_second
        self._stamp = time.monotonic()
        self._suppressed = 0

    def data_received(self, data: bytes) -> None:
        *lines, rest = (self._partial + data).split(b"\n")
        self._partial = rest[-MAX_LINE_LOGGED:]
        for line in lines:
            self._emit(line)

    def _emit(self, raw: bytes) -> None:
        text = raw[:MAX_LINE_LOGGED].decode(errors="replace").rstrip("\r")
        self.tail.append(text)
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens < 1:
            self._suppressed += 1
            return
        self._tokens -= 1
        if self._suppressed:
            self._log(f"[{self._suppressed} lines suppressed]")
            self._suppressed = 0
        self._log(text)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._partial:
            self._emit(self._partial)
        if self._suppressed:
            self._log(f"[{self._suppressed} lines suppressed]")
        if not self.closed.done():
            self.closed.set_result(None)


class ChildProcess:
    """A started child: its pipes on the event loop, its exit as an awaitable, its group as the kill target.

    How the exit is observed depends on who the parent is: `SpawnedProcess` (our child, a pidfd) or a child of
    the fork server (which reports exits). Everything else - pipes, group signals, the stop sequence - is here.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.pgid = pid  # leader of its own session, so its pgid is its pid
        self.returncode: int | None = None
        self.exited = asyncio.Event()
        self.stdout: asyncio.StreamReader | None = None
        self.stdin: asyncio.StreamWriter | None = None
        self.stderr_sink: LineSink | None = None
        self.stdout_sink: LineSink | None = None
        self._transports: list[asyncio.BaseTransport] = []

    async def attach_pipes(
        self,
        stdin: IO[bytes],
        stdout: IO[bytes],
        stderr: IO[bytes],
        log: Callable[[str], None],
        stdout_is_protocol: bool,
        line_limit: int = STDOUT_LIMIT,
    ) -> None:
        """Put the child's pipes on the running loop; the transports own (and close) the file objects.

        A protocol stdout is read in lines of at most `line_limit` bytes (longer ones are dropped by the reader).
        """
        loop = asyncio.get_running_loop()
        if stdout_is_protocol:
            self.stdout = asyncio.StreamReader(limit=line_limit, loop=loop)
            reader = self.stdout
            transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), stdout)
        else:
            self.stdout_sink = LineSink(lambda line: log(f"stdout: {line}"))
            sink = self.stdout_sink
            transport, _ = await loop.connect_read_pipe(lambda: sink, stdout)
        self._transports.append(transport)
        self.stderr_sink = LineSink(lambda line: log(f"stderr: {line}"))
        err_sink = self.stderr_sink
        transport, _ = await loop.connect_read_pipe(lambda: err_sink, stderr)
        self._transports.append(transport)
        w_transport, w_protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, stdin)
        self.stdin = asyncio.StreamWriter(w_transport, w_protocol, None, loop)
        self._transports.append(w_transport)

    def mark_exited(self, returncode: int) -> None:
        if self.exited.is_set():
            return
        self.returncode = returncode
        if self.stdin is not None:
            self.stdin.close()
        self.exited.set()

    def signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, sig)

    @property
    def running(self) -> bool:
        return not self.exited.is_set()

    def output_tail(self, lines: int = 20) -> str:
        """The last lines of stdout (if it is not the protocol) and stderr, for error messages."""
        sinks = [sink for sink in (self.stdout_sink, self.stderr_sink) if sink is not None]
        return "\n".join(line for sink in sinks for line in list(sink.tail)[-lines:])

    def stderr_tail(self, lines: int = 5) -> str:
        tail = list(self.stderr_sink.tail)[-lines:] if self.stderr_sink else []
        return " | ".join(line for line in tail if line.strip())

    async def stop(self, eof_grace: float = 0.5, term_grace: float = 1.0) -> int:
        """End the child: EOF on stdin, then SIGTERM to the group, then SIGKILL; returns the exit code."""
        if self.running and self.stdin is not None and not self.stdin.is_closing():
            self.stdin.close()
            await self._wait(eof_grace)
        if self.running:
            self.signal_group(signal.SIGTERM)
            await self._wait(term_grace)
        if self.running:
            self.signal_group(signal.SIGKILL)
            await self._wait(5.0)
        for transport in self._transports:
            transport.close()
        return self.returncode if self.returncode is not None else -signal.SIGKILL

    async def _wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.exited.wait(), seconds)


class SpawnedProcess(ChildProcess):
    """Our own child: its exit is watched through a pidfd on the loop, and reaped here."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        super().__init__(popen.pid)
        self.popen = popen
        self._pidfd: int | None = None
        self._poll_task: asyncio.Task[None] | None = None

    def watch_exit(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self._pidfd = os.pidfd_open(self.pid)
            loop.add_reader(self._pidfd, self._on_exit)
        except (AttributeError, OSError):  # no pidfd (old kernel): poll instead
            self._poll_task = loop.create_task(self._poll_exit())

    def _on_exit(self) -> None:
        if self._pidfd is not None:
            asyncio.get_running_loop().remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        self._reap()

    async def _poll_exit(self) -> None:
        while self.popen.poll() is None:  # noqa: ASYNC110 - only without pidfd; nothing else signals an exit
            await asyncio.sleep(0.05)
        self._reap()

    def _reap(self) -> None:
        # The leader is a zombie until reaped, so its pid (= the pgid) cannot be reused yet: end stragglers first.
        self.signal_group(signal.SIGKILL)
        self.mark_exited(self.popen.wait())
        spawned_pids.discard(self.pid)


def _popen(
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: str | None,
    die_with_parent: bool,
    pass_fds: Sequence[int],
    cgroup: Cgroup | None,
) -> subprocess.Popen[bytes]:
    try:
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
            pass_fds=tuple(pass_fds),
            preexec_fn=_child_setup(die_with_parent, cgroup.procs_file if cgroup else None),
        )
    except subprocess.SubprocessError as exc:  # only joining the control group can raise in the child
        raise OSError(f"the process could not join its control group {cgroup}: {exc}") from None
    spawned_pids.add(popen.pid)
    return popen


async def spawn(
    argv: Sequence[str],
    env: Mapping[str, str],
    log: Callable[[str], None],
    *,
    cwd: str | None = None,
    stdout_is_protocol: bool = True,
    die_with_parent: bool = True,
    pass_fds: Sequence[int] = (),
    line_limit: int = STDOUT_LIMIT,
    cgroup: Cgroup | None = None,
) -> SpawnedProcess:
    """Start `argv` on the spawn thread (in `cgroup`, if given) and attach its pipes to the running loop.

    Raises FileNotFoundError/PermissionError/OSError from exec as they are, for the caller to name.
    """
    popen = await run_on_spawn_thread(_popen, argv, env, cwd, die_with_parent, pass_fds, cgroup)
    child = SpawnedProcess(popen)
    try:
        assert popen.stdin and popen.stdout and popen.stderr
        await child.attach_pipes(popen.stdin, popen.stdout, popen.stderr, log, stdout_is_protocol, line_limit)
        child.watch_exit()
    except BaseException:
        child.signal_group(signal.SIGKILL)
        popen.wait()
        spawned_pids.discard(popen.pid)
        raise
    return child


class Launcher(Protocol):
    """How an instance's process is started (`spawn`, or the fork server's `spawn`)."""

    async def __call__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        log: Callable[[str], None],
        *,
        cwd: str | None,
        stdout_is_protocol: bool,
        line_limit: int,
        cgroup: Cgroup | None = None,
    ) -> ChildProcess: ...


async def run_on_spawn_thread(function: Callable[..., T], *args: Any) -> T:
    """Run process-creating work on the one long-lived spawn thread (see the module docstring for why)."""
    return await asyncio.get_running_loop().run_in_executor(_spawn_thread, function, *args)


def raise_fd_limit() -> int:
    """Raise the soft open-files limit to the hard one: every instance holds a few pipes and a pidfd."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            return hard
    return soft


PRIVATE_VARIABLES = frozenset({TOKEN_VARIABLE})
"""The server's own secrets (the token of `mcpsim.server.auth`), which no child may inherit: a backend is code
the server runs, not a party to its access control."""


def inherited_environment(extra: Mapping[str, Any]) -> dict[str, str]:
    """The parent's environment without its secrets, plus the instance's own variables (seed, port, config)."""
    env = {key: value for key, value in os.environ.items() if key not in PRIVATE_VARIABLES}
    env.update({key: str(value) for key, value in extra.items()})
    return env


async def run_logged(
    argv: Sequence[str],
    log: Callable[[str], None],
    *,
    time_limit: float,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[int, str]:
    """Run a helper command (an installer) as a child like any other: its own group, killed with us, output
    drained into the log. Returns its exit code (-9 if it was killed for overrunning `time_limit`) and output tail."""
    child = await spawn(
        argv, env if env is not None else inherited_environment({}), log, cwd=cwd, stdout_is_protocol=False
    )
    helper_pids.add(child.pid)
    try:
        return await _finish(child, log, time_limit)
    finally:
        helper_pids.discard(child.pid)


async def _finish(child: ChildProcess, log: Callable[[str], None], time_limit: float) -> tuple[int, str]:
    assert child.stdin is not None
    child.stdin.close()
    try:
        await asyncio.wait_for(child.exited.wait(), time_limit)
    except TimeoutError:
        log(f"still running after its {time_limit:g} s limit; killing it")
        await child.stop(eof_grace=0, term_grace=2)
        return -signal.SIGKILL, child.output_tail()
    await child.stop(eof_grace=0)
    return child.returncode if child.returncode is not None else -signal.SIGKILL, child.output_tail()
