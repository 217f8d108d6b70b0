"""A forked child's own sandbox, made after the fork: namespaces of its own, as a spawned bwrap instance has.

The fork server's template runs in one sandbox (`bwrap.template_argv`) that every child shares: its mount, ipc,
uts and network namespaces and the host's pid namespace. That is fine for a stdio server in `strict` (no socket
at all), but an HTTP/SSE backend listens on its own `127.0.0.1:{port}` and talks to a relay (`relay.py`), which a
shared network namespace would open to every sibling. So for those, each child (run by the template, after it
joined its groups, set its rlimits and became `nobody` for good) calls `isolate`:

1. as `nobody`, unshares a user namespace (mapping only nobody onto nobody: it gains capabilities over its new
   namespaces and nothing outside them) with new mount, network, pid, ipc, uts and cgroup namespaces; brings its
   loopback up;
2. forks the new pid namespace's init (pid 1), which mounts that namespace's `/proc`, covers `/tmp`, `/root`,
   `/home`, `/run` with fresh tmpfs (so no sibling's work dir, relay socket or temp file is visible), binds back
   what the server needs (read-only as in the template) and its own work dir (read-write), a fresh `devpts`;
3. the init forks the server (pid 2), which drops every capability, forks the relay if there is one (outside
   the server's seccomp filter, which it installs next: `strict` refuses `connect`), and returns to run the
   server's code. The init waits for it and exits with its status (128 + signal, as bwrap's init does), and
   the child the template forked does the same, so the pool sees what it sees for a spawned instance.

A new `/proc` may be mounted in a user namespace only where a whole procfs is already visible: the template
therefore has the host's `/proc` bound read-only at `HOST_PROC` (hidden again in step 2), and the new one is
read-only too (the kernel requires it to be no less restricted). Processes: the child, the init, the server and
the relay, as a spawned instance's bwrap, bwrap's init, server and relay.

Standard library only: the template loads it by path (an isolated venv has no mcpsim).
"""

import contextlib
import ctypes
import os
import signal
import socket
import struct
import sys
from pathlib import Path

HOST_PROC = "/run/mcpsim-host-proc"
"""Where a template whose children isolate themselves has the host's /proc (read-only) for the kernel's check."""
HIDDEN = ("/tmp", "/root", "/home", "/run")
CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC = 0x20000, 0x02000000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_BIND, MS_REC, MS_PRIVATE = 0x1000, 0x4000, 1 << 18
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP = 1, 4, 24
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 1
CAP_LAST = 63
_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def _encode(text: str | None) -> bytes | None:
    return None if text is None else os.fsencode(text)


def _mount(source: str | None, target: str, kind: str | None, flags: int, data: str | None = None) -> None:
    result = _libc.mount(_encode(source), _encode(target), _encode(kind), flags, _encode(data))
    _check(result, f"mount {kind or source} on {target}")


def _tie_to_parent(parent: int) -> None:
    """Die with the parent, and check it is still there. A pid namespace's init sees its parent as 0 (it is
    outside): if that parent was killed first, the pool's kill of the group and control group ends the init."""
    _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PDEATHSIG)")
    if os.getppid() != parent:
        os._exit(1)


def drop_capabilities() -> None:
    """No capability left in the user namespace (bounding set, then permitted/effective/inheritable)."""
    for cap in range(CAP_LAST + 1):
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            break  # past the kernel's last capability
    header = struct.pack("Ii", 0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = bytes(24)
    _check(_libc.capset(header, data), "capset")


def _loopback_up() -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:  # interface ioctls work on any socket
        import fcntl

        request = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH14s", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH14s", b"lo", flags | IFF_UP, b""))


def _exit_like(status: int) -> None:
    code = os.waitstatus_to_exitcode(status)
    os._exit(128 - code if code < 0 else code)


def _wait_for(pid: int) -> None:
    """Reap children until `pid` ends (an init adopts the server's orphans), then exit with its status."""
    while True:
        try:
            reaped, status = os.waitpid(-1, 0)
        except ChildProcessError:
            os._exit(1)
        except InterruptedError:
            continue
        if reaped == pid:
            _exit_like(status)


def _quiet() -> None:
    """A waiting process holds none of the server's pipes (their ends must close when the server does)."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(null, fd)
    os.close(null)
    os.closerange(3, 65536)


def _cover(spec: dict) -> None:
    """In the init: fresh /proc, tmpfs over the hidden directories, needed paths and the work dir bound back."""
    _mount("proc", "/proc", "proc", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    keep = sorted({*spec.get("keep", []), spec["work_dir"]})
    handles = {}
    for path in keep:
        with contextlib.suppress(OSError):  # not in the template's view: the server would not find it there either
            handles[path] = os.open(path, os.O_PATH | os.O_DIRECTORY)
    size = int(spec.get("tmpfs_size") or 64 << 20)
    covered = [*HIDDEN, *spec.get("cover", [])]
    for hidden in covered:
        mode = "1777" if hidden == "/tmp" else "0755"
        _mount("tmpfs", hidden, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size},mode={mode}")
    for path, fd in handles.items():
        if not any(path == hidden or path.startswith(hidden + "/") for hidden in covered):
            continue
        Path(path).mkdir(mode=0o755, parents=True, exist_ok=True)
        _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
    for fd in handles.values():
        os.close(fd)
    for hidden in covered:
        if hidden != "/tmp":  # as in a spawned sandbox: nothing there for nobody to write
            _mount(None, hidden, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    _mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620")


def isolate(spec: dict) -> None:
    """Run in the forked child (already `nobody`): returns in the server process, inside namespaces of its own;
    the two processes above it never return (they wait and exit with the server's status).

    `spec`: `work_dir`, `keep` (paths to bind back), `cover` (the template's roots of work dirs outside the
    hidden directories, covered too), `tmpfs_size`, `cwd`."""
    _check(_libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), "prctl(DUMPABLE)")  # the id maps are written through /proc/self
    flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP
    _check(_libc.unshare(flags), "unshare (user namespaces refused?)")
    uid, gid = os.getuid(), os.getgid()
    Path("/proc/self/setgroups").write_text("deny")
    Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
    Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _loopback_up()
    sys.stdout.flush()
    sys.stderr.flush()
    init = os.fork()
    if init:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # it ends when the server does, with its status
            signal.signal(sig, signal.SIG_IGN)
        drop_capabilities()
        _quiet()
        _wait_for(init)
    try:
        _tie_to_parent(0)  # `child` is outside this pid namespace
        _cover(spec)
        os.chdir(spec.get("cwd") or spec["work_dir"])
        server = os.fork()
    except BaseException:
        import traceback

        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    if server:
        drop_capabilities()
        _quiet()
        _wait_for(server)
    _tie_to_parent(1)
    drop_capabilities()
