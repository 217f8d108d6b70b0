"""Fork server template: imports a Python server's dependencies once, then forks one child per instance.

Starting a Python MCP server costs most of a second of CPU, nearly all of it importing the SDK and its
dependencies. This process pays that once: it imports the modules the server imports (found by reading the
server's source, never by running it, so module-level code that reads the seed or config runs fresh in each
child), freezes the heap for the garbage collector, and then serves fork requests. Each child gets its own
stdin/stdout/stderr (passed over the control socket), argv, environment, session and process group, and then
runs the server as `__main__`, as `python -m module` or `python script.py` would.

This file uses only the standard library so any Python interpreter can run it as a script (an isolated venv
has no mcpsim installed). Protocol, over two Unix socket pairs given as file descriptors:
- requests (from the pool): one JSON line per message, with the child's three stdio fds as SCM_RIGHTS, and a
  fourth, its end of the live-fork control socket (`live_fork.py`), when the request says `"fds": 4`;
  `{"id": n, "kind": "module"|"script", "target": ..., "argv": [...], "env": {...}, "cwd": ..., "cgroup": ...}`
  (`cgroup`: the `cgroup.procs` file of the instance's control group, or null; the child joins it before it
  signals it is ready and long before it runs the server, so everything the server starts is in it;
  optional `sandbox`: `{"rlimits": [[name, soft, hard]], "isolate": {...}}`, applied by the child before it
  signals ready; `"gate": true`: one more fd, the read end of a pipe, on which the child waits after it signals
  ready and before anything else runs: a sandboxed template is `nobody` without capabilities (the code it
  preloads is the server's, nobody vetted it), so the pool, outside, moves the child into its control groups by
  pid and then writes one byte; end of file instead means the child exits at once)
- events (to the pool): JSON lines: `{"hello": ...}` once, `{"id": n, "pid": p, "placed": bool}` (`placed`:
  created in its `cgroup` by `clone_into.py`, so it never moved) or `{"id": n, "error": ...}` per request,
  `{"exit": pid, "code": c}` when a child ends.
When the request socket closes (the pool ended, however) every child's group is killed and the template exits.
"""

import ast
import contextlib
import ctypes
import ctypes.util
import gc
import importlib
import importlib.util
import json
import os
import resource
import runpy
import selectors
import signal
import socket
import sys
import threading
from pathlib import Path

_spec = importlib.util.spec_from_file_location("mcpsim_live_fork", Path(__file__).with_name("live_fork.py"))
assert _spec is not None and _spec.loader is not None
live_fork = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(live_fork)  # by path: an isolated venv's interpreter has no mcpsim to import it from


def _load(name: str, path: Path):  # noqa: ANN202 - a module loaded by path, standard library only
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_SANDBOX = Path(__file__).with_name("sandbox")
isolation = _load("mcpsim_sandbox_isolate", _SANDBOX / "isolate.py")
clone_into = _load("mcpsim_clone_into", Path(__file__).with_name("clone_into.py"))
relay = _load("mcpsim_sandbox_relay", _SANDBOX / "relay.py")

PR_SET_PDEATHSIG = 1
CONTROL_FD = 1000
"""Where a child keeps its live-fork control socket: above the fds a server opens, below the usual 1024 limit."""
RELAY_FD = 1001
"""Where an isolated child keeps its relay's Unix socket until it forks the relay."""
ALWAYS_PRELOAD = (
    "anyio._backends._asyncio",
    "mcp.server.stdio",
    "mcp.server.mcpserver",
    "rich.console",  # the SDK configures logging with rich when a server is built
    "rich.logging",
)


def imports_of(kind: str, target: str) -> list[str]:
    """Top-level modules the target imports, read from its source without executing it."""
    if kind == "module":
        spec = importlib.util.find_spec(target)
        path = spec.origin if spec else None
    else:
        path = target
    if not path or not Path(path).is_file():
        return []
    tree = ast.parse(Path(path).read_bytes(), path)
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def preload(kind: str, target: str, extra: list[str]) -> tuple[list[str], list[str]]:
    loaded, failed = [], []
    for name in [*imports_of(kind, target), *ALWAYS_PRELOAD, *extra]:
        if name in sys.modules:
            continue
        try:
            importlib.import_module(name)
            loaded.append(name)
        except Exception as exc:  # a module that fails to preload simply loads in the child
            failed.append(f"{name}: {exc!r}"[:200])
    return loaded, failed


