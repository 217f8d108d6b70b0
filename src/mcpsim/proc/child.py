"""A started child as the event loop sees it: its pipes, its exit as an awaitable, its group as the kill target.

How the exit is observed depends on who the parent is - our own child (`spawn.SpawnedProcess`, a pidfd) or a
child of the fork server (which reports exits, `fork_client.py`) - everything else is here: the pipes as asyncio
transports, output drained into the log through a rate-limited `LineSink` that keeps a tail for error messages,
group signals, and the stop sequence (EOF on stdin, SIGTERM to the group, SIGKILL).
"""

import asyncio
import contextlib
import os
import signal
import time
from collections import deque
from collections.abc import Callable
from typing import IO

MAX_LINE_LOGGED = 2000
STDOUT_LIMIT = 64 * 1024 * 1024
"""Default bound of one line of a stdio server's protocol stdout (the pool passes `--max-message-bytes`)."""


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
        self._pidfd: int | None = None

    def watch_pidfd(self) -> None:
        """Call `_reap` when the process exits, seen through a pidfd on the loop (no thread, no polling); raises
        `OSError` when there is no pidfd for it (`ProcessLookupError`: it is gone already)."""
        self._pidfd = os.pidfd_open(self.pid)
        asyncio.get_running_loop().add_reader(self._pidfd, self._on_pidfd)

    def _on_pidfd(self) -> None:
        if self._pidfd is not None:
            asyncio.get_running_loop().remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        self._reap()

    def _reap(self) -> None:
        """Collect the exit status and `mark_exited` (how depends on who the parent is)."""
        raise NotImplementedError

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

    async def attach_fds(
        self, fds: tuple[int, int, int], log: Callable[[str], None], stdout_is_protocol: bool, line_limit: int
    ) -> None:
        """`attach_pipes` for our ends (stdin, stdout, stderr) of a child's pipes as bare descriptors: a forked
        or branched child is not our `Popen`, so nothing else holds them as file objects."""
        stdin, stdout, stderr = fds
        files = (os.fdopen(stdin, "wb", buffering=0), os.fdopen(stdout, "rb", buffering=0))
        await self.attach_pipes(*files, os.fdopen(stderr, "rb", buffering=0), log, stdout_is_protocol, line_limit)

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
