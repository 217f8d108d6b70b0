"""Resource limits of a sandboxed instance: rlimits always, control groups on top where the machine allows.

rlimits are per process and always available: RLIMIT_AS (memory, only when no memory group bounds it),
RLIMIT_NPROC (processes and threads, counted per user namespace, so per instance; replaced by a pids group when
the servers are the real `nobody`), RLIMIT_CPU (soft: SIGXCPU, hard one second later: SIGKILL), RLIMIT_NOFILE,
RLIMIT_FSIZE. They are set inside the sandbox by `prlimit` (a spawn) or by the forked child itself (the fork
server), never on mcpsim.

Control groups bound the instance as a whole (a fork bomb of memory hogs cannot sum past `--limit-memory`):
`memory` and `pids`, in a group per instance, in cgroup v2 where the controller can be enabled for mcpsim's
own group, else in the controller's v1 hierarchy, else not at all (rlimits only). `LimitGroups.start` probes
which and `applied` says so; `/health` reports it.
"""

import contextlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from mcpsim.errors import CgroupError
from mcpsim.proc.cgroups import Cgroup, Hierarchy, hierarchies
from mcpsim.proc.sandbox.config import SandboxConfig

logger = logging.getLogger(__name__)

GROUP_PREFIX = "mcpsim-limits-"


def prlimit_options(config: SandboxConfig, address_space: bool = True) -> list[str]:
    """`prlimit` options for the configured limits (soft = hard, except CPU: SIGKILL a second after SIGXCPU).
    `address_space`: bound memory by RLIMIT_AS (only when no memory group does: V8 and Go reserve far more
    address space than they use, so a Node server needs an RLIMIT_AS of 4G to start)."""
    options = []
    if config.memory and address_space:
        options.append(f"--as={config.memory}")
    if config.pids:
        options.append(f"--nproc={config.pids}")
    if config.cpu_seconds:
        options.append(f"--cpu={config.cpu_seconds}:{config.cpu_seconds + 1}")
    if config.files:
        options.append(f"--nofile={config.files}")
    if config.file_size:
        options.append(f"--fsize={config.file_size}")
    return options


def rlimits(config: SandboxConfig, address_space: bool = True) -> list[tuple[str, int, int]]:
    """The same limits as (RLIMIT name, soft, hard), for a forked child to set on itself."""
    out = []
    if config.memory and address_space:
        out.append(("RLIMIT_AS", config.memory, config.memory))
    if config.cpu_seconds:
        out.append(("RLIMIT_CPU", config.cpu_seconds, config.cpu_seconds + 1))
    if config.files:
        out.append(("RLIMIT_NOFILE", config.files, config.files))
    if config.file_size:
        out.append(("RLIMIT_FSIZE", config.file_size, config.file_size))
    return out


@dataclass
class InstanceLimits:
    """One instance's limit groups: join their `procs_files` before exec; `hit` reads what they recorded."""

    groups: dict[str, Cgroup] = field(default_factory=dict)

    @property
    def procs_files(self) -> list[str]:
        return [group.procs_file for group in self.groups.values()]

    def hit(self) -> set[str]:
        """Which group limits were reached ("memory", "pids"), from the kernel's counters."""
        found = set()
        for controller, group in self.groups.items():
            for name, marker in (
                ("memory.events", "oom_kill "),
                ("memory.oom_control", "oom_kill "),
                ("pids.events", "max "),
            ):
                with contextlib.suppress(OSError):
                    text = (group.path / name).read_text()
                    lines = [line for line in text.splitlines() if line.startswith(marker)]
                    if any(int(line.split()[-1]) > 0 for line in lines):
                        found.add(controller)
        return found

    def remove(self) -> None:
        for group in self.groups.values():
            with contextlib.suppress(OSError):
                group.kill()
                group.remove_when_empty(timeout=1.0)


