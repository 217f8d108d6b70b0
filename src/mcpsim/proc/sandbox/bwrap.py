"""The bwrap command line of a sandboxed instance, and the seccomp filter of `strict`.

Why bwrap: it builds the namespaces a container would (user, mount, pid, ipc, uts, network) without a daemon or
an image, in a few milliseconds, from a command line we can read in one place. When mcpsim is root, bwrap builds
the sandbox with root's privileges (it must reach the interpreter under a 0700 /root, say) and the server then
drops to a real `nobody` (65534) with no capability and `no_new_privs`, so it is nobody outside the sandbox too
(an escape from the mount namespace still leaves an unprivileged user; a user namespace mapping nobody onto root
would not). For anyone else bwrap makes a user namespace mapping them to nobody.

The filesystem: `/` read-only, a fresh `/dev` and `/proc` (of the instance's pid namespace: it sees its own
processes only), empty size-bounded tmpfs over `/tmp`, `/root`, `/home`, `/run` (so nothing of the user's files
and no other instance's work dir is visible), then what the server needs from there bound back read-only (its
interpreter's prefix, its Node project copy, its npm cache, its script), and its private work dir read-write.

The fork server's template is wrapped differently (`template_argv`): it keeps the host's pid namespace (children
report real pids, which the pool moves into their control groups), and drops to `nobody` like an instance.
"""

import errno
import os
import platform
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path

from mcpsim.proc.sandbox.config import SandboxConfig

NOBODY = 65534
HIDDEN = ("/tmp", "/root", "/home", "/run")
"""Directories replaced by an empty tmpfs in every sandbox (then the needed paths bound back read-only)."""
TMPFS_SIZE = 64 << 20
"""Bound of each private tmpfs (`/tmp` and the others) when no `--limit-file-size` bounds it."""

_CALLS = ("socket", "connect", "sendto", "sendmsg", "sendmmsg", "ptrace", "io_uring_setup")
_ARCH = {
    "x86_64": (0xC000003E, (41, 42, 44, 46, 307, 101, 425)),
    "aarch64": (0xC00000B7, (198, 203, 206, 211, 269, 117, 425)),
}
"""Machine -> (AUDIT_ARCH, the numbers of the system calls in `_CALLS`, which the filters test)."""
AF_UNIX, AF_INET, AF_INET6, SOCK_STREAM, SOCK_TYPE_MASK = 1, 2, 10, 1, 0xF
MSG_FASTOPEN = 0x20000000
"""sendto/sendmsg with this flag open a TCP connection (fast open) without connect(): refused with connect."""
_LD, _JEQ, _JSET, _AND, _RET = 0x20, 0x15, 0x45, 0x54, 0x06  # BPF_LD|W|ABS, JMP|JEQ|K, JMP|JSET|K, ALU|AND|K, RET|K
_ALLOW = 0x7FFF0000


def _refuse(code: int) -> int:
    return 0x00050000 | code  # SECCOMP_RET_ERRNO


def _arg(index: int) -> int:
    """Offset of the low half of system call argument `index` in `struct seccomp_data` (little-endian)."""
    return 16 + 8 * index


def _assemble(program: list[tuple]) -> bytes:
    """Classic BPF with labels: ("label", name) marks a place; a jump's targets may be names (forward only)."""
    places, index = {}, 0
    for item in program:
        if item[0] == "label":
            places[item[1]] = index
        else:
            index += 1
    out, index = [], 0
    for item in program:
        if item[0] == "label":
            continue
        code, true, false, k = item
        jt = places[true] - index - 1 if isinstance(true, str) else true
        jf = places[false] - index - 1 if isinstance(false, str) else false
        assert 0 <= jt < 256 and 0 <= jf < 256, f"BPF jumps go forward only: {item}"
        out.append(struct.pack("=HBBI", code, jt, jf, k))
        index += 1
    return b"".join(out)


