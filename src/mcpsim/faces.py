"""Package faces that import their names on first use (PEP 562 module `__getattr__`).

A package's `__init__` lists the names callers use and the module each lives in; nothing is imported until a
name is asked for. So `import mcpsim.pool.command` (a command line building its parser) or `python -m
mcpsim.proc.watchdog` (a sidecar that must start in milliseconds) does not import the MCP SDK, anyio or psutil
because the package they live in also exports heavier things. Type checkers and readers see the same names
through the package's `if TYPE_CHECKING:` imports.

An exported name must not also be the name of one of the package's modules: importing a submodule sets the
package's attribute of that name to the module (`tests/test_layers.py` checks this).
"""

import importlib
from collections.abc import Callable
from typing import Any


def lazy_names(package: str, where: dict[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` for `package` that imports `name` from `package.<where[name]>` on first use."""
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        imported = importlib.import_module(f"{package}.{module}")
        for other, home in where.items():  # later lookups find them directly
            if home == module:
                namespace[other] = getattr(imported, other)
        return namespace[name]

    return __getattr__
