"""Is a process still running? Asked without the race of `pid_exists` followed by `Process(pid)`.

The process may be reaped between the two calls; psutil then raises `NoSuchProcess`, which made
"wait until it is gone" loops fail exactly when the process went away (seen in CI). A zombie is
gone for our purposes: it runs nothing and holds no port, only its parent's bookkeeping.
"""

from __future__ import annotations

import psutil


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