def seccomp_filter(listening: bool = False, relaying: bool = False) -> bytes:
    """The seccomp program of `strict`; OSError on an unknown machine. Every system call of a foreign ABI fails
    (32-bit calls on a 64-bit kernel could reach `socketcall`), so does io_uring (it can open sockets itself).

    Without `listening` (stdio backends): `socket()` of any family but AF_UNIX fails with EAFNOSUPPORT. With it
    (an HTTP/SSE backend behind `relay.py`): inet stream sockets may be made, bound, listened and accepted on,
    but `connect()` (any family) and TCP fast-open sends fail with ENETUNREACH, and `ptrace` with EPERM, so the
    server answers the relay's connections and reaches nothing, not even its own loopback.

    With `relaying` (the fork template of an HTTP/SSE backend, whose children isolate themselves, see
    `isolate.py`): inet stream sockets may also connect (the relay, forked from a child, connects to its server;
    the server then adds the `listening` filter on itself); datagram and raw sockets, io_uring still fail."""
    machine = platform.machine()
    if machine not in _ARCH:
        raise OSError(f"no seccomp filter for this machine ({machine})")
    arch, numbers = _ARCH[machine]
    nr = dict(zip(_CALLS, numbers, strict=True))
    no_family, unreachable = _refuse(errno.EAFNOSUPPORT), _refuse(errno.ENETUNREACH)
    program: list[tuple] = [
        (_LD, 0, 0, 4),
        (_JEQ, 1, 0, arch),
        (_RET, 0, 0, no_family),
        (_LD, 0, 0, 0),
        (_JEQ, "socket", 0, nr["socket"]),
        (_JEQ, "no_family", 0, nr["io_uring_setup"]),
    ]
    if listening and not relaying:
        program += [
            (_JEQ, "unreachable", 0, nr["connect"]),
            (_JEQ, "flags3", 0, nr["sendto"]),
            (_JEQ, "flags3", 0, nr["sendmmsg"]),
            (_JEQ, "flags2", 0, nr["sendmsg"]),
            (_JEQ, "not_permitted", 0, nr["ptrace"]),
        ]
    program += [(_RET, 0, 0, _ALLOW), ("label", "socket"), (_LD, 0, 0, _arg(0)), (_JEQ, "allow", 0, AF_UNIX)]
    if listening or relaying:
        program += [
            (_JEQ, "stream", 0, AF_INET),
            (_JEQ, "stream", "no_family", AF_INET6),
            ("label", "stream"),
            (_LD, 0, 0, _arg(1)),
            (_AND, 0, 0, SOCK_TYPE_MASK),
            (_JEQ, "allow", "no_family", SOCK_STREAM),
            ("label", "no_family"),
            (_RET, 0, 0, no_family),
            ("label", "flags3"),
            (_LD, 0, 0, _arg(3)),
            (_JSET, "unreachable", "allow", MSG_FASTOPEN),
            ("label", "flags2"),
            (_LD, 0, 0, _arg(2)),
            (_JSET, "unreachable", "allow", MSG_FASTOPEN),
            ("label", "unreachable"),
            (_RET, 0, 0, unreachable),
            ("label", "not_permitted"),
            (_RET, 0, 0, _refuse(errno.EPERM)),
        ]
    else:
        program += [("label", "no_family"), (_RET, 0, 0, no_family)]
    program += [("label", "allow"), (_RET, 0, 0, _ALLOW)]
    return _assemble(program)


def tmpfs_size(config: SandboxConfig) -> int:
    """Bytes of each private tmpfs: `--limit-file-size` if smaller than `TMPFS_SIZE`."""
    return min(config.file_size, TMPFS_SIZE) if config.file_size else TMPFS_SIZE


def _tmpfs(config: SandboxConfig, path: str) -> list[str]:
    size = tmpfs_size(config)
    return ["--perms", "01777" if path == "/tmp" else "0755", "--size", str(size), "--tmpfs", path]


def is_hidden(path: str) -> bool:
    """Whether `path` lies in a directory every sandbox replaces with an empty tmpfs."""
    path = os.path.realpath(path)
    return any(path == hidden or path.startswith(hidden + "/") for hidden in HIDDEN)


def needed_paths(argv: Sequence[str], cwd: str | None, extra: Iterable[str]) -> list[str]:
    """Existing paths under a hidden directory the server needs: its script and cwd, the interpreter's prefix,
    PYTHONPATH and npm cache entries (`extra`). Bound back read-only after the tmpfs hid them."""
    found: list[str] = []
    candidates = [cwd or "", *extra, *(token for token in argv if token.startswith("/"))]
    for candidate in candidates:
        if not candidate:
            continue
        path = os.path.realpath(candidate)
        if not any(path == hidden or path.startswith(hidden + "/") for hidden in HIDDEN):
            continue
        if Path(path).is_file():
            path = str(Path(path).parent)
        if Path(path).is_dir() and path not in found:
            found.append(path)
    found.sort()
    return [path for path in found if not any(path.startswith(other + "/") for other in found)]


