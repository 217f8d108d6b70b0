"""The pool's side of the fork server (`--fork-server`): start the template, ask it for children, learn exits.

Only commands that run Python code (`PYTHON -m module ...` or `PYTHON script.py ...`) can be forked, where
PYTHON is `{python}` (the isolation's interpreter) or any program named like a CPython interpreter - `python`,
`python3`, `python3.12`, by name on PATH or by path, a venv's `bin/python` included (`is_python`). The template
runs that same interpreter, and is a stdlib-only script so an isolated venv's interpreter can run it.
If the template cannot be used - the command is not Python, preloading left threads running, or the template
died - instances fall back to a plain spawn; the log says why once and `reason` keeps it for `/health`.

A forked child is not our child, so its exit is reported by the template (which reaps it, after killing what
is left of its process group); if the template itself dies, every child it had dies with it (parent-death
signal) and is marked exited here.
"""

import asyncio
import contextlib
import itertools
import json
import logging
import os
import re
import shutil
import signal
import socket
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup

from mcpsim.proc import fork_template
from mcpsim.proc.cgroups import Cgroup
from mcpsim.proc.child import ChildProcess
from mcpsim.proc.spawn import Spawner, inherited_environment

if TYPE_CHECKING:
    from mcpsim.proc.sandbox import Sandbox, SandboxedStart

logger = logging.getLogger(__name__)


_PYTHON_NAME = re.compile(r"python(\d+(\.\d+)?)?")
"""File names of CPython interpreters: python, python3, python3.12 (a venv's bin/ has the same names)."""


def is_python(program: str) -> bool:
    """Whether a command's program is a Python interpreter: `{python}`, or a name or path named like one."""
    return program == "{python}" or bool(_PYTHON_NAME.fullmatch(Path(program).name))


def fork_target(argv: Sequence[str]) -> tuple[str, str, int] | None:
    """('module'|'script', target, index of the first server argument) if the command runs Python code."""
    if not argv or not is_python(argv[0]) or len(argv) < 2:
        return None
    if argv[1] == "-m" and len(argv) >= 3:
        return "module", argv[2], 3
    if argv[1].endswith(".py"):
        return "script", argv[1], 2
    return None


class ForkedProcess(ChildProcess):
    """A child of the template: same pipes and stop sequence, exit reported by the template.

    `control` is the pool's end of its live-fork control socket (`live_fork.py`, used by `branch_client.py`)."""

    def __init__(self, pid: int, control: socket.socket | None = None) -> None:
        super().__init__(pid)
        self.control = control

    def mark_exited(self, returncode: int) -> None:
        super().mark_exited(returncode)
        if self.control is not None:
            self.control.close()


