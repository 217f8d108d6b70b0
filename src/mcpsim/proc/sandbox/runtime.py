"""`Sandbox`: the pool's sandbox at run time. Probes at start, then makes each instance's `SandboxedStart`.

`start` refuses loudly when the sandbox cannot be built here (no bwrap, no prlimit/setpriv, namespaces refused:
it runs a real sandboxed `true`), so a configured sandbox is never silently skipped. Per instance,
`open_instance` makes the private work dir (owned by nobody, removed at the end), the limit groups, the
seccomp filter's pipe, and the command line; `SandboxedStart.explain` names the limit that ended the instance.
"""

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from mcpsim.errors import SandboxUnavailable, StartError
from mcpsim.proc.sandbox import bwrap
from mcpsim.proc.sandbox import isolate as isolation
from mcpsim.proc.sandbox.classify import classify
from mcpsim.proc.sandbox.config import SandboxConfig
from mcpsim.proc.sandbox.limits import InstanceLimits, LimitGroups, prlimit_options, rlimits
from mcpsim.proc.sandbox.paths import interpreter_paths

logger = logging.getLogger(__name__)

PROBE_TIMEOUT = 10.0
RELAY = str(Path(__file__).with_name("relay.py"))
"""Run by path with `python -I -S` (standard library only) inside an HTTP/SSE backend's sandbox."""
MAX_SOCKET_PATH = 107
"""Longest path of a Unix socket (`sun_path` holds 108 bytes with the terminating NUL)."""
ROOT_PREFIX = "mcpsim-sandbox-"
"""Each pool's directory of work dirs in the temp dir: `mcpsim-sandbox-<pid>-<random>`."""
TOOLS = ("bwrap", "prlimit", "setpriv")
"""bwrap builds the namespaces; prlimit (util-linux) sets the rlimits inside (not as root: the spawn sets them
before exec); setpriv (util-linux) drops root."""


@dataclass
class SandboxedStart:
    """One instance's sandbox: the command line, what the child must do before exec, and the cleanup."""

    argv: list[str]
    env: dict[str, str]
    work_dir: str
    config: SandboxConfig
    limits: InstanceLimits
    pass_fds: list[int] = field(default_factory=list)
    procs_files: list[str] = field(default_factory=list)
    """Limit groups the child joins before exec (besides its tracking group)."""
    child_rlimits: list[tuple[str, int, int]] = field(default_factory=list)
    """For a forked child: rlimits it sets on itself (the pool moves it into its groups)."""
    preexec_rlimits: list[tuple[str, int, int]] = field(default_factory=list)
    """For a spawn as root: rlimits the child sets on itself before exec'ing bwrap (inherited by the server)."""
    socket_path: str | None = None
    """An HTTP/SSE backend's Unix socket (outside the sandbox), which `relay.py` inside connects to its port."""
    relay_fd: int | None = None
    """That socket (bound, not listening), also in `pass_fds`: a forked child gets it over the control socket."""
    isolate: dict[str, Any] | None = None
    """For a forked HTTP/SSE child: what `isolate.py` needs to give it namespaces of its own (work dir, paths
    to bind back, tmpfs size, relay port, the server's seccomp program in hex)."""

    def started(self) -> None:
        """The process runs: close our copies of what it inherited (the seccomp pipe)."""
        for fd in self.pass_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.pass_fds = []

    def explain(self, returncode: int | None, stderr: str) -> str | None:
        """The limit that ended the process, as a sentence for its session; None if no limit did."""
        return classify(returncode, self.limits.hit(), stderr, self.config)

    def close(self) -> None:
        """Blocking: remove the limit groups and the work dir (after the processes are gone)."""
        self.started()
        self.limits.remove()
        shutil.rmtree(self.work_dir, ignore_errors=True)
        if self.socket_path is not None:
            Path(self.socket_path).unlink(missing_ok=True)