def warm_sdk() -> bool:
    """Build and drop a throwaway SDK `MCPServer` (one tool with an annotated argument, one resource), so the
    caches a first build fills (pydantic's schema machinery, the SDK's tool and resource models) are filled in
    the template, once, and shared: a forked FrozenLake child built its server in ~15 ms before, ~10.5 after.
    Nothing of the target's code runs, and the root logger (which `MCPServer` configures) is put back as it
    was, so a server that configures logging itself sees what a fresh interpreter would. False if the SDK
    server is not loaded or the warm-up fails (the children then simply pay it)."""
    if "mcp.server.mcpserver" not in sys.modules:
        return False
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        from typing import Annotated

        from mcp.server.mcpserver import MCPServer
        from mcp.types import CallToolResult
        from pydantic import Field

        server = MCPServer("warm-up", instructions="warm-up", log_level="WARNING")

        async def tool(action: str) -> CallToolResult:
            raise NotImplementedError

        choice = Annotated[str, Field(description="one of: a", json_schema_extra={"enum": ["a"]})]
        tool.__annotations__ = {"action": choice, "return": CallToolResult}
        server.add_tool(tool, name="warm_up", description="warm-up")
        server.resource("warmup://state", name="state", description="warm-up")(lambda: "")
        return True
    except Exception:
        return False
    finally:
        for handler in root.handlers:
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)


def thread_count() -> int:
    try:
        return len(list(Path("/proc/self/task").iterdir()))
    except OSError:
        return threading.active_count()


class Template:
    def __init__(self, requests: socket.socket, events: socket.socket) -> None:
        self.requests = requests
        self.events = events
        self.children: set[int] = set()
        self.prctl = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
        self.pid = os.getpid()
        self.clone_into = True
        """Children whose request names a cgroup v2 group are created in it, until the kernel refuses once."""

    def send(self, message: dict) -> None:
        self.events.sendall((json.dumps(message) + "\n").encode())

    def serve(self) -> None:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        selector = selectors.DefaultSelector()
        selector.register(self.requests, selectors.EVENT_READ, "request")
        selector.register(wake_r, selectors.EVENT_READ, "wake")
        buffer = b""
        pending_fds: list[int] = []
        while True:
            for key, _ in selector.select():
                if key.data == "wake":
                    with contextlib.suppress(BlockingIOError):
                        os.read(wake_r, 4096)
                    self.reap()
                    continue
                data, fds, _, _ = socket.recv_fds(self.requests, 1 << 20, 8)
                if not data:
                    self.shutdown()
                    return
                pending_fds.extend(fds)
                buffer += data
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    request = json.loads(line)
                    count = _fd_count(request)
                    fds, pending_fds = pending_fds[:count], pending_fds[count:]
                    self.fork(request, fds)
            self.reap()

    def fork(self, request: dict, fds: list[int]) -> None:
        if len(fds) != _fd_count(request):
            self.send({"id": request.get("id"), "error": f"got {len(fds)} file descriptors, not as announced"})
            for fd in fds:
                os.close(fd)
            return
        ready_r, ready_w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = None
        group = request.get("cgroup")
        if group and self.clone_into:  # born in its group: no move, no wait for the kernel (`clone_into.py`)
            try:
                pid = clone_into.fork_into(str(Path(group).parent))
                self.clone_into = pid is not None  # refused once, refused always: fork from now on
            except OSError:  # no such group: forked, the child's own join reports it
                pid = None
        placed = pid is not None
        if pid is None:
            pid = os.fork()
        if pid == 0:
            os.close(ready_r)
            self.become_child({**request, "cgroup": None} if placed else request, fds, ready_w)  # never returns
        os.close(ready_w)
        for fd in fds:
            os.close(fd)
        os.read(ready_r, 1)  # the child has its own session and process group now
        os.close(ready_r)
        self.children.add(pid)
        self.send({"id": request["id"], "pid": pid, "placed": placed})

    def become_child(self, request: dict, fds: list[int], ready_w: int) -> None:
        code = 1
        try:
            os.setsid()
            self.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != self.pid:
                os._exit(1)
            signal.set_wakeup_fd(-1)
            for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGPIPE):
                signal.signal(sig, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            for target_fd, fd in enumerate(fds[:3]):
                os.dup2(fd, target_fd)
            control = None
            box = request.get("sandbox") or {}
            isolated = box.get("isolate")
            # an isolated child is not forked live (its copies' pids are its own)
            if request.get("fds") in (4, 5) and not isolated:
                with contextlib.suppress(OSError):  # a file limit at or below CONTROL_FD: no live fork, that is all
                    control = os.dup2(fds[3], CONTROL_FD, inheritable=False)
            relay_fd = os.dup2(fds[4], RELAY_FD, inheritable=False) if request.get("fds") == 5 else None
            if request.get("cgroup"):  # after the dup2s, so a failure is reported on the instance's stderr
                join = os.open(request["cgroup"], os.O_WRONLY)
                os.write(join, b"0")
                os.close(join)
            for name, soft, hard in box.get("rlimits") or []:
                resource.setrlimit(getattr(resource, name), (soft, hard))
            os.write(ready_w, b"x")
            if request.get("gate") and os.read(fds[-1], 1) != b"x":
                os._exit(1)  # the pool could not put it in its control groups: nothing of the server may run
            os.closerange(3, CONTROL_FD)  # close_range(2): one system call each
            os.closerange(CONTROL_FD + 1 if relay_fd is None else RELAY_FD + 1, 65536)
            if isolated:
                isolation.isolate(isolated)  # returns in the server, in namespaces of its own
                if relay_fd is not None:
                    start_relay(relay_fd, int(isolated["relay_port"]))
                if isolated.get("filter"):
                    relay.install_filter(ctypes.CDLL(None, use_errno=True), bytes.fromhex(isolated["filter"]))
            if control is not None:
                live_fork.install(control, [0, 1, 2])
            os.environ.clear()
            os.environ.update(request["env"])
            if request.get("cwd"):
                os.chdir(request["cwd"])
            reseed_numpy()
            _fail_like_the_interpreter(request["kind"], request["target"])
            if request["kind"] == "module":
                sys.argv = [request["target"], *request["argv"]]
                runpy.run_module(request["target"], run_name="__main__", alter_sys=True)
            else:
                sys.argv = [request["target"], *request["argv"]]
                sys.path[0] = str(Path(request["target"]).resolve().parent)
                runpy.run_path(request["target"], run_name="__main__")
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if exc.code is not None and not isinstance(exc.code, int):
                print(exc.code, file=sys.stderr)
        except BaseException:  # report like an interpreter would, then exit
            import traceback

            traceback.print_exc()
            code = 1
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)

    def reap(self) -> None:
        while self.children:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None:
                return
            pid = info.si_pid
            # The child is a zombie until reaped, so its pgid cannot be reused yet: end what it left behind.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            self.children.discard(pid)
            self.send({"exit": pid, "code": os.waitstatus_to_exitcode(status)})

    def shutdown(self) -> None:
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        for pid in list(self.children):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def _fd_count(request: dict) -> int:
    """3 (stdio), 4 (and the live-fork control socket), 5 (and an isolated child's relay socket); one more, last,
    for a gated child's gate."""
    count = request.get("fds")
    return (count if count in (4, 5) else 3) + (1 if request.get("gate") else 0)


