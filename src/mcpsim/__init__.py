"""mcpsim: isolated, seeded episodes against unmodified production MCP servers.

The client API (`make`, `rollout`, `replay`, `audit`, the policies, `Trajectory`) is imported on first use, so
`import mcpsim` stays light for the server side and the command line.
"""

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_CLIENT_NAMES = (
    "Action",
    "AuditReport",
    "EpisodeContext",
    "FireworksPolicy",
    "OpenAIPolicy",
    "PlaybackPolicy",
    "Policy",
    "RandomPolicy",
    "ScriptedPolicy",
    "Step",
    "Trajectory",
    "audit",
    "make",
    "read_recording",
    "replay",
    "rollout",
)

__all__ = [  # noqa: RUF022
    "__version__",
    "Action",
    "AuditReport",
    "EpisodeContext",
    "FireworksPolicy",
    "OpenAIPolicy",
    "PlaybackPolicy",
    "Policy",
    "RandomPolicy",
    "ScriptedPolicy",
    "Step",
    "SessionEnvServer",
    "Trajectory",
    "audit",
    "make",
    "read_recording",
    "replay",
    "rollout",
]

if TYPE_CHECKING:
    from mcpsim.client import (
        Action,
        AuditReport,
        EpisodeContext,
        FireworksPolicy,
        OpenAIPolicy,
        PlaybackPolicy,
        Policy,
        RandomPolicy,
        ScriptedPolicy,
        Step,
        Trajectory,
        audit,
        make,
        read_recording,
        replay,
        rollout,
    )


_LAZY = {"SessionEnvServer": "mcpsim.envs.session_server"}
"""Other public names imported on first use, so `import mcpsim` stays light (no gymnasium, no web server)."""


def __getattr__(name: str) -> Any:
    if name in _CLIENT_NAMES:
        from mcpsim import client

        value = getattr(client, name)
        globals()[name] = value
        return value
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mcpsim' has no attribute {name!r}")
