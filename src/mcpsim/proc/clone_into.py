"""Fork straight into a cgroup v2 group: `clone3(CLONE_INTO_CGROUP)` (Linux 5.7), for the fork template.

A forked child that joins its instance's group by writing to `cgroup.procs` takes the kernel's
`cgroup_threadgroup_rwsem` for writing, which first waits for an RCU grace period: measured, 10-48 ms of a
~70 ms fork-server start (docs/performance.md). A child created in its group never moves, so nothing waits.

Python has no `clone3`, so `fork_into` does what `os.fork()` does around the system call: `PyOS_BeforeFork`,
the call itself with the interpreter lock held (`ctypes.pythonapi`'s kind of library), then
`PyOS_AfterFork_Child` or `PyOS_AfterFork_Parent`, so the interpreter's locks, threads and `os.register_at_fork`
hooks are handled as by `os.fork()`. What it skips is glibc's own fork bookkeeping: its `pthread_atfork`
handlers (the template refuses to fork when it runs threads, so no library lock can be held) and the child's
cached thread id, which then stays the template's (unique: the template is alive, so no other thread of the
child can have it). Where the call is refused (an older kernel, a v1 hierarchy, seccomp, another architecture)
`fork_into` returns None and the template forks as before. Standard library only (see `fork_template.py`).
"""

import ctypes
import os
import platform
import signal

CLONE_INTO_CGROUP = 0x200000000
SYS_CLONE3 = {"x86_64": 435, "aarch64": 435}.get(platform.machine())
"""The same number on both (the generic table); elsewhere the template only forks."""


class _CloneArgs(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_uint64)
        for name in (
            "flags",
            "pidfd",
            "child_tid",
            "parent_tid",
            "exit_signal",
            "stack",
            "stack_size",
            "tls",
            "set_tid",
            "set_tid_size",
            "cgroup",
        )
    ]


_libc = ctypes.PyDLL(None, use_errno=True)  # PyDLL: the interpreter lock stays held across the call
_api = ctypes.pythonapi


def fork_into(group_dir: str) -> int | None:
    """Fork a child that starts in the cgroup v2 group `group_dir`: its pid here, 0 in the child; None (and no
    child) when this kernel or hierarchy does not allow it; OSError if `group_dir` cannot be opened."""
    if SYS_CLONE3 is None:
        return None
    group = os.open(group_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        args = _CloneArgs(flags=CLONE_INTO_CGROUP, exit_signal=signal.SIGCHLD, cgroup=group)
        _api.PyOS_BeforeFork()
        pid = _libc.syscall(ctypes.c_long(SYS_CLONE3), ctypes.byref(args), ctypes.c_size_t(ctypes.sizeof(args)))
        if pid == 0:
            _api.PyOS_AfterFork_Child()
            return 0
        _api.PyOS_AfterFork_Parent()
        return pid if pid > 0 else None
    finally:
        os.close(group)
