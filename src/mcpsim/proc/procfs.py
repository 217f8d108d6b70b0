"""The few /proc reads process tracking needs: a process's children, state and session, and its instance id.

Standard library only, so the watchdog can import it and still start in a few milliseconds. Every function
answers "nothing" (None, an empty list) for a process that is gone or unreadable, since any process may exit
between the moment it is listed and the moment it is read.
"""

import contextlib
import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from mcpsim.wire import INSTANCE_VARIABLE

INSTANCE_PREFIX = INSTANCE_VARIABLE.encode() + b"="
"""Every instance's environment has it; its descendants inherit it unless they replace their environment."""


@dataclass(frozen=True)
class Stat:
    state: str
    ppid: int
    pgid: int
    sid: int
    wait_status: int | None = None
    """A zombie's exit status as `waitpid` would give it (field 52, Linux 3.5), readable by anyone allowed to
    trace it: how the pool learns how a process it is not the parent of ended (a live-fork copy)."""

    @property
    def zombie(self) -> bool:
        return self.state in ("Z", "X")


def stat(pid: int) -> Stat | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may itself hold spaces and parentheses
    fields = text[text.rfind(b")") + 2 :].split()
    try:
        status = int(fields[49]) if len(fields) > 49 else None
        return Stat(fields[0].decode(), int(fields[1]), int(fields[2]), int(fields[3]), status)
    except (IndexError, ValueError):
        return None


def children(pid: int | str = "self") -> list[int] | None:
    """Direct children of every thread of `pid` (a child belongs to the thread that forked it, an orphan
    adopted by a subreaper to one of its threads); None when the kernel does not offer the list."""
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return None
    for task in tasks:
        try:
            found.extend(int(child) for child in (task / "children").read_bytes().split())
        except FileNotFoundError:
            if not task.exists():
                continue  # the thread ended meanwhile
            return None  # no CONFIG_PROC_CHILDREN
        except OSError:
            continue
    return found


def instance_id(pid: int) -> str | None:
    """The MCPSIM_INSTANCE_ID a process was started with (its initial environment block), if any."""
    try:
        block = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    for entry in block.split(b"\0"):
        if entry.startswith(INSTANCE_PREFIX):
            return entry[len(INSTANCE_PREFIX) :].decode(errors="replace")
    return None


def processes_of_instances(ids: Collection[str]) -> list[int]:
    """Every process on the machine whose environment names one of `ids` (a full pass over /proc)."""
    if not ids:
        return []
    me = os.getpid()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != me and instance_id(int(entry.name)) in ids:
            found.append(int(entry.name))
    return found


def kill(pid: int, sig: int) -> None:
    """Signal a process, and its whole group when it leads one (a daemon's helpers share its group)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
            return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
