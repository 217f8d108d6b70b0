"""Removing a directory tree that a server, or a sealed build, made hard to remove.

Low in the layers because both the pool (instance directories, `isolation/cache.py`'s environments) and the
watchdog, which removes a killed server's instance directories with nothing of mcpsim's above `proc` loaded,
need it.
"""

import contextlib
import shutil
import stat
from collections.abc import Callable
from pathlib import Path


def remove_tree(path: Path) -> None:
    """Remove a directory tree whatever its modes (sealed environments, read-only files a server left);
    errors other than permissions are ignored, and the caller checks what is left."""

    def make_writable_and_retry(function: Callable[[str], object], name: str, _exc: object) -> None:
        with contextlib.suppress(OSError):
            for directory in (Path(name).parent, Path(name)):
                if directory.is_dir() and not directory.is_symlink():
                    directory.chmod(stat.S_IMODE(directory.stat().st_mode) | stat.S_IRWXU)
            function(name)

    shutil.rmtree(path, onerror=make_writable_and_retry)
