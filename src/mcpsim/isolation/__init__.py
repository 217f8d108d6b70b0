"""Building the runtimes instances run in: `--isolation venv|conda`, installed Node projects, pre-warmed npx.

- `runtime.py`: `IsolationConfig` and `prepare`, which turns the configured command into the one instances run.
- `builds.py`: the `Builder` protocol and `ensure` (build once per content hash, log the lifecycle).
- `python_envs.py`: uv venvs and conda envs; `node.py`: Node projects and npx packages.
- `cache.py`: `EnvCache`, the build cache on disk (`mcpsim cache list|gc|rm|check`); `check.py`: its health check.
"""

from typing import TYPE_CHECKING

from mcpsim.faces import lazy_names

if TYPE_CHECKING:
    from mcpsim.isolation.builds import BuildObserver
    from mcpsim.isolation.cache import EnvCache, EnvRecord
    from mcpsim.isolation.check import check_environment
    from mcpsim.isolation.runtime import ISOLATIONS, IsolationConfig, Prepared, prepare

__all__ = [  # noqa: RUF022
    "BuildObserver",
    "EnvCache",
    "EnvRecord",
    "ISOLATIONS",
    "IsolationConfig",
    "Prepared",
    "check_environment",
    "prepare",
]

__getattr__ = lazy_names(
    __name__,
    {
        "BuildObserver": "builds",
        "EnvCache": "cache",
        "EnvRecord": "cache",
        "check_environment": "check",
        "ISOLATIONS": "runtime",
        "IsolationConfig": "runtime",
        "Prepared": "runtime",
        "prepare": "runtime",
    },
)