class Sandbox:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.as_root = os.geteuid() == 0
        self.groups = LimitGroups(config)
        self.root: Path | None = None
        """Where instances' work dirs are made (one directory per pool, removed at its end)."""
        self.shared_roots: list[str] = []
        """Other directories holding instances' own directories (the pool's `{instance_dir}` root)."""

    def describe(self) -> dict[str, Any]:
        return {**self.config.describe(), "enforced_by": dict(self.groups.applied)}

    # -- pool lifecycle (blocking: run off the loop) ------------------------------------------------------------

    def start(self) -> None:
        """Probe: SandboxUnavailable naming the cause when an instance's sandbox cannot be built here."""
        missing = [tool for tool in TOOLS if shutil.which(tool) is None]
        if missing:
            raise SandboxUnavailable(
                f"--sandbox {self.config.level} needs {', '.join(missing)} on PATH "
                "(Debian: apt-get install bubblewrap util-linux; or `make sandbox-tools`)"
            )
        _remove_stale_roots()
        self.root = Path(tempfile.mkdtemp(prefix=f"{ROOT_PREFIX}{os.getpid()}-"))
        self.root.chmod(0o711)
        try:
            self.groups.start(self.as_root)
            self._probe()
        except BaseException:
            self.close()
            raise

    def _probe(self) -> None:
        box = self.open_instance("probe", [sys.executable, "-S", "-c", "print('ok')"], None, {}, sys.executable)
        try:
            result = subprocess.run(
                box.argv,
                env={**os.environ, **box.env},
                pass_fds=box.pass_fds,
                capture_output=True,
                timeout=PROBE_TIMEOUT,
                start_new_session=True,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SandboxUnavailable(f"--sandbox {self.config.level}: bwrap could not run here: {exc}") from None
        finally:
            box.close()
        if result.returncode != 0 or result.stdout.strip() != b"ok":
            detail = result.stderr.decode(errors="replace").strip()[-400:] or f"exit code {result.returncode}"
            raise SandboxUnavailable(
                f"--sandbox {self.config.level}: the sandbox cannot be built on this machine (user, mount or "
                f"network namespaces refused?): {detail}"
            )

    def close(self) -> None:
        self.groups.close()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    # -- instances ----------------------------------------------------------------------------------------------

    def _extra_paths(self, python: str, env: Mapping[str, str]) -> list[str]:
        extra = list(interpreter_paths(python))  # a copy: the cached list stays as it is
        for variable in ("PYTHONPATH", "NODE_PATH"):
            extra += [entry for entry in env.get(variable, os.environ.get(variable, "")).split(":") if entry]
        for variable in ("npm_config_cache", "NPM_CONFIG_CACHE"):
            if env.get(variable):
                extra.append(env[variable])
        return extra

    def _work_roots(self) -> list[str]:
        """The directories holding instances' work dirs (bound whole into a fork template)."""
        return [str(self.root), *self.shared_roots]

    def share_work_root(self, path: str) -> None:
        """Instances' own directories live under `path`: the fork template binds it, and a child dropped to
        nobody may pass through it (0711: it lists nothing; the names under it are 128-bit handles)."""
        if self.as_root:
            Path(path).chmod(0o711)
        self.shared_roots.append(path)

    def _work_dir(self, instance_id: str, given: str | None) -> str:
        if given is not None:  # the instance's own directory (`{instance_dir}`): nobody must be able to enter it
            if self.as_root:
                _give_dirs_to_nobody(given)
            return given
        assert self.root is not None, "Sandbox.start first"
        work = self.root / instance_id
        work.mkdir(mode=0o770)
        if self.as_root:  # nobody's, and group root's: bwrap (root without capabilities) must enter it
            os.chown(work, bwrap.NOBODY, 0)
        return str(work)

    def _seccomp_fd(self, listening: bool = False, relaying: bool = False) -> int | None:
        if self.config.level != "strict":
            return None
        read, write = os.pipe()
        os.write(write, bwrap.seccomp_filter(listening, relaying))
        os.close(write)
        return read

    def _relay_socket(self, instance_id: str) -> tuple[socket.socket, str]:
        """The Unix socket mcpsim reaches an HTTP/SSE backend through: bound, not listening (the relay listens
        once the server does, so a connect that succeeds means the server is there). Outside the sandbox; the
        relay gets it as a file descriptor only."""
        assert self.root is not None, "Sandbox.start first"
        path = str(self.root / f"{instance_id}.sock")
        if len(os.fsencode(path)) > MAX_SOCKET_PATH:
            raise OSError(f"the relay socket's path is too long ({path}): set TMPDIR to a shorter directory")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(path)
        except OSError:
            listener.close()
            raise
        return listener, path

    def _relay(self, instance_id: str, port: int) -> tuple[list[str], list[int], str]:
        """`relay.py`'s command line for an instance, the fds it inherits, and its socket's path."""
        listener, path = self._relay_socket(instance_id)
        fd = listener.detach()
        seccomp = self._seccomp_fd(listening=True)
        argv = [sys.executable, "-I", "-S", RELAY, str(fd), str(port), "-" if seccomp is None else str(seccomp), "--"]
        return argv, [fd] if seccomp is None else [fd, seccomp], path

    async def open(
        self,
        instance_id: str,
        argv: Sequence[str],
        cwd: str | None,
        env: Mapping[str, str],
        python: str,
        work_dir: str | None = None,
        relay_port: int | None = None,
    ) -> SandboxedStart:
        """`open_instance` off the event loop; StartError if the sandbox cannot be made."""
        try:
            return await anyio.to_thread.run_sync(
                self.open_instance, instance_id, argv, cwd, env, python, work_dir, relay_port
            )
        except OSError as exc:
            raise StartError(f"cannot build the instance's sandbox: {exc}") from None

    def open_instance(
        self,
        instance_id: str,
        argv: Sequence[str],
        cwd: str | None,
        env: Mapping[str, str],
        python: str,
        work_dir: str | None = None,
        relay_port: int | None = None,
    ) -> SandboxedStart:
        """Blocking: one instance's work dir, limit groups, and how to start it: `argv` (spawned), or
        `child_rlimits` (forked from the sandboxed template). `work_dir`: the instance's own
        directory (`pool/workdir.py`), whose variables its environment already has; else one is made here.
        `relay_port`: an HTTP/SSE backend listening there on its own loopback, reached through `relay.py`
        (spawned only)."""
        work = self._work_dir(instance_id, work_dir)
        try:
            limits = self.groups.instance(instance_id)
        except OSError:
            shutil.rmtree(work, ignore_errors=True)
            raise
        address_space = "memory" not in limits.groups
        options = prlimit_options(self.config, address_space)
        if "pids" in limits.groups or (self.as_root and "pids" in self.groups.roots):
            options = [option for option in options if not option.startswith("--nproc")]
        child_rlimits = rlimits(self.config, address_space)
        if self.config.pids and not (self.as_root and "pids" in limits.groups):
            child_rlimits.append(("RLIMIT_NPROC", self.config.pids, self.config.pids))
        # root: set the rlimits before exec'ing bwrap (one exec fewer than prlimit inside; RLIMIT_NPROC does
        # not count a user namespace here anyway, see limits.py); others: inside the new user namespace
        preexec_rlimits = child_rlimits if self.as_root else []
        if self.as_root:
            options = []
        relay: list[str] = []
        pass_fds: list[int] = []
        socket_path = None
        seccomp = None
        extra = self._extra_paths(python, env)
        try:
            if relay_port is not None:
                relay, pass_fds, socket_path = self._relay(instance_id, relay_port)
                extra += [*interpreter_paths(sys.executable), RELAY]
            else:
                seccomp = self._seccomp_fd()
                pass_fds = [seccomp] if seccomp is not None else []
        except OSError:
            limits.remove()
            shutil.rmtree(work, ignore_errors=True)
            raise
        ro_paths = bwrap.needed_paths(argv, cwd, extra)
        isolate = None
        if relay_port is not None:
            program = bwrap.seccomp_filter(listening=True) if self.config.level == "strict" else b""
            isolate = {
                "work_dir": work,
                "keep": ro_paths,
                "tmpfs_size": bwrap.tmpfs_size(self.config),
                "cover": [root for root in self._work_roots() if not bwrap.is_hidden(root)],
                "cwd": cwd,
                "relay_port": relay_port,
                "filter": program.hex(),
            }
        command = bwrap.instance_argv(
            self.config,
            argv,
            work_dir=work,
            cwd=cwd,
            ro_paths=ro_paths,
            seccomp_fd=seccomp,
            limits=options,
            as_root=self.as_root,
            relay=relay,
        )
        return SandboxedStart(
            argv=command,
            env={} if work_dir is not None else _work_env(work),
            work_dir=work,
            config=self.config,
            limits=limits,
            pass_fds=pass_fds,
            procs_files=limits.procs_files,
            child_rlimits=child_rlimits,
            preexec_rlimits=preexec_rlimits,
            socket_path=socket_path,
            relay_fd=pass_fds[0] if relay_port is not None else None,
            isolate=isolate,
        )

    def template_command(
        self,
        argv: Sequence[str],
        cwd: str | None,
        python: str,
        isolating: bool = False,
    ) -> tuple[list[str], list[int]]:
        """The fork server template's command line in its sandbox, and the fds it must inherit. `isolating`:
        its children make namespaces of their own (an HTTP/SSE backend, `isolate.py`)."""
        assert self.root is not None, "Sandbox.start first"
        seccomp = self._seccomp_fd(relaying=isolating)
        ro_paths = bwrap.needed_paths(argv, cwd, self._extra_paths(python, {}))
        command = bwrap.template_argv(
            self.config,
            argv,
            work_roots=self._work_roots(),
            cwd=cwd,
            ro_paths=ro_paths,
            seccomp_fd=seccomp,
            host_proc=isolation.HOST_PROC if isolating else None,
        )
        return command, [seccomp] if seccomp is not None else []


async def open_sandbox(config: SandboxConfig, stack: contextlib.AsyncExitStack, instance_root: str | None) -> Sandbox:
    """The pool's sandbox, probed (SandboxUnavailable naming the cause) and closed with `stack`; instances' own
    directories live under `instance_root` (see `Sandbox.share_work_root`)."""
    sandbox = Sandbox(config)
    await anyio.to_thread.run_sync(sandbox.start)
    stack.callback(sandbox.close)
    if instance_root is not None:
        sandbox.share_work_root(instance_root)
    logger.info("sandbox %s: %s", config.level, sandbox.describe(), extra={"event": "sandbox.ready"})
    return sandbox


def _give_dirs_to_nobody(top: str) -> None:
    """Nobody's and group root's, mode 0770, as `_work_dir` makes its own (bwrap, root without capabilities,
    enters it by the group). Directories only: a file there may be a hard link into a shared cache (an npm
    view), never re-owned."""
    for directory, _dirs, _files in os.walk(top):  # symlinks not followed
        os.chown(directory, bwrap.NOBODY, 0)
        Path(directory).chmod(0o770)


def _remove_stale_roots() -> None:
    """Work dirs of pools whose process is gone (a SIGKILLed server cannot remove its own)."""
    for entry in Path(tempfile.gettempdir()).glob(f"{ROOT_PREFIX}*"):
        pid = entry.name[len(ROOT_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(entry, ignore_errors=True)


def _work_env(work: str) -> dict[str, str]:
    """The instance's variables: its work dir as home and temp dir; npm told there is no network (else npx
    retries its registry's DNS for minutes, instead of failing at once with ENOTCACHED)."""
    return {"HOME": work, "TMPDIR": work, "MCPSIM_INSTANCE_DIR": work, "npm_config_offline": "true"}
