"""Every process an instance starts ends with the instance, even one that left its process group.

An instance's process group reaches what its server starts, unless something calls `setsid` (a daemon's double
fork, Node's `detached: true`): such a process is in no group we signal, its parent exits, and it is reparented
to init, running forever. The pool probes at start which of two mechanisms this machine allows:

- **cgroup** (preferred; `cgroups.py`): a control group per instance, joined by the instance's first process
  before it runs any server code, so it holds every descendant whatever they do. At the instance's end (its
  leader exited, crashed or was killed; its session ended; idle timeout; the server stopping) the group is
  killed and removed; the watchdog kills the pool's group if the server is SIGKILLed. The probe creates the
  pool's group, starts a process in a subgroup, checks it is listed, kills it through the group and removes
  the subgroup: only a machine where all of that works uses cgroups.
- **subreaper** (fallback, needs no privilege): the pool's process is a child subreaper
  (`PR_SET_CHILD_SUBREAPER`), so an orphaned descendant is reparented to it rather than to init and stays in
  its process tree. Nothing else links such a process to its instance any more, so it is attributed by the
  `MCPSIM_INSTANCE_ID` it inherited in its environment (read from /proc/PID/environ). At the instance's end
  the adopted processes naming it are SIGKILLed (their process groups too), round after round while the
  instance's group is still dying; the watchdog kills processes naming a registered instance after a SIGKILL.

The server is a subreaper in both modes: escaped descendants stay under it, so the orphan check (which walks
the server's process tree) sees every one of them, and attributes one to a live instance by its control group,
else by its environment variable. The variable is the safety net rather than the mechanism because a process
can replace its environment, and because a process forked *without exec* from a fork-server instance carries
the template's environment block (the template sets `os.environ` per child, which reaches what the child execs
but not /proc/PID/environ). In subreaper mode such a process is not killed at its instance's end: it is
reported as an orphan, and killed by nothing (the check cannot know what it is). Control groups have no gap.

Being a subreaper means reaping: the pool reaps the zombies of adopted processes (every second, on the
spawner's thread, holding the lock of `spawn.CHILDREN`, so never a child some `Popen` is about to wait for). It
only reaps
processes of another session than its own (every instance is a session of its own), so a program that embeds
a pool and runs its own children in its session keeps their exit statuses.

`MCPSIM_PROCESS_TRACKING` = `auto` (default) | `cgroup` | `cgroup2` | `cgroup1:freezer` | `cgroup1:pids` |
`subreaper` | `off` (process groups only, as before) forces a mode or a hierarchy; a cgroup mode where none is
usable falls back to `subreaper` with a warning.
"""

import contextlib
import ctypes
import ctypes.util
import itertools
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import anyio
import psutil
from anyio.abc import TaskStatus

from mcpsim.errors import CgroupError, StartError
from mcpsim.proc import procfs
from mcpsim.proc.cgroups import Cgroup, Hierarchy, hierarchies
from mcpsim.proc.spawn import CHILDREN, Spawner, inherited_environment
from mcpsim.wire import TRACKING_VARIABLE

logger = logging.getLogger(__name__)

MODES = ("auto", "cgroup", "cgroup2", "cgroup1:freezer", "cgroup1:pids", "subreaper", "off")
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
END_TIME_LIMIT = 3.0
"""How long an instance's end waits for its last descendants to die before giving up (and logging it)."""
REAP_INTERVAL = 1.0
POOL_GROUP_PREFIX = "mcpsim-"

_prctl = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
_group_numbers = itertools.count(1)
_subreaper_users = 0
_subreaper_was_set = False


def _adopt(root: Cgroup, members: list[tuple[str, int]]) -> list[Cgroup | None]:
    groups: list[Cgroup | None] = []
    for instance_id, pid in members:
        try:
            group = root.child(f"i-{instance_id}")
        except CgroupError as exc:
            logger.warning("cannot create the control group of instance %s: %s", instance_id, exc)
            groups.append(None)
            continue
        try:
            group.join(pid)
        except ProcessLookupError:
            pass  # it ended already: the empty group is removed at its end
        except OSError as exc:
            logger.warning("cannot move process %d into the control group of instance %s: %s", pid, instance_id, exc)
        groups.append(group)
    return groups


def _set_subreaper(on: bool) -> bool:
    """Become (or stop being) a child subreaper; pools in one process share the setting."""
    global _subreaper_users, _subreaper_was_set
    if on:
        if _subreaper_users == 0:
            flag = ctypes.c_int(0)
            _prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0)
            _subreaper_was_set = bool(flag.value)
            if _prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
                return False
        _subreaper_users += 1
        return True
    _subreaper_users -= 1
    if _subreaper_users == 0 and not _subreaper_was_set:
        _prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
    return True


