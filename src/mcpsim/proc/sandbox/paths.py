"""What an interpreter needs bound into a sandbox: its prefix, its venv's base interpreter, its `.pth` paths."""

import contextlib
import functools
import os
from pathlib import Path


@functools.lru_cache(maxsize=64)
def interpreter_paths(python: str) -> list[str]:
    """The directories an interpreter needs: its own prefix, its venv's base interpreter's prefix, and the
    directories its `.pth` files add (an editable install's source, which may lie under a hidden /tmp)."""
    found = []
    for candidate in (python, os.path.realpath(python)):
        prefix = Path(candidate).parent.parent
        found.append(str(prefix))
        found += _pth_directories(prefix)
        config = prefix / "pyvenv.cfg"
        with contextlib.suppress(OSError):
            for line in config.read_text().splitlines():
                key, _, value = line.partition("=")
                if key.strip() == "home":
                    found.append(str(Path(value.strip()).parent))
    return found


def _pth_directories(prefix: Path) -> list[str]:
    found = []
    for pth in prefix.glob("lib/python*/site-packages/*.pth"):
        with contextlib.suppress(OSError, UnicodeDecodeError):
            for line in pth.read_text().splitlines():
                line = line.strip()
                if line and not line.startswith(("#", "import")) and Path(line).is_dir():
                    found.append(line)
    return found
