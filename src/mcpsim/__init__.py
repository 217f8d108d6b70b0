"""mcpsim: isolated, seeded episodes against unmodified production MCP servers.

The client API (`make`, `rollout`, `replay`, `audit`, the policies, `Trajectory`) is imported on first use, so
`import mcpsim` stays light for the server side and the command line.
"""

from typing import TYPE_CHECKING

from mcpsim.faces import lazy_names
from mcpsim.wire import VERSION

__version__ = VERSION

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


__getattr__ = lazy_names(
    __name__, {**dict.fromkeys(_CLIENT_NAMES, "client"), "SessionEnvServer": "envs.session_server"}
)
"""Public names imported on first use (`mcpsim.faces`), so `import mcpsim` stays light (no gymnasium, no web
server, no MCP SDK) for the server side and the command line."""
