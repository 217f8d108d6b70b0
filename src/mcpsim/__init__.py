"""mcpsim: isolated, seeded episodes against unmodified production MCP servers."""

from typing import Any

__version__ = "0.1.0"

_LAZY = {"SessionEnvServer": "mcpsim.envs.session_server"}
"""Public names imported on first use, so `import mcpsim` stays light (no gymnasium, no web server)."""


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mcpsim' has no attribute {name!r}")