@dataclass
class LimitGroups:
    """The pool's limit groups, one per controller that could be set up (see the module docstring)."""

    config: SandboxConfig
    roots: dict[str, Cgroup] = field(default_factory=dict)
    applied: dict[str, str] = field(default_factory=dict)
    """Per limit: how it is enforced, e.g. {"memory": "cgroup1 memory + RLIMIT_AS", "pids": "RLIMIT_NPROC"}."""

    def start(self, as_root: bool = False) -> None:
        """Find where `memory` and `pids` groups can be made (blocking: run off the loop). `as_root`: the
        servers are the real `nobody`, whose RLIMIT_NPROC would count every instance's processes at once, so
        a pids group replaces it."""
        wanted = {"memory": self.config.memory, "pids": self.config.pids}
        found = hierarchies()
        for controller, value in wanted.items():
            if not value:
                continue
            root = self._v2_root(found, controller) or self._v1_root(controller)
            if root is not None:
                self.roots[controller] = root
        for limit, rlimit in (("memory", "RLIMIT_AS"), ("pids", "RLIMIT_NPROC")):
            if wanted[limit]:
                how = self.roots.get(limit)
                where = f"cgroup{2 if how and how.hierarchy and how.hierarchy.version == 2 else 1} {limit}"
                if how is None:
                    self.applied[limit] = rlimit
                elif limit == "memory" or as_root:  # see prlimit_options, and the docstring
                    self.applied[limit] = where
                else:
                    self.applied[limit] = f"{where} + {rlimit}"
        for limit, value, rlimit in (
            ("cpu_seconds", self.config.cpu_seconds, "RLIMIT_CPU"),
            ("files", self.config.files, "RLIMIT_NOFILE"),
            ("file_size", self.config.file_size, "RLIMIT_FSIZE"),
        ):
            if value:
                self.applied[limit] = rlimit

    @staticmethod
    def _remove_stale(parent: Path) -> None:
        """Limit groups of pools whose process is gone (a SIGKILLed server leaves them, empty)."""
        with contextlib.suppress(OSError):
            for entry in parent.iterdir():
                pid = entry.name[len(GROUP_PREFIX) :].split("-", 1)[0]
                if entry.name.startswith(GROUP_PREFIX) and pid.isdigit() and not Path(f"/proc/{pid}").exists():
                    group = Cgroup(entry)
                    group.kill()
                    group.remove_when_empty(timeout=0.5)

    def _v2_root(self, found: list[Hierarchy], controller: str) -> Cgroup | None:
        v2 = next((h for h in found if h.version == 2), None)
        if v2 is None or controller not in _read(v2.own / "cgroup.controllers").split():
            return None
        self._remove_stale(v2.own)
        try:
            root = Cgroup.create(v2.own / f"{GROUP_PREFIX}{os.getpid()}-{controller}", v2)
            root.write("cgroup.subtree_control", f"+{controller}")
            return root
        except OSError as exc:
            logger.info("no cgroup v2 %s limits: %s", controller, exc)
            return None

    def _v1_root(self, controller: str) -> Cgroup | None:
        own = _v1_own(controller)
        if own is None:
            return None
        self._remove_stale(own)
        try:
            root = Cgroup.create(own / f"{GROUP_PREFIX}{os.getpid()}")
            probe = root.child("probe")
            probe.write(_limit_file(controller, 1), str(1 << 30 if controller == "memory" else 64))
            probe.remove()
            return root
        except OSError as exc:
            logger.info("no cgroup v1 %s limits: %s", controller, exc)
            return None

    def instance(self, instance_id: str) -> InstanceLimits:
        """Groups for one instance with the limits written (blocking). CgroupError if one cannot be made."""
        limits = InstanceLimits()
        values = {"memory": self.config.memory, "pids": self.config.pids}
        try:
            for controller, root in self.roots.items():
                group = root.child(f"i-{instance_id}")
                limits.groups[controller] = group
                version = 2 if root.hierarchy and root.hierarchy.version == 2 else 1
                group.write(_limit_file(controller, version), str(values[controller]))
                if controller == "memory" and version == 1:
                    with contextlib.suppress(OSError):  # no swap accounting: nothing to bound
                        group.write("memory.memsw.limit_in_bytes", str(values[controller]))
        except OSError as exc:
            limits.remove()
            raise CgroupError(getattr(exc, "errno", 0), f"cannot set up the instance's limit groups: {exc}") from None
        return limits

    def close(self) -> None:
        for root in self.roots.values():
            with contextlib.suppress(OSError):
                root.kill()
                root.remove_when_empty(timeout=1.0)
        self.roots.clear()


def _limit_file(controller: str, version: int) -> str:
    if controller == "memory":
        return "memory.max" if version == 2 else "memory.limit_in_bytes"
    return "pids.max"


def _v1_own(controller: str) -> Path | None:
    """This process's directory in the v1 hierarchy of `controller`, if mounted."""
    membership = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if controller in controllers.split(","):
                membership = path
    if not membership:
        return None
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            before, _, after = line.partition(" - ")
            fields, tail = before.split(), after.split()
            if len(tail) >= 3 and tail[0] == "cgroup" and controller in tail[2].split(","):
                root, mount = fields[3], Path(fields[4])
                if membership == root or membership.startswith(root.rstrip("/") + "/"):
                    return mount / membership[len(root) :].lstrip("/")
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