def start_relay(listen_fd: int, port: int) -> None:
    """Fork the relay of an isolated HTTP/SSE child (`sandbox/relay.py`): the child relays, this process goes on
    to be the server (its seccomp filter, installed next, does not bind the relay)."""
    server = os.getpid()
    sys.stdout.flush()
    sys.stderr.flush()
    if os.fork() == 0:
        try:
            os.closerange(3, listen_fd)
            signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as in any Python process: a peer gone is an OSError
            relay.be_relay(ctypes.CDLL(None, use_errno=True), listen_fd, port, server)
        finally:
            os._exit(0)
    os.close(listen_fd)


def _fail_like_the_interpreter(kind: str, target: str) -> None:
    """A missing script or module ends the child as `python script.py` / `python -m module` would (same exit code,
    same one line), so a forked start fails with the message a spawned one gives, not a runpy traceback."""
    if kind == "module":
        try:
            found = importlib.util.find_spec(target) is not None
        except ImportError:
            found = False
        if not found:
            print(f"{sys.executable}: No module named {target}", file=sys.stderr)
            raise SystemExit(1)
        return
    try:
        with Path(target).open("rb"):
            pass
    except OSError as exc:
        print(f"{sys.executable}: can't open file {target!r}: [Errno {exc.errno}] {exc.strerror}", file=sys.stderr)
        raise SystemExit(2) from None


def reseed_numpy() -> None:
    """A fresh process would get fresh global random state; a fork copies the template's."""
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        with contextlib.suppress(Exception):
            numpy.random.seed(int.from_bytes(os.urandom(4), "little"))


def main() -> None:
    request_fd, event_fd, kind, target = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    extra = [name for name in sys.argv[5:] if name]
    requests = socket.socket(fileno=request_fd)
    events = socket.socket(fileno=event_fd)
    ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if kind == "script":
        sys.path.insert(0, str(Path(target).resolve().parent))
    loaded, failed = preload(kind, target, extra)
    warmed = warm_sdk()
    gc.collect()
    gc.freeze()  # keep the collector from touching (and copying) the shared heap in every child
    threads = thread_count()
    hello = {"loaded": loaded, "failed": failed, "threads": threads, "pid": os.getpid(), "warmed": warmed}
    if threads > 1:
        hello["unsafe"] = f"the template runs {threads} threads after preloading; forking it is not safe"
        events.sendall((json.dumps({"hello": hello}) + "\n").encode())
        return
    events.sendall((json.dumps({"hello": hello}) + "\n").encode())
    Template(requests, events).serve()


if __name__ == "__main__":
    main()
