"""Control groups: one per instance, holding every process the instance ever starts, ended in one step.

A process can leave its process group and its session (`setsid`, a daemon's double fork), but not its cgroup:
only a write to a `cgroup.procs` file moves it, which needs write access to the cgroup tree. So a group per
instance is exactly the set of processes the instance started, and killing the group ends all of them.

Layout: the pool makes one group of its own, `mcpsim-<pid>-<n>`, under the cgroup its process runs in, and one
subgroup per instance. An instance's first process joins its subgroup itself, before it runs any code of the
server - in `preexec` between fork and exec for a spawn, in the forked child before it runs the server for the
fork server (both write `b"0"`, "the writer", to `procs_file`; a sandboxed template's child, which is `nobody`,
waits instead until the pool has written its pid) - so nothing it starts, even in its first microsecond, is
outside.

Hierarchies, in order of preference (`hierarchies()` lists the ones this process can see; whether one is
writable is only known by trying, which `tracking.py` does at pool start): cgroup v2 (pure, or the `unified`
mount of a hybrid system), where `cgroup.kill` (Linux 5.14) kills a group and its subgroups in one write, or
`cgroup.freeze` (5.2) freezes it while every member is sent SIGKILL; a v1 `freezer` hierarchy (likewise frozen,
so nothing can fork between the listing and the kill); a v1 `pids` hierarchy (members are killed until none is
left). Frozen members die when thawed.

Limits (for a sandbox): on v2 a group gets limits by enabling controllers in its parent's
`cgroup.subtree_control` - here the pool's group, which holds no process itself, so the kernel allows it once
the controllers are enabled above it - and writing `memory.max`, `pids.max` into the instance's group
(`Cgroup.write`). On v1 every controller is a hierarchy of its own, so limits need a group per hierarchy and a
join of each.

Standard library only: the watchdog imports it to kill the pool's group after the server died.
"""

import contextlib
import errno
import os
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mcpsim.errors import CgroupError

KILL_TIME_LIMIT = 2.0
"""How long `kill` keeps killing members of a group that cannot be frozen (a fork bomb's children)."""


@dataclass(frozen=True)
class Hierarchy:
    """One mounted cgroup hierarchy and where this process is in it."""

    version: int
    controller: str | None
    """For v1: the controller whose hierarchy this is (`freezer`, `pids`)."""
    mount: Path
    root: str
    """The cgroup path the mount shows (mountinfo's root), to map /proc/PID/cgroup paths to directories."""
    own: Path
    """The directory of this process's cgroup."""

    @property
    def name(self) -> str:
        return "cgroup2" if self.version == 2 else f"cgroup1:{self.controller}"

    def directory_of(self, pid: int) -> Path | None:
        """The directory of `pid`'s cgroup in this hierarchy (None if gone or outside this mount)."""
        try:
            lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        except OSError:
            return None
        for line in lines:
            if line.count(":") < 2:
                continue
            hierarchy_id, controllers, path = line.split(":", 2)
            if (self.version == 2 and hierarchy_id == "0" and not controllers) or (
                self.version == 1 and self.controller in controllers.split(",")
            ):
                relative = _relative(path, self.root)
                return None if relative is None else self.mount / relative
        return None


def _unescape(text: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match[1], 8)), text)


def _relative(path: str, root: str) -> str | None:
    if root == "/":
        return None if path.startswith("/..") else path.lstrip("/")
    if path == root or path.startswith(root.rstrip("/") + "/"):
        return path[len(root) :].lstrip("/")
    return None


def hierarchies() -> list[Hierarchy]:
    """The hierarchies that could track instances, best first: v2, then v1 freezer, then v1 pids."""
    membership: dict[str, str] = {}
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.count(":") < 2:
                continue
            hierarchy_id, controllers, path = line.split(":", 2)
            if hierarchy_id == "0" and not controllers:
                membership["cgroup2"] = path
            for controller in filter(None, controllers.split(",")):
                membership[controller] = path
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    found: dict[str, Hierarchy] = {}
    for line in mounts:
        before, _, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        root, mount = _unescape(fields[3]), Path(_unescape(fields[4]))
        if tail[0] == "cgroup2":
            key, version, controller = "cgroup2", 2, None
        elif tail[0] == "cgroup":
            options = tail[2].split(",")
            controller = next((name for name in ("freezer", "pids") if name in options), None)
            if controller is None:
                continue
            key, version = controller, 1
        else:
            continue
        path = membership.get(key)
        relative = None if path is None else _relative(path, root)
        if relative is not None and key not in found:
            found[key] = Hierarchy(version, controller, mount, root, mount / relative)
    return [found[key] for key in ("cgroup2", "freezer", "pids") if key in found]


