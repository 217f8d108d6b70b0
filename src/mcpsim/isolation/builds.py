"""Building an isolated environment once per content hash, whatever it is: the `Builder` protocol and `ensure`.

A builder (`python_envs.py`: a uv venv or a conda env; `node.py`: an installed Node project, a pre-warmed npx
cache) says what it builds and how; `ensure` returns it built, building it at most once per content hash (see
`cache.py`: built aside and renamed into place, a file lock across processes), and logs its lifecycle as
structured events: `env.build.started`, `env.build.finished` (duration, size on disk), `env.build.failed`
(output tail), `env.reused`, `env.removed`.

Builds run as ordinary children (own process group, killed with the server, output drained into the log, see
`Spawner.run_logged`) and never on the event loop.
"""

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import anyio

from mcpsim.errors import BuildError
from mcpsim.isolation.cache import EnvCache, EnvRecord
from mcpsim.proc.spawn import Spawner

logger = logging.getLogger(__name__)

BUILD_TIMEOUT = 900.0


@dataclass(frozen=True)
class Built:
    path: Path
    python: str | None = None
    record: EnvRecord | None = None
    reused: bool = False


class Builder(Protocol):
    """What to build: a kind (`venv`, `conda`, `node`, `npx`), a content key, and the build itself."""

    kind: str
    relocatable: bool
    """Built aside and renamed into place (else built in place, and complete only once its record is written)."""

    def key(self) -> str: ...

    def source(self) -> str: ...

    async def build(self, staging: Path, spawner: Spawner) -> dict[str, object]:
        """Fill `staging` (installers run as `spawner`'s children); return extra metadata. Raise BuildError."""
        ...

    def python(self, path: Path) -> str | None: ...


async def ensure(builder: Builder, cache: EnvCache, spawner: Spawner, observer: "BuildObserver | None" = None) -> Built:
    """The built environment for `builder`, building it once (other callers wait for that build)."""
    final = cache.path(builder.kind, builder.key())
    if (record := await anyio.to_thread.run_sync(cache.record, final)) is not None:
        return await _reuse(builder, cache, final, record, observer)
    lock = cache.build_lock(builder.kind, builder.key())
    await anyio.to_thread.run_sync(lock.acquire)  # blocks while another process builds it
    try:
        if (record := cache.record(final)) is not None:  # another process built it while we waited
            return await _reuse(builder, cache, final, record, observer)
        # Relocatable results are built aside and renamed into place; others (conda prefixes) are built in place,
        # and only the record written last marks them complete.
        staging = cache.staging(builder.kind, builder.key()) if builder.relocatable else final
        await anyio.to_thread.run_sync(lambda: shutil.rmtree(staging, ignore_errors=True))
        logger.info(
            "building %s environment %s from %s",
            builder.kind,
            final.name,
            builder.source(),
            extra={"event": "env.build.started", "env": final.name},
        )
        started = time.monotonic()
        try:
            extra = await builder.build(staging, spawner)
        except BaseException as exc:
            await anyio.to_thread.run_sync(lambda: shutil.rmtree(staging, ignore_errors=True))
            if isinstance(exc, BuildError):
                logger.error(
                    "environment %s failed to build: %s",
                    final.name,
                    exc,
                    extra={"event": "env.build.failed", "env": final.name},
                )
                if observer is not None:
                    observer.environment_failed(builder.kind)
            raise
        seconds = time.monotonic() - started
        record = EnvRecord(
            builder.kind,
            builder.key(),
            builder.source(),
            builder.python(final),
            build_seconds=round(seconds, 3),
            extra=extra,
        )
        await anyio.to_thread.run_sync(cache.commit, staging, final, record)
        logger.info(
            "built environment %s in %.1f s (%.1f MB)",
            final.name,
            seconds,
            record.size_bytes / 2**20,
            extra={
                "event": "env.build.finished",
                "env": final.name,
                "seconds": round(seconds, 3),
                "size_bytes": record.size_bytes,
            },
        )
        if observer is not None:
            observer.environment_built(builder.kind, seconds)
        return Built(final, builder.python(final), record)
    finally:
        lock.release()


async def _reuse(
    builder: Builder, cache: EnvCache, final: Path, record: EnvRecord, observer: "BuildObserver | None"
) -> Built:
    await anyio.to_thread.run_sync(cache.touch, final)
    logger.info("reusing environment %s", final.name, extra={"event": "env.reused", "env": final.name})
    if observer is not None:
        observer.environment_reused(builder.kind)
    return Built(final, builder.python(final), record, reused=True)


class BuildObserver(Protocol):
    def environment_built(self, kind: str, seconds: float) -> None: ...

    def environment_reused(self, kind: str) -> None: ...

    def environment_failed(self, kind: str) -> None: ...


async def run_step(
    spawner: Spawner, argv: list[str], what: str, cwd: str | None = None, time_limit: float = BUILD_TIMEOUT
) -> None:
    """One installer command; a failure raises BuildError carrying the command's output tail."""
    code, tail = await spawner.run_logged(
        argv,
        lambda line: logger.info("%s: %s", what, line, extra={"event": "env.output"}),
        time_limit=time_limit,
        cwd=cwd,
    )
    if code != 0:
        reason = f"killed after its {time_limit:g} s limit" if code == -9 else f"exited with code {code}"
        raise BuildError(f"{what} failed ({' '.join(argv[:4])} ... {reason}): {tail[-1500:]}")
