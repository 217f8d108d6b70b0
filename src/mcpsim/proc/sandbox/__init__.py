"""The sandbox of `--sandbox standard|strict`: namespaces by bwrap, a private filesystem, resource limits.

`config` (the level and limits, validated), `bwrap` (the command lines and strict's seccomp filter), `limits`
(rlimits, and cgroup v2/v1 limit groups where writable), `classify` (a dead instance's exit -> the limit's
name), `runtime` (`Sandbox`: the start-up probe and each instance's `SandboxedStart`). docs/isolation.md has
the threat model.
"""

from mcpsim.proc.sandbox.config import LEVELS, SandboxConfig, format_size, parse_size
from mcpsim.proc.sandbox.runtime import Sandbox, SandboxedStart, open_sandbox

__all__ = ["LEVELS", "Sandbox", "SandboxConfig", "SandboxedStart", "format_size", "open_sandbox", "parse_size"]