class ProcessTracker:
    """Probes the machine at `start`, then ends each instance's escaped descendants and answers whose a process is."""

    def __init__(self, spawner: Spawner, requested: str | None = None) -> None:
        self.spawner = spawner
        self.requested = requested or os.environ.get(TRACKING_VARIABLE) or "auto"
        self.mode = "off"
        """What is in use: `cgroup2`, `cgroup1:freezer`, `cgroup1:pids`, `subreaper` or `off`."""
        self.detail = ""
        self.root: Cgroup | None = None
        """The pool's control group (cgroup mode)."""
        self.subreaper = False
        self._moving = 0
        self._moved = anyio.Event()

    # -- pool lifecycle ---------------------------------------------------------------------------------------

    async def start(self) -> None:
        if self.requested not in MODES:
            logger.warning("%s=%r is not one of %s; using auto", TRACKING_VARIABLE, self.requested, "|".join(MODES))
            self.requested = "auto"
        if self.requested == "off" or sys.platform != "linux":
            self.detail = "process groups only"
            return
        self.subreaper = _set_subreaper(True)
        failures = []
        if self.requested != "subreaper":
            wanted = [h for h in hierarchies() if self.requested in ("auto", "cgroup", h.name)]
            for hierarchy in wanted:
                try:
                    self.root = await self._probe(hierarchy)
                except OSError as exc:
                    failures.append(f"{hierarchy.name}: {exc}")
                    continue
                self.mode, self.detail = hierarchy.name, str(self.root.path)
                break
        if self.root is None:
            self.mode = "subreaper" if self.subreaper else "off"
            self.detail = "; ".join(failures) or ("no control group hierarchy" if self.requested != "subreaper" else "")
            if self.requested.startswith("cgroup"):
                logger.warning("no usable control group (%s); tracking descendants as their subreaper", self.detail)
        logger.info(
            "descendants tracked by %s%s",
            self.mode,
            f" ({self.detail})" if self.detail else "",
            extra={"event": "tracking.mode", "mode": self.mode},
        )

    async def _probe(self, hierarchy: Hierarchy) -> Cgroup:
        """The pool's group in `hierarchy`, once a process was put in a subgroup, listed, killed and removed."""
        await anyio.to_thread.run_sync(_remove_stale_groups, hierarchy)
        name = f"{POOL_GROUP_PREFIX}{os.getpid()}-{next(_group_numbers)}"
        root = await anyio.to_thread.run_sync(Cgroup.create, hierarchy.own / name, hierarchy)
        try:
            probe = await anyio.to_thread.run_sync(root.child, "probe")
            argv = [sys.executable, "-S", "-c", "import sys; sys.stdin.read()"]
            child = await self.spawner.spawn(
                argv, inherited_environment({}), logger.debug, stdout_is_protocol=False, cgroup=probe
            )
            try:
                if child.pid not in await anyio.to_thread.run_sync(probe.pids):
                    raise CgroupError("a process that joined the group is not listed in it")
                await anyio.to_thread.run_sync(probe.kill)
                with anyio.fail_after(5):
                    await child.exited.wait()
            except TimeoutError:
                raise CgroupError("killing the group did not end its process") from None
            finally:
                await child.stop(eof_grace=0, term_grace=0)
            if not await self._remove(probe):
                raise CgroupError("the group could not be removed")
        except BaseException:
            with anyio.CancelScope(shield=True):
                with contextlib.suppress(OSError):
                    await anyio.to_thread.run_sync(root.kill)
                await self._remove(root)
            raise
        return root

    async def run(self) -> None:
        """Reap adopted zombies every second (a task of the pool)."""
        while self.subreaper:
            await anyio.sleep(REAP_INTERVAL)
            await self.spawner.run(self.reap)

    async def close(self) -> None:
        """After every instance ended: kill what is left, reap it, stop being a subreaper, remove the pool's group."""
        if self.root is not None:
            with contextlib.suppress(OSError):
                await anyio.to_thread.run_sync(self.root.kill)
        if self.subreaper:
            await self._rounds(None, None)  # adopted processes naming any instance, until none is left
            _set_subreaper(False)
            self.subreaper = False
            await self.spawner.run(self._reap)
        if self.root is not None:
            await self._remove(self.root)

    # -- instances --------------------------------------------------------------------------------------------

    async def instance_group(self, instance_id: str) -> Cgroup | None:
        """A new control group for an instance's processes (cgroup mode), else None."""
        if self.root is None:
            return None
        try:
            return await anyio.to_thread.run_sync(self.root.child, f"i-{instance_id}")
        except CgroupError as exc:
            raise StartError(f"cannot create the instance's control group: {exc}") from None

    async def adopt(
        self, members: Sequence[tuple[str, int]], *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> list[Cgroup | None]:
        """Control groups for processes that began outside one (live-fork copies, which begin in their source's):
        one per `(instance id, pid)`, the process moved in. All in one thread call, because the first move waits
        for an RCU grace period (10-70 ms) and the next ones, right after it, take microseconds. A group whose
        process ended meanwhile is returned empty (to be removed); None where no group could be made (logged).
        It counts as moving (`moves_settled`) from the moment it reports started."""
        if self.root is None:
            task_status.started()
            return [None] * len(members)
        self._moving += 1
        task_status.started()
        try:
            return await anyio.to_thread.run_sync(_adopt, self.root, list(members))
        finally:
            self._moving -= 1
            if not self._moving:
                self._moved.set()
                self._moved = anyio.Event()

    async def moves_settled(self) -> None:
        """Until no `adopt` is moving processes (at most `END_TIME_LIMIT`): killing a group meanwhile would kill
        the ones not moved out of it yet."""
        with anyio.move_on_after(END_TIME_LIMIT):
            while self._moving:
                await self._moved.wait()

    async def end_instance(self, instance_id: str, pgid: int | None, group: Cgroup | None) -> None:
        """Kill whatever of the instance still runs after its leader is gone (called at its exit and its end)."""
        if group is not None:
            with contextlib.suppress(OSError):
                await anyio.to_thread.run_sync(group.kill)
        elif self.mode == "subreaper":
            await self._rounds(instance_id, pgid)

    async def remove_group(self, group: Cgroup) -> None:
        if not await self._remove(group):
            logger.warning("control group %s still has processes; left in place", group.path)

    async def _remove(self, group: Cgroup) -> bool:
        deadline = time.monotonic() + END_TIME_LIMIT
        while True:
            try:
                if await anyio.to_thread.run_sync(group.remove):
                    return True
            except OSError as exc:
                logger.warning("%s", exc)
                return False
            if time.monotonic() > deadline:
                return False
            await anyio.sleep(0.01)

    async def _rounds(self, instance_id: str | None, pgid: int | None) -> None:
        deadline = time.monotonic() + END_TIME_LIMIT
        while await self.spawner.run(self._sweep, instance_id, pgid):
            if time.monotonic() > deadline:
                logger.warning("processes of instance %s still running %g s after its end", instance_id, END_TIME_LIMIT)
                return
            await anyio.sleep(0.02)

    # -- on the spawner's thread -------------------------------------------------------------------------------

    def _sweep(self, instance_id: str | None, pgid: int | None) -> bool:
        """One round: reap, then SIGKILL adopted processes naming the instance (any instance if None). True
        while something of it may still be exiting (a victim was found, or its process group has members)."""
        self._reap()
        victims = []
        for pid in self._adopted():
            named = procfs.instance_id(pid)
            if named is not None and (instance_id is None or named == instance_id):
                victims.append(pid)
        for pid in victims:
            procfs.kill(pid, signal.SIGKILL)
        return bool(victims) or (pgid is not None and procfs.group_exists(pgid))

    def reap(self) -> None:
        if self.subreaper:
            self._reap()

    def _reap(self) -> None:
        try:
            if os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
                return  # no child has exited: the common case, one system call
        except ChildProcessError:
            return
        session = os.getsid(0)
        with CHILDREN.lock:  # no Popen may register (or wait for) a child meanwhile
            for pid in self._adopted(CHILDREN.pids):
                info = procfs.stat(pid)
                if info is not None and info.zombie and info.sid != session:
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(pid, os.WNOHANG)

    def _adopted(self, started: set[int] | None = None) -> list[int]:
        """This process's children that it did not start: orphans it adopted as their subreaper."""
        if started is None:
            with CHILDREN.lock:
                started = set(CHILDREN.pids)
        children = procfs.children()
        if children is None:
            children = [child.pid for child in psutil.Process().children()]
        return [pid for pid in children if pid not in started]

    # -- the orphan check (any thread) ------------------------------------------------------------------------

    def owner_of(self, pid: int) -> str | None:
        """The instance a process belongs to by its control group, else by its environment (see above)."""
        if self.root is not None:
            name = self.root.member_name(pid)
            if name is not None and name.startswith("i-"):
                return name[2:]
        return procfs.instance_id(pid)


def _remove_stale_groups(hierarchy: Hierarchy) -> None:
    """Groups of pools whose process is gone (killed with its watchdog): emptied and removed."""
    with contextlib.suppress(OSError):
        for entry in hierarchy.own.iterdir():
            pid = entry.name[len(POOL_GROUP_PREFIX) :].split("-", 1)[0]
            if entry.name.startswith(POOL_GROUP_PREFIX) and pid.isdigit() and not Path(f"/proc/{pid}").exists():
                group = Cgroup(entry, hierarchy)
                with contextlib.suppress(OSError):
                    group.kill()
                    group.remove_when_empty(timeout=0.5)
