"""What an instance is made of before it runs: `InstanceSpec` (filled by the pool from its config
and the request), `State`, and `ContextLog` (its log lines' ids)."""

import enum
import logging
from dataclasses import dataclass, field
from typing import Any

import httpx2
from mcp_types.version import LATEST_HANDSHAKE_VERSION

from mcpsim.pool.command import ServerCommand
from mcpsim.pool.labels import DeclaredTools
from mcpsim.pool.workdir import InstanceDirs
from mcpsim.proc.sandbox import Sandbox
from mcpsim.proc.spawn import Launcher
from mcpsim.proc.tracking import ProcessTracker
from mcpsim.protocol.channels import MuxObserver
from mcpsim.wire import DEFAULT_MAX_MESSAGE_BYTES


class ContextLog(logging.LoggerAdapter):
    """Adds the instance's correlation ids to every line, merged with the line's own `extra` (event, request id).

    The stock adapter of Python 3.11 replaces a call's `extra` with its own, which would drop the event names.
    """

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        kwargs["extra"] = {**(self.extra or {}), **(kwargs.get("extra") or {})}
        return msg, kwargs


class State(enum.StrEnum):
    STARTING = "starting"
    READY = "ready"
    STOPPING = "stopping"
    EXITED = "exited"
    FAILED = "failed"


@dataclass
class InstanceSpec:
    """Everything needed to start one instance; filled by the pool from its config and the request."""

    command: ServerCommand
    seed: int
    config: dict[str, Any]
    python: str
    startup_timeout: float
    launch: Launcher
    """Starts the process: the pool's spawner, or a fork of the fork server's template."""
    port: int | None = None
    env: dict[str, str] = field(default_factory=dict)
    mux_observer: MuxObserver | None = None
    request_timeout: float | None = None
    http_client: httpx2.AsyncClient | None = None
    """The pool's shared HTTP client for streamable-HTTP backends."""
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    """Longest line read from a stdio server; a longer one fails only the request it answers."""
    protocol_version: str = LATEST_HANDSHAKE_VERSION
    """The version offered in the pool's `initialize`: the one the instance's client asked for."""
    client_info: dict[str, Any] | None = None
    """The `clientInfo` the pool's `initialize` sends (default: mcpsim's): the session client's, when it carries
    hints (seed, config, its own session key) that the server reads."""
    tools: DeclaredTools = field(default_factory=DeclaredTools)
    """The tool names the pool's servers declared (shared by its instances): the metrics' tool labels."""
    dirs: InstanceDirs | None = None
    """Makes the instance's own directory (`{instance_dir}`, `HOME`, `TMPDIR`); None: no directory (unit use)."""
    views: dict[str, str] = field(default_factory=dict)
    """Variables of `env` naming a shared cache the instance gets a private view of (see `workdir.py`)."""
    sandbox: Sandbox | None = None
    """The pool's sandbox (`--sandbox standard|strict`), which makes this instance's; None: no sandbox."""
    tracker: ProcessTracker | None = None
    """Finds and ends the process's descendants (a control group, or the pool as their subreaper)."""