class ForkServer:
    """The template process and the two sockets to it; `spawn` starts a child as `Spawner.spawn` does.

    It takes the command as an argv template with its label and working directory (not the pool's
    `ServerCommand`), so processes know nothing of the pool above them."""

    def __init__(
        self,
        argv: Sequence[str],
        python: str,
        spawner: Spawner,
        *,
        cwd: str | None = None,
        label: str = "",
        preload: Sequence[str] = (),
        sandbox: "Sandbox | None" = None,
        isolating: bool = False,
    ) -> None:
        self.argv = tuple(argv)
        self.sandbox = sandbox
        self.isolating = isolating
        """Sandboxed HTTP/SSE backends: each child makes namespaces of its own (`sandbox/isolate.py`)."""
        """With `--sandbox`: the template runs inside a sandbox its children share (see `sandbox/bwrap.py`), as
        `nobody`; its children wait at their gate until `spawn` has moved them into their control groups."""
        self.cwd = cwd
        self.label = label or " ".join(self.argv[:3])
        self.python = python
        self.spawner = spawner
        self.preload = list(preload)
        self.usable = False
        self.reason = ""
        """Why instances spawn instead (empty while the fork server is usable or not started yet)."""
        self.interpreter = python
        self._closing = False
        self._template: ChildProcess | None = None
        self._requests: socket.socket | None = None
        self._events: socket.socket | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._children: dict[int, ForkedProcess] = {}
        self._early_exits: dict[int, int] = {}
        self._abandoned: set[int] = set()
        """Requests whose `spawn` was cancelled after the request may have gone out: their child, when its pid
        comes, is killed at once, since nobody holds its pipes (it would run unowned until the template ends)."""
        self._discarded: set[int] = set()
        """Pids of those killed children, so that their exit is not taken for a later child's with the pid."""
        self.hello: dict[str, Any] = {}
        self.placement: str | None = None
        """How the last child got into its tracking group: "clone3" (created in it, `clone_into.py`) or "move"
        (it, or for a sandboxed child the pool, wrote its pid to `cgroup.procs`: an RCU grace period's wait)."""

    async def start(self, task_group: TaskGroup) -> bool:
        """Start the template and, in `task_group` (the pool's), the task that reads its events; False (and
        the reason logged) when it cannot be used."""
        target = fork_target(self.argv)
        if target is None:
            # expected, not a fault: the fork server is the default and most non-Python servers are Node's
            return self._unusable(
                f"{self.label!r} does not run Python code (a python interpreter with -m module or a .py script)",
                level=logging.INFO,
            )
        kind, name, _ = target
        program = self.argv[0]
        # by path: the venv's own `bin/python` (not resolved: a venv's python is a symlink out of the venv)
        found = self.python if program == "{python}" else shutil.which(program)
        if found is None:
            return self._unusable(f"the interpreter {program!r} was not found or is not executable")
        self.interpreter = found
        requests, requests_child = socket.socketpair()
        events, events_child = socket.socketpair()
        argv = [
            self.interpreter,
            str(Path(fork_template.__file__)),
            str(requests_child.fileno()),
            str(events_child.fileno()),
            kind,
            name,
            *self.preload,
        ]
        env = inherited_environment({"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
        extra_fds: list[int] = []
        if self.sandbox is not None:
            argv, extra_fds = self.sandbox.template_command(argv, self.cwd, self.python, self.isolating)
        try:
            self._template = await self.spawner.spawn(
                argv,
                env,
                lambda line: logger.info("template: %s", line),
                cwd=self.cwd,
                stdout_is_protocol=False,
                pass_fds=(requests_child.fileno(), events_child.fileno(), *extra_fds),
            )
        finally:
            requests_child.close()
            events_child.close()
            for fd in extra_fds:
                os.close(fd)
        self._requests, self._events = requests, events
        events.setblocking(False)
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(120):  # preloading imports a whole SDK; a stuck template must not hang us
            hello_line = await self._read_line(loop)
        if hello_line is None:
            return self._unusable("the template exited while preloading" + self._template_tail())
        self.hello = json.loads(hello_line).get("hello", {})
        if "unsafe" in self.hello:
            return self._unusable(self.hello["unsafe"])
        self.usable = True
        task_group.start_soon(self._read_events, loop)
        logger.info(
            "fork server ready: pid %s, %d modules preloaded%s",
            self.hello.get("pid"),
            len(self.hello["loaded"]),
            f", {len(self.hello['failed'])} failed to preload" if self.hello.get("failed") else "",
            extra={"event": "forkserver.ready"},
        )
        return True

    @property
    def template_pid(self) -> int | None:
        return self._template.pid if self._template is not None and self._template.running else None

    def _unusable(self, reason: str, level: int = logging.WARNING) -> bool:
        self.reason = reason
        logger.log(level, "fork server not used: %s; instances start with a plain spawn", reason)
        self.usable = False
        return False

    def _template_tail(self) -> str:
        tail = self._template.stderr_tail() if self._template else ""
        return f" ({tail})" if tail else ""

    _buffer = b""

    async def _read_line(self, loop: asyncio.AbstractEventLoop) -> bytes | None:
        assert self._events is not None
        while b"\n" not in self._buffer:
            chunk = await loop.sock_recv(self._events, 65536)
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line

    async def _read_events(self, loop: asyncio.AbstractEventLoop) -> None:
        lost = True  # unless cancelled (the pool is closing), the template went away
        try:
            while (line := await self._read_line(loop)) is not None:
                event = json.loads(line)
                if "exit" in event and event["exit"] in self._discarded:
                    self._discarded.discard(event["exit"])
                elif event.get("id") in self._abandoned:
                    self._abandoned.discard(event["id"])
                    if "pid" in event:
                        self._discard(event["pid"])
                elif "exit" in event:
                    child = self._children.pop(event["exit"], None)
                    if child is not None:
                        child.mark_exited(event["code"])
                    else:  # exited before `spawn` resumed to register it
                        self._early_exits[event["exit"]] = event["code"]
                elif (future := self._waiting.pop(event.get("id"), None)) is not None and not future.done():
                    if "pid" in event:
                        future.set_result(event)
                    else:
                        future.set_exception(OSError(event.get("error", "the fork server refused the request")))
        except (OSError, ValueError) as exc:
            logger.error("fork server connection failed: %r", exc)
        except BaseException:
            lost = False
            raise
        finally:
            self._template_gone(lost)

    def _template_gone(self, lost: bool = True) -> None:
        """Without its template every forked child died too (parent-death signal): say so to everyone waiting."""
        if lost and self.usable and not self._closing:
            self.reason = "the fork template exited" + self._template_tail()
            logger.warning("fork server lost: %s; instances start with a plain spawn", self.reason)
        self.usable = False
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(OSError("the fork server exited"))
        self._waiting.clear()
        for child in self._children.values():
            child.mark_exited(-9)
        self._children.clear()

    async def spawn(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        log: Callable[[str], None],
        cwd: str | None,
        stdout_is_protocol: bool,
        line_limit: int,
        cgroup: Cgroup | None = None,
        sandbox: "SandboxedStart | None" = None,
    ) -> ChildProcess:
        target = fork_target(self.argv)
        assert target is not None and self._requests is not None
        kind, name, first_arg = target
        request_id = next(self._ids)
        request = {
            "id": request_id,
            "kind": kind,
            "target": name,
            "argv": list(argv[first_arg:]),
            "env": dict(env),
            "cwd": cwd or self.cwd,
            "cgroup": cgroup.procs_file if cgroup is not None else None,
            "fds": 4,
        }
        control, control_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        control.setblocking(False)
        groups: list[Cgroup] = []
        gate_r = gate_w = -1
        if sandbox is not None:
            request["env"].update(sandbox.env)
            request["cwd"] = cwd or self.cwd or sandbox.work_dir
            request["sandbox"] = {"rlimits": sandbox.child_rlimits}
            if sandbox.isolate is not None:
                request["sandbox"]["isolate"] = sandbox.isolate
            # the template is nobody: we move the child into its groups, then open its gate
            groups = [*(() if cgroup is None else (cgroup,)), *sandbox.limits.groups.values()]
            request["cgroup"], request["gate"] = None, True
            gate_r, gate_w = os.pipe()
        relay_fds = [sandbox.relay_fd] if sandbox is not None and sandbox.relay_fd is not None else []
        if relay_fds:
            request["fds"] = 5
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        ours = [in_w, out_r, err_r, *([gate_w] if gate_w >= 0 else [])]
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        try:
            try:
                fds = [in_r, out_w, err_w, control_child.fileno(), *relay_fds, *([gate_r] if gate_r >= 0 else [])]
                await self.spawner.run(_send, self._requests, request, fds)
            finally:
                _close([in_r, out_w, err_w, *([gate_r] if gate_r >= 0 else [])])
                control_child.close()
            forked = await future
        except BaseException as exc:
            # refused, template gone, or cancelled (the request may have gone out all the same): our ends of
            # the pipes close, and a child that exists or is still to come is killed, since nobody would own it
            if self._waiting.pop(request_id, None) is not None and not isinstance(exc, OSError):
                self._abandoned.add(request_id)
            elif future.done() and not future.cancelled() and future.exception() is None:
                self._discard(future.result()["pid"])  # forked, but this start was cancelled before it resumed
            _close(ours)
            control.close()
            raise
        pid = forked["pid"]
        if cgroup is not None:
            self.placement = "clone3" if forked.get("placed") else "move"
        if sandbox is not None:
            sandbox.started()  # the child has its copies (the relay's socket); a failed fork kept ours for a spawn
        child = ForkedProcess(pid, control)
        if pid in self._early_exits:
            child.mark_exited(self._early_exits.pop(pid))
        else:
            self._children[pid] = child
        if gate_w >= 0:
            await self._open_gate(pid, groups, gate_w, ours[:3])
        try:
            await child.attach_fds((in_w, out_r, err_r), log, stdout_is_protocol, line_limit)
        except BaseException:  # cancelled with the child running: it ends here, not unowned later
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
            raise
        return child

    def _discard(self, pid: int) -> None:
        """Kill a forked child nobody will own (its start was cancelled); its exit event is then dropped."""
        self._children.pop(pid, None)
        if self._early_exits.pop(pid, None) is not None:
            return  # gone already, its exit seen: nothing to kill, no event to wait for
        self._discarded.add(pid)
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)  # its own group: it and whatever it started

    async def _open_gate(self, pid: int, groups: Sequence[Cgroup], gate_w: int, pipes: Sequence[int]) -> None:
        """A gated child waits, before any server code, until it is in its control groups: move it there, then
        let it go. If it cannot be moved, it is killed (closing the gate ends it too) and the start fails."""
        try:
            # a move may wait for an RCU grace period (docs/performance.md): not on the spawner's thread either
            await anyio.to_thread.run_sync(_join, pid, groups)
            os.write(gate_w, b"x")
        except BaseException as exc:  # cancelled too: the child must not run outside its groups, nor our fds stay
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            _close(pipes)
            if isinstance(exc, OSError):
                reason = f"cannot put the forked instance (pid {pid}) in its control groups: {exc}"
                raise OSError(exc.errno, reason) from exc
            raise
        finally:
            os.close(gate_w)

    async def close(self) -> None:
        self._closing = True
        if self._requests is not None:
            self._requests.close()  # the template kills its children's groups and exits
        if self._template is not None:
            await self._template.stop(eof_grace=2.0)
        if self._events is not None:
            self._events.close()


def _join(pid: int, groups: Sequence[Cgroup]) -> None:
    for group in groups:
        group.join(pid)


def _close(fds: Sequence[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def _send(sock: socket.socket, request: dict[str, Any], fds: list[int]) -> None:
    socket.send_fds(sock, [json.dumps(request).encode() + b"\n"], fds)
