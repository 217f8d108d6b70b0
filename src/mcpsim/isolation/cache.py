"""The cache of built environments (venvs, conda envs, installed Node projects, pre-warmed npx packages).

Each environment lives in `<cache>/envs/<kind>-<hash>/` where the hash covers everything that determines its
contents (requirements, interpreter version, lockfile). It is built in a temporary sibling directory and renamed
into place only when complete, so the cache never holds a half-built environment, and a build lock (a file
lock, so two `mcpsim serve` processes on one machine do not build it twice either) makes concurrent sessions
wait for one build instead of starting their own. `mcpsim-env.json` in each directory records what it is,
when it was built and last used, its size and build time; `mcpsim cache list|gc|rm|check` read and act on it.

A committed environment is sealed: every file and directory below its top loses its write bits, so instances
(which only ever read it) cannot change it, nor add files to it (a `__pycache__`, a server's state file). Only
the top directory and the record stay writable, for the record's `last_used_at`; removal restores the bits.
Write bits bind users, not root: for an instance running as root the private views of `mcpsim.pool.workdir`
are what keep an npm cache unwritten.
"""

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import stat
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from mcpsim.proc.trees import remove_tree
from mcpsim.wire import CACHE_VARIABLE

logger = logging.getLogger(__name__)

META_FILE = "mcpsim-env.json"


def cache_root() -> Path:
    """`$MCPSIM_CACHE_DIR`, else `$XDG_CACHE_HOME/mcpsim`, else `~/.cache/mcpsim`."""
    if os.environ.get(CACHE_VARIABLE):
        return Path(os.environ[CACHE_VARIABLE])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mcpsim"


def content_hash(*parts: bytes | str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()[:16]


@dataclass
class EnvRecord:
    kind: str
    hash: str
    source: str
    """What it was built from (requirements file, project directory, package spec)."""
    python: str | None = None
    created_at: float = field(default_factory=time.time)
    last_used_at: float = field(default_factory=time.time)
    build_seconds: float = 0.0
    size_bytes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.hash}"


class EnvCache:
    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or cache_root()) / "envs"

    def path(self, kind: str, key: str) -> Path:
        return self.root / f"{kind}-{key}"

    def record(self, path: Path) -> EnvRecord | None:
        try:
            return EnvRecord(**json.loads((path / META_FILE).read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def write_record(self, path: Path, record: EnvRecord) -> None:
        (path / META_FILE).write_text(json.dumps(asdict(record), indent=2))

    def touch(self, path: Path) -> None:
        """Mark an environment used now (what `gc` goes by)."""
        record = self.record(path)
        if record is not None:
            record.last_used_at = time.time()
            with contextlib.suppress(OSError):
                self.write_record(path, record)

    def entries(self) -> list[tuple[Path, EnvRecord | None]]:
        if not self.root.is_dir():
            return []
        return [
            (path, self.record(path))
            for path in sorted(self.root.iterdir())
            if path.is_dir() and ".tmp-" not in path.name
        ]

    def build_lock(self, kind: str, key: str) -> "BuildLock":
        return BuildLock(self.root, self.root / f".{kind}-{key}.lock")

    def staging(self, kind: str, key: str) -> Path:
        path = self.root / f"{kind}-{key}.tmp-{os.getpid()}"
        shutil.rmtree(path, ignore_errors=True)
        return path

    def commit(self, staging: Path, final: Path, record: EnvRecord) -> None:
        """Complete a build: the record is written last, then (if built aside) the directory moves into place."""
        record.size_bytes = directory_size(staging)
        seal(staging)
        self.write_record(staging, record)
        if staging != final:
            staging.rename(final)

    def remove(self, path: Path) -> bool:
        """Delete an environment and verify it is gone."""
        record = self.record(path)
        remove_tree(path)
        gone = not path.exists()
        logger.info(
            "environment %s removed",
            path.name,
            extra={"event": "env.removed", "env": path.name, "verified": gone, "kind": record.kind if record else None},
        )
        return gone

    def gc(self, older_than_days: float) -> list[tuple[str, bool]]:
        """Remove environments unused for `older_than_days`, and leftovers of interrupted builds."""
        cutoff = time.time() - older_than_days * 86400
        removed = []
        if self.root.is_dir():
            for path in self.root.iterdir():
                if path.is_dir() and ".tmp-" in path.name and not _pid_alive(path.name.rsplit("-", 1)[-1]):
                    removed.append((path.name, self.remove(path)))
        for path, record in self.entries():
            never_completed = record is None and self._unlocked(path)
            unused = record is not None and record.last_used_at < cutoff
            if never_completed or unused:
                removed.append((path.name, self.remove(path)))
        return removed

    def _unlocked(self, path: Path) -> bool:
        """No build holds this environment's lock right now."""
        lock = self.root / f".{path.name}.lock"
        try:
            with lock.open("w") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(handle, fcntl.LOCK_UN)
        except BlockingIOError:
            return False
        except OSError:
            return True
        return True


class BuildLock:
    """One environment's build lock, exclusive across processes (`flock`). `acquire` blocks until the lock is
    free, so call it in a worker thread; `release` does not block (call it on any thread, on every path)."""

    def __init__(self, root: Path, path: Path) -> None:
        self.root, self.path = root, path
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
        except BaseException:
            handle.close()
            raise
        self._handle = handle

    def release(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()


WRITE_BITS = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH


def seal(path: Path) -> None:
    """Take the write bits off everything below `path` (not `path` itself, not symlinks); see the module doc."""
    for root, dirs, files in os.walk(path, topdown=False):
        for name in [*files, *dirs]:
            entry = Path(root) / name
            with contextlib.suppress(OSError):
                mode = entry.lstat().st_mode
                if not stat.S_ISLNK(mode):
                    entry.chmod(stat.S_IMODE(mode) & ~WRITE_BITS)


def directory_size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += (Path(root) / name).lstat().st_size
    return total


def _pid_alive(text: str) -> bool:
    if not text.isdigit():
        return False
    try:
        os.kill(int(text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
