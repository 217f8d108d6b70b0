"""Every instance's own directory: a private, empty place for a server's state, removed when the instance ends.

A production server that keeps state on disk (a knowledge graph next to its script, a SQLite file in `$HOME`,
scratch files in `$TMPDIR`) would otherwise share it with every other session and every later run. Each
instance gets `<root>/<instance id>/` (mode 0700), given to its command as `{instance_dir}` and to its process
as `MCPSIM_INSTANCE_DIR`; `HOME` and `TMPDIR` point at its `home/` and `tmp/` (and the XDG base directories
follow `HOME`), unless `--keep-home` keeps the caller's. The pool owns `<root>`: made at its start (a fresh
directory under the system temporary directory unless given), removed with everything in it at its end.

Shared caches stay unwritten. A command that runs from mcpsim's npm cache (`npx PACKAGE`) gets, instead of the
cache itself, a private view of it inside its directory: every directory is its own, every file a hard link to
the cache's (read-only) copy, and the small files npm appends to (its index buckets, its logs) are copied. What
the server or npm writes there (a `memory.jsonl` beside the package's script, npm's logs and index entries)
lands in the instance's directory and goes with it. A view costs one `link` per file and no space, as fast
as `cp -al` (server-memory's 4,079 files: 1.6-2.5 s both ways at load average 17 on the 2-core machine;
`cp -al` took 0.14 s when it was quieter).
"""

import os
import shutil
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path

from mcpsim.errors import StartError
from mcpsim.proc.trees import remove_tree
from mcpsim.wire import INSTANCE_DIR_VARIABLE

COPIED_PARTS = frozenset({"index-v5", "_logs"})
"""Parts of an npm cache whose files npm appends to or rewrites in place: copied into a view, never linked."""
XDG_VARIABLES = ("XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR")
"""Dropped from a private-home instance's environment, so tools fall back to directories under its `HOME`."""


class InstanceDirs:
    """The pool's directory of instance directories; `open()` at the pool's start, `close()` at its end."""

    def __init__(self, root: Path | None = None, keep_home: bool = False) -> None:
        self.keep_home = keep_home
        self._given = root
        self.root: Path | None = None

    def open(self) -> Path:
        if self._given is not None:
            self._given.mkdir(parents=True, exist_ok=True)
            self.root = Path(tempfile.mkdtemp(prefix="mcpsim-instances-", dir=self._given))
        else:
            self.root = Path(tempfile.mkdtemp(prefix="mcpsim-instances-"))
        return self.root

    def close(self) -> None:
        if self.root is not None:
            remove_tree(self.root)
            self.root = None

    def create(self, instance_id: str) -> Path:
        """A new, empty directory for one instance, with `home/` and `tmp/` when its home is private."""
        if self.root is None:
            raise StartError("the pool's instance directories are not open (the pool is not running)")
        path = self.root / instance_id
        try:
            path.mkdir(mode=0o700)
            if not self.keep_home:
                (path / "home").mkdir(mode=0o700)
                (path / "tmp").mkdir(mode=0o700)
        except OSError as exc:
            raise StartError(f"cannot create the instance directory {path}: {exc}") from None
        return path

    def prepare(
        self, instance_id: str, base: Mapping[str, str], views: Mapping[str, str]
    ) -> tuple[str, dict[str, str]]:
        """The instance's new directory, and `base` made its environment: `MCPSIM_INSTANCE_DIR`, its own
        `HOME`/`TMPDIR` (unless the caller's are kept), and each variable of `views` pointing at a private view
        of the cache it named. Blocking: run it in a thread."""
        path = self.create(instance_id)
        env = dict(base)
        env[INSTANCE_DIR_VARIABLE] = str(path)
        if not self.keep_home:
            for name in XDG_VARIABLES:
                env.pop(name, None)
            env.update({"HOME": str(path / "home"), "TMPDIR": str(path / "tmp")})
        for variable, source in views.items():
            view = path / f"view-{variable}"
            private_view(Path(source), view)
            env[variable] = str(view)
        return str(path), env

    def remove(self, path: str) -> None:
        """Remove an instance's directory, whatever its server left in it. Blocking: run it in a thread."""
        remove_tree(Path(path))


def private_view(source: Path, target: Path) -> None:
    """Make `target` a private view of the directory `source`: own directories, hard-linked files (copied where
    npm writes in place, or when linking is impossible, e.g. across file systems), symlinks recreated.
    Blocking: run it in a thread. Plain strings and `scandir` entries: it runs once per file of a package."""
    try:
        _view_tree(str(source), str(target), copy=False)
    except OSError as exc:
        raise StartError(f"cannot make a private view of {source} in {target}: {exc}") from None


def _view_tree(source: str, target: str, copy: bool) -> None:
    os.mkdir(target, 0o700)  # noqa: PTH102
    with os.scandir(source) as entries:
        for entry in entries:
            destination = os.path.join(target, entry.name)  # noqa: PTH118 (once per file: no Path objects)
            if entry.is_symlink():
                os.symlink(os.readlink(entry.path), destination)  # noqa: PTH211, PTH115
            elif entry.is_dir():
                _view_tree(entry.path, destination, copy or entry.name in COPIED_PARTS)
            elif copy:
                shutil.copy2(entry.path, destination)
                os.chmod(destination, stat.S_IMODE(os.stat(destination).st_mode) | stat.S_IWUSR)  # noqa: PTH101, PTH116
            else:
                try:
                    os.link(entry.path, destination)
                except OSError:
                    shutil.copy2(entry.path, destination)
