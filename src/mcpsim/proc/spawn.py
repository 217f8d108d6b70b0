"""Child processes: started off the event loop, watched without threads, ended as a group.

Every child is the leader of its own session and process group, so ending it reaches whatever it started
(`npx` -> `node`, shell wrappers). It gets SIGKILL if the thread that started it dies (`PR_SET_PDEATHSIG`), so a
`Spawner` starts its children on one long-lived thread of its own, which lives until the spawner is closed (after
its children are gone): the signal means "mcpsim died". Grandchildren are covered by the watchdog (see
`watchdog.py`), and those that leave the group (`setsid`) by the instance's control group, which the child joins
before exec (see `tracking.py`).

Exit is observed through a pidfd registered with the event loop (no thread, no polling per child), and the
pipes are asyncio pipe transports, so 500 children cost 500 sets of file descriptors and nothing else.

The kernel keeps one list of children per process, so one thing here is process-wide on purpose: `CHILDREN`, the
children started and not reaped yet, under a lock that a subreaper's reaping (`tracking.py`) also takes, so it
never reaps a child that some `Popen` (of any spawner in this process) is about to wait for.
"""

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import resource
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from mcpsim.proc.cgroups import Cgroup
from mcpsim.proc.child import STDOUT_LIMIT, ChildProcess
from mcpsim.wire import TOKEN_VARIABLE

if TYPE_CHECKING:
    from mcpsim.proc.sandbox import SandboxedStart

PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
T = TypeVar("T")


class ChildRegistry:
    """This process's children that some `Popen` will reap, and the lock under which anything else may reap."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pids: set[int] = set()

    @contextlib.contextmanager
    def starting(self) -> Iterator[set[int]]:
        """Held around `Popen` and the registration of its pid: a reaper cannot slip in between."""
        with self.lock:
            yield self.pids

    def reaped(self, pid: int) -> None:
        with self.lock:
            self.pids.discard(pid)


CHILDREN = ChildRegistry()
"""Every child started by any `Spawner` of this process and not reaped yet (see the module docstring)."""


def _child_setup(
    die_with_parent: bool, procs_files: Sequence[str], parent: int, rlimits: Sequence[tuple[int, int, int]] = ()
) -> Callable[[], None] | None:
    """What the child runs between fork and exec (no allocation, no locks): join its control groups (tracking,
    and a sandbox's limit groups, so whatever it starts is in them from the first instruction of the server
    on), then arm the parent-death signal."""
    if not procs_files and not die_with_parent and not rlimits:
        return None

    def setup() -> None:
        for procs_file in procs_files:
            fd = os.open(procs_file, os.O_WRONLY)
            os.write(fd, b"0")
            os.close(fd)
        for which, soft, hard in rlimits:  # a sandbox's limits (`SandboxedStart.preexec_rlimits`)
            resource.setrlimit(which, (soft, hard))
        if die_with_parent:
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != parent:  # the parent died before the signal was armed
                os._exit(1)

    return setup


class SpawnedProcess(ChildProcess):
    """Our own child: its exit is watched through a pidfd on the loop, and reaped here."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        super().__init__(popen.pid)
        self.popen = popen
        self._poll_task: asyncio.Task[None] | None = None

    def watch_exit(self) -> None:
        try:
            self.watch_pidfd()
        except (AttributeError, OSError):  # no pidfd (old kernel): poll instead
            self._poll_task = asyncio.get_running_loop().create_task(self._poll_exit())

    async def _poll_exit(self) -> None:
        while self.popen.poll() is None:  # noqa: ASYNC110 - only without pidfd; nothing else signals an exit
            await asyncio.sleep(0.05)
        self._reap()

    def _reap(self) -> None:
        # The leader is a zombie until reaped, so its pid (= the pgid) cannot be reused yet: end stragglers first.
        self.signal_group(signal.SIGKILL)
        self.mark_exited(self.popen.wait())
        CHILDREN.reaped(self.pid)


