"""Building the runtimes instances run in: `--isolation venv|conda`, installed Node projects, pre-warmed npx.

- `prepare.py`: `IsolationConfig` and `prepare`, which turns the configured command into the one instances run.
- `builds.py`: the `Builder` protocol and `ensure` (build once per content hash, log the lifecycle).
- `python_envs.py`: uv venvs and conda envs; `node.py`: Node projects and npx packages.
- `cache.py`: `EnvCache`, the build cache on disk (`mcpsim cache list|gc|rm|check`); `check.py`: its health check.
"""

from mcpsim.isolation.builds import BuildObserver
from mcpsim.isolation.cache import EnvCache, EnvRecord
from mcpsim.isolation.check import check_environment
from mcpsim.isolation.prepare import ISOLATIONS, IsolationConfig, Prepared, prepare

__all__ = [
    "ISOLATIONS",
    "BuildObserver",
    "EnvCache",
    "EnvRecord",
    "IsolationConfig",
    "Prepared",
    "check_environment",
    "prepare",
]
