"""`SandboxConfig`: the level (`--sandbox none|standard|strict`) and the limits of every instance, checked once.

Levels (docs/isolation.md has the threat model):
- `none`: the instance is a process of the user running mcpsim (process groups and control groups only).
- `standard`: bwrap namespaces (user, mount, pid, ipc, uts, network), the root filesystem read-only, private
  `/tmp`, `/root`, `/home`, `/run`, a private writable work dir; a network namespace of its own holding only a
  loopback interface (the server reaches nothing outside the instance); limits.
- `strict`: as `standard`, and a seccomp filter refuses every internet or packet socket, loopback included, so
  only stdio backends can run.

Limits default to values a simulation server never needs to exceed; `None` switches one off.
"""

import re
from dataclasses import dataclass
from typing import Any, Literal

from mcpsim.errors import ConfigError

Level = Literal["none", "standard", "strict"]
LEVELS: tuple[Level, ...] = ("none", "standard", "strict")
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
MIN_MEMORY = 64 << 20
"""Smallest `--limit-memory`: below it not even an interpreter starts."""
MIN_PIDS = 4
"""Smallest `--limit-pids`: the sandbox's own init and the server need two, a shell wrapper a third."""
MIN_FILES = 16


def parse_size(text: str | int, flag: str) -> int:
    """`1G`, `512M`, `65536` (bytes) -> bytes; a ConfigError naming `flag` for anything else."""
    if isinstance(text, int):
        return text
    match = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)i?B?\s*", text.upper())
    if match is None:
        raise ConfigError(f"{flag}: {text!r} is not a size (use e.g. 512M, 1G or a number of bytes)")
    return int(match[1]) * _UNITS[match[2]]


def format_size(size: int) -> str:
    """Bytes as the user would write them: 1073741824 -> `1G`."""
    for unit in ("T", "G", "M", "K"):
        if size % _UNITS[unit] == 0:
            return f"{size // _UNITS[unit]}{unit}"
    return str(size)


@dataclass(frozen=True)
class SandboxConfig:
    level: Level = "none"
    memory: int | None = 1 << 30
    """Bytes of address space per process (`--limit-memory`), and of memory per instance where a cgroup can."""
    pids: int | None = 64
    """Processes and threads of one instance (`--limit-pids`), the sandbox's init included."""
    cpu_seconds: int | None = 600
    """CPU time per process (`--limit-cpu-seconds`): SIGXCPU at the limit, SIGKILL a second later."""
    files: int | None = 1024
    """Open files per process (`--limit-files`)."""
    file_size: int | None = 1 << 30
    """Largest file a process may write (`--limit-file-size`)."""

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ConfigError(f"--sandbox must be one of {', '.join(LEVELS)}, not {self.level!r}")
        checks = (
            ("--limit-memory", self.memory, MIN_MEMORY),
            ("--limit-pids", self.pids, MIN_PIDS),
            ("--limit-cpu-seconds", self.cpu_seconds, 1),
            ("--limit-files", self.files, MIN_FILES),
            ("--limit-file-size", self.file_size, 1),
        )
        for flag, value, smallest in checks:
            if value is not None and (not isinstance(value, int) or value < smallest):
                raise ConfigError(f"{flag} must be an integer of at least {smallest} (or off), not {value!r}")

    @property
    def enabled(self) -> bool:
        return self.level != "none"

    @property
    def network(self) -> str:
        """What the instance can reach: `host` (none), `loopback` (its own, standard) or `none` (strict)."""
        return {"none": "host", "standard": "loopback", "strict": "none"}[self.level]

    def describe(self) -> dict[str, Any]:
        """The level and limits as `/health` and `/api/instances` report them."""
        return {
            "level": self.level,
            "network": self.network,
            "memory": format_size(self.memory) if self.memory else None,
            "pids": self.pids,
            "cpu_seconds": self.cpu_seconds,
            "files": self.files,
            "file_size": format_size(self.file_size) if self.file_size else None,
        }