def _popen(
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: str | None,
    die_with_parent: bool,
    pass_fds: Sequence[int],
    cgroup: Cgroup | None,
    extra_groups: Sequence[str] = (),
    rlimits: Sequence[tuple[int, int, int]] = (),
) -> subprocess.Popen[bytes]:
    groups = [cgroup.procs_file] if cgroup is not None else []
    setup = _child_setup(die_with_parent, [*groups, *extra_groups], os.getpid(), rlimits)
    with CHILDREN.starting() as children:
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
                preexec_fn=setup,
            )
        except subprocess.SubprocessError as exc:  # only joining a group or setting an rlimit can raise there
            raise OSError(
                f"the process could not join its control group {[*groups, *extra_groups]} or set its limits: {exc}"
            ) from None
        children.add(popen.pid)
    return popen


class Launcher(Protocol):
    """How an instance's process is started (`Spawner.spawn`, or the fork server's `spawn`)."""

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
        sandbox: "SandboxedStart | None" = None,
    ) -> ChildProcess: ...


class Spawner:
    """Starts children on one long-lived thread of its own (see the module docstring), and knows which of its
    children are helpers (installers) rather than instances. The pool owns one; `close()` once every child is
    gone (a child's parent-death signal fires when the thread ends)."""

    def __init__(self) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mcpsim-spawn")
        self.helper_pids: set[int] = set()
        """Pids of helper commands (installers) running now: children that are not instances."""

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """Run process-creating (or reaping) work on the spawner's thread."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, function, *args)

    async def spawn(
        self,
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
        sandbox: "SandboxedStart | None" = None,
    ) -> "SpawnedProcess":
        """Start `argv` on the spawner's thread (in `cgroup`, if given) and attach its pipes to the running loop.
        With `sandbox`, its command line (bwrap around `argv`) runs instead, in its limit groups too.

        Raises FileNotFoundError/PermissionError/OSError from exec as they are, for the caller to name.
        """
        extra_groups: Sequence[str] = ()
        rlimits: list[tuple[int, int, int]] = []
        if sandbox is not None:
            argv, pass_fds, extra_groups = sandbox.argv, [*pass_fds, *sandbox.pass_fds], sandbox.procs_files
            env = {**env, **sandbox.env}
            cwd = None  # bwrap's --chdir sets it inside
            rlimits = [(getattr(resource, name), soft, hard) for name, soft, hard in sandbox.preexec_rlimits]
        try:
            popen = await self.run(_popen, argv, env, cwd, die_with_parent, pass_fds, cgroup, extra_groups, rlimits)
        finally:
            if sandbox is not None:
                sandbox.started()
        child = SpawnedProcess(popen)
        try:
            assert popen.stdin and popen.stdout and popen.stderr
            await child.attach_pipes(popen.stdin, popen.stdout, popen.stderr, log, stdout_is_protocol, line_limit)
            child.watch_exit()
        except BaseException:
            child.signal_group(signal.SIGKILL)
            popen.wait()
            CHILDREN.reaped(popen.pid)
            raise
        return child

    async def run_logged(
        self,
        argv: Sequence[str],
        log: Callable[[str], None],
        *,
        time_limit: float,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> tuple[int, str]:
        """Run a helper command (an installer) as a child like any other: its own group, killed with us, output
        drained into the log. Returns its exit code (-9 if killed for overrunning `time_limit`) and output tail."""
        child = await self.spawn(
            argv, env if env is not None else inherited_environment({}), log, cwd=cwd, stdout_is_protocol=False
        )
        self.helper_pids.add(child.pid)
        try:
            return await _finish(child, log, time_limit)
        finally:
            self.helper_pids.discard(child.pid)

    def close(self) -> None:
        """End the thread (its children's parent-death signal fires: call it once they are gone)."""
        self._thread.shutdown(wait=False)


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
