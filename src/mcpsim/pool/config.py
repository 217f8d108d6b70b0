"""`PoolConfig`: everything an instance pool is told, checked once when it is made.

Frozen and self-validating: a config that exists is one the pool can run, so `mcpsim serve`, the demo, the bench
and a program embedding a pool get the same clear `ConfigError` for the same mistake, before anything starts.
"""

import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mcpsim.errors import CommandError, ConfigError
from mcpsim.isolation import IsolationConfig
from mcpsim.pool.command import ServerCommand
from mcpsim.proc.sandbox import SandboxConfig
from mcpsim.wire import DEFAULT_MAX_MESSAGE_BYTES

MIN_MESSAGE_BYTES = 1024
"""Smallest `--max-message-bytes`: below it not even an `initialize` fits."""


@dataclass(frozen=True)
class PoolConfig:
    command: ServerCommand
    """What every instance runs (`parse_command`, `for_env`)."""
    python: str = sys.executable
    """The interpreter for `{python}` when no isolated environment provides one."""
    max_instances: int = 256
    """Instances whose process may run at once (`--max-instances`); a start beyond is refused at once."""
    idle_timeout: float = 600.0
    """Seconds without a message after which an instance ends (`--idle-timeout`)."""
    startup_timeout: float = 60.0
    """Seconds a new instance has to answer `initialize` (`--startup-timeout`)."""
    request_timeout: float | None = 300.0
    """Seconds a request may wait for its answer, progress restarting the clock; then the server is presumed hung
    and its instance ended (`--request-timeout`); None waits forever."""
    port_range: tuple[int, int] = (10000, 11000)
    """Ports leased to HTTP/SSE backends (`--port-range`), both ends included."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Extra environment variables of every instance."""
    isolation: IsolationConfig = field(default_factory=IsolationConfig)
    """Where instances' interpreter and files come from (`--isolation`, `--requirements`)."""
    fork_server: bool | None = None
    """Start Python servers as forks of a template that imported them once (`--fork-server`). None (the default)
    means yes unless a sandbox is asked for: forked siblings share the template's sandbox (docs/isolation.md), so
    `--sandbox` alone keeps spawned instances, which share nothing; `--fork-server --sandbox ...` opts in."""
    warm: int | None = None
    """Unclaimed instances kept started ahead of sessions (announced seeds, else random seeds); None = no bound."""
    fork_preload: tuple[str, ...] = ()
    """Extra modules the fork template imports (`--fork-preload`)."""
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    """Largest JSON-RPC message taken from a client or a stdio server; a longer one fails only its request."""
    keep_home: bool = False
    """Instances keep the caller's `HOME` and `TMPDIR` (`--keep-home`) instead of their own directory's."""
    instance_root: Path | None = None
    """Where instance directories are made (`--instance-root`); default: the system temporary directory."""
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    """`--sandbox` and the `--limit-*` flags: namespaces and limits of every instance (`mcpsim.proc.sandbox`)."""
    process_tracking: str | None = None
    """auto | cgroup | cgroup2 | cgroup1:freezer | cgroup1:pids | subreaper | off; None = the environment's
    `MCPSIM_PROCESS_TRACKING`, else auto (see `mcpsim.proc.tracking`)."""

    def __post_init__(self) -> None:
        if self.fork_server is None:
            object.__setattr__(self, "fork_server", self.sandbox.level == "none")
        object.__setattr__(self, "fork_preload", tuple(self.fork_preload))
        object.__setattr__(self, "env", dict(self.env))
        program = self.command.argv[0] if self.command.argv else ""
        if program != "{python}" and shutil.which(program, path=None) is None:
            raise CommandError(f"command not found: {program!r}")
        if self.max_instances < 1:
            raise ConfigError("--max-instances must be at least 1")
        if self.warm is not None and not 0 <= self.warm <= self.max_instances:
            raise ConfigError("--warm must be between 0 and --max-instances")
        if not (self.idle_timeout > 0 and self.startup_timeout > 0):
            raise ConfigError("--idle-timeout and --startup-timeout must be positive")
        if self.request_timeout is not None and not self.request_timeout > 0:
            raise ConfigError("--request-timeout must be positive (or None: no limit)")
        if self.max_message_bytes < MIN_MESSAGE_BYTES:
            raise ConfigError(f"--max-message-bytes must be at least {MIN_MESSAGE_BYTES}")
        low, high = self.port_range
        if not 1 <= low <= high <= 65535:
            raise ConfigError(f"port range {low}-{high} must satisfy 1 <= low <= high <= 65535")