class Cgroup:
    """One cgroup directory: create, join, list, kill, remove. Blocking calls: use them off the event loop."""

    def __init__(self, path: Path, hierarchy: Hierarchy | None = None) -> None:
        self.path = path
        self.hierarchy = hierarchy

    def __repr__(self) -> str:
        return f"Cgroup({str(self.path)!r})"

    @classmethod
    def create(cls, path: Path, hierarchy: Hierarchy | None = None) -> "Cgroup":
        try:
            path.mkdir(exist_ok=True)
        except OSError as exc:
            raise CgroupError(exc.errno, f"cannot create control group {path}: {exc.strerror}") from None
        return cls(path, hierarchy)

    def child(self, name: str) -> "Cgroup":
        return Cgroup.create(self.path / name, self.hierarchy)

    @property
    def procs_file(self) -> str:
        """Write `b"0"` here to move the writing process in (what a new instance's child does before exec)."""
        return str(self.path / "cgroup.procs")

    def join(self, pid: int = 0) -> None:
        _write(self.path / "cgroup.procs", str(pid))

    def write(self, name: str, value: str) -> None:
        """Set one of the group's files (a limit such as `pids.max`)."""
        _write(self.path / name, value)

    def pids(self) -> list[int]:
        """Every process in this group and its subgroups."""
        found: list[int] = []
        for directory, _, _ in os.walk(self.path):
            with contextlib.suppress(OSError):
                found.extend(int(pid) for pid in Path(directory, "cgroup.procs").read_text().split())
        return found

    def member_name(self, pid: int) -> str | None:
        """The name of the subgroup of this group that `pid` is in, if it is in one."""
        directory = self.hierarchy.directory_of(pid) if self.hierarchy else None
        if directory is None or directory.parent != self.path:
            return None
        return directory.name

    def kill(self) -> None:
        """SIGKILL every member, subgroups included. With `cgroup.kill` it returns at once (the kernel finishes
        the job); otherwise the group is frozen while members are killed, then thawed, and members are killed
        again until none is listed or `KILL_TIME_LIMIT` passed."""
        with contextlib.suppress(FileNotFoundError):
            _write(self.path / "cgroup.kill", "1")
            return
        with self._frozen():
            for pid in self.pids():
                _kill(pid)
        deadline = time.monotonic() + KILL_TIME_LIMIT
        while (pids := self.pids()) and time.monotonic() < deadline:
            for pid in pids:
                _kill(pid)
            time.sleep(0.005)

    @contextlib.contextmanager
    def _frozen(self) -> Iterator[None]:
        """The group frozen for the duration, if it can be frozen: members neither run nor fork meanwhile."""
        if (self.path / "freezer.state").exists():
            control, freeze, thaw = "freezer.state", "FROZEN", "THAWED"
        elif (self.path / "cgroup.freeze").exists():
            control, freeze, thaw = "cgroup.freeze", "1", "0"
        else:
            yield
            return
        try:
            _write(self.path / control, freeze)
        except OSError:
            yield
            return
        try:
            deadline = time.monotonic() + 1.0
            while not self._is_frozen() and time.monotonic() < deadline:
                time.sleep(0.002)
            yield
        finally:
            with contextlib.suppress(OSError):
                _write(self.path / control, thaw)

    def _is_frozen(self) -> bool:
        if (self.path / "freezer.state").exists():
            return self._read("freezer.state") == "FROZEN"
        return "frozen 1" in self._read("cgroup.events").splitlines()

    def _read(self, name: str) -> str:
        try:
            return (self.path / name).read_text().strip()
        except OSError:
            return ""

    def remove(self) -> bool:
        """Remove the group and its subgroups; False while a member is still exiting (try again shortly)."""
        for directory, _, _ in os.walk(self.path, topdown=False):
            try:
                Path(directory).rmdir()
            except FileNotFoundError:
                continue
            except OSError as exc:
                if exc.errno == errno.EBUSY:
                    return False
                raise CgroupError(exc.errno, f"cannot remove control group {directory}: {exc.strerror}") from None
        return True

    def remove_when_empty(self, timeout: float = KILL_TIME_LIMIT) -> bool:
        """`remove`, retried until the members are gone or `timeout` passed (blocking: the watchdog's)."""
        deadline = time.monotonic() + timeout
        while not self.remove():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True


def _write(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)