def _common(config: SandboxConfig, ro_paths: Sequence[str]) -> list[str]:
    """The filesystem: `/` read-only, fresh /dev and /proc, tmpfs over the hidden directories, the needed paths
    bound back read-only (their new parents world-traversable: bwrap would make them 0700)."""
    out = ["--hostname", "mcpsim", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    for hidden in HIDDEN:
        out += _tmpfs(config, hidden)
    made: set[str] = set(HIDDEN)
    for path in ro_paths:
        out += [*_parents(path, made), "--ro-bind", path, path]
    return out


def _parents(path: str, made: set[str]) -> list[str]:
    """`--dir` for the ancestors of `path` inside a hidden directory (world-traversable, not bwrap's 0700)."""
    out = []
    for parent in (str(parent) for parent in reversed(Path(path).parents)):
        if parent not in made and any(parent.startswith(hidden + "/") for hidden in HIDDEN):
            out += ["--perms", "0755", "--dir", parent]
            made.add(parent)
    return out


def _drop_privileges(as_root: bool) -> list[str]:
    """Inside a sandbox built by root: become `nobody` without any capability, and never regain one (setuid
    binaries included) before the server runs. Nothing when bwrap made a user namespace (it maps nobody)."""
    if not as_root:
        return []
    ids = str(NOBODY)
    return [
        "setpriv",
        "--reuid",
        ids,
        "--regid",
        ids,
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
        "--",
    ]


def _namespaces(as_root: bool) -> list[str]:
    """Root builds the sandbox with real privileges and the server drops to a real `nobody` (stronger than a
    user namespace mapping nobody onto root); anyone else gets a user namespace that maps them to nobody."""
    common = ["--unshare-ipc", "--unshare-uts", "--unshare-net", "--unshare-cgroup-try", "--die-with-parent"]
    if as_root:
        return [*common, "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    return ["--unshare-user", "--uid", str(NOBODY), "--gid", str(NOBODY), *common]


def instance_argv(
    config: SandboxConfig,
    argv: Sequence[str],
    *,
    work_dir: str,
    cwd: str | None,
    ro_paths: Sequence[str],
    seccomp_fd: int | None,
    limits: Sequence[str],
    as_root: bool,
    relay: Sequence[str] = (),
) -> list[str]:
    """`bwrap ... -- [prlimit ... --] [setpriv ... --] [relay ... --] argv`: one instance's command in its own
    sandbox.

    `limits` are `prlimit` options, applied inside the sandbox (none: the caller set the rlimits already); a
    pid namespace of its own (the server sees only its own processes) and a new session (no terminal to inject
    keystrokes into). `relay`: the command line of `relay.py` for an HTTP/SSE backend, which then installs the
    seccomp filter itself (on the server only), so `seccomp_fd` must be None."""
    out = ["bwrap", "--unshare-pid", "--new-session", *_namespaces(as_root), *_common(config, ro_paths)]
    out += [*_parents(work_dir, set(HIDDEN)), "--bind", work_dir, work_dir, "--chdir", cwd or work_dir]
    if seccomp_fd is not None:
        out += ["--seccomp", str(seccomp_fd)]
    setting = ["prlimit", *limits, "--"] if limits else []
    return [*out, "--", *setting, *_drop_privileges(as_root), *relay, *argv]


def template_argv(
    config: SandboxConfig,
    argv: Sequence[str],
    *,
    work_roots: Sequence[str],
    cwd: str | None,
    ro_paths: Sequence[str],
    seccomp_fd: int | None,
    host_proc: str | None = None,
) -> list[str]:
    """The fork server's template in a sandbox its children share: mount, ipc, uts and network namespaces, the
    same filesystem rules, every instance's work dir (under one of `work_roots`). It keeps the host's pid
    namespace, so the pids the children report are real, and it runs as `nobody` without any capability, as an
    instance does: what it preloads is the server's own code and dependencies, nobody vetted them, and a child
    inherits whatever they did. So a child cannot join its control groups itself: the pool moves it by pid
    before letting it run (the gate in `fork_template.py`). Only for root (bwrap builds it with real
    privileges, see `_namespaces`).

    `host_proc`: where to bind the host's /proc read-only, for children that make namespaces of their own
    (`isolate.py`: a new /proc may be mounted in a user namespace only where a whole procfs is visible)."""
    out = ["bwrap", *_namespaces(True), *_common(config, ro_paths)]
    if host_proc is not None:
        out += ["--ro-bind", "/proc", host_proc]
    for directory in work_roots:
        out += ["--bind", directory, directory]
    if cwd:
        out += ["--chdir", cwd]
    if seccomp_fd is not None:
        out += ["--seccomp", str(seccomp_fd)]
    return [*out, "--", *_drop_privileges(True), *argv]
