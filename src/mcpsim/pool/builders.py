"""Builders of isolated environments: a uv virtualenv or a conda env from requirements, an installed Node
project, a pre-warmed npx package. Each returns what instances need (an interpreter, a working directory),
builds at most once per content hash (see `envcache`), and logs its lifecycle as structured events:
`env.build.started`, `env.build.finished` (duration, size on disk), `env.build.failed` (output tail),
`env.reused`, `env.removed`.

Builds run as ordinary pool children (own process group, killed with the server, output drained into the log)
and never on the event loop.
"""

import logging
import platform
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import anyio

from mcpsim.errors import BuildError, StartError
from mcpsim.pool.envcache import EnvCache, EnvRecord, content_hash
from mcpsim.pool.process import run_logged

logger = logging.getLogger("mcpsim.envs")

BUILD_TIMEOUT = 900.0


@dataclass(frozen=True)
class Built:
    path: Path
    python: str | None = None
    record: EnvRecord | None = None
    reused: bool = False


class Builder(Protocol):
    kind: str
    relocatable: bool

    def key(self) -> str: ...

    def source(self) -> str: ...

    async def build(self, staging: Path) -> dict[str, object]:
        """Fill `staging`; return extra metadata. Raise BuildError on failure."""
        ...

    def python(self, path: Path) -> str | None: ...


async def ensure(builder: Builder, cache: EnvCache, observer: "BuildObserver | None" = None) -> Built:
    """The built environment for `builder`, building it once (other callers wait for that build)."""
    final = cache.path(builder.kind, builder.key())
    if (record := await anyio.to_thread.run_sync(cache.record, final)) is not None:
        return await _reuse(builder, cache, final, record, observer)
    lock = cache.build_lock(builder.kind, builder.key())
    await anyio.to_thread.run_sync(lock.__enter__)
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
            extra = await builder.build(staging)
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
        lock.__exit__(None, None, None)


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


async def run_step(argv: list[str], what: str, cwd: str | None = None, time_limit: float = BUILD_TIMEOUT) -> None:
    """One installer command; a failure raises BuildError carrying the command's output tail."""
    code, tail = await run_logged(
        argv,
        lambda line: logger.info("%s: %s", what, line, extra={"event": "env.output"}),
        time_limit=time_limit,
        cwd=cwd,
    )
    if code != 0:
        reason = f"killed after its {time_limit:g} s limit" if code == -9 else f"exited with code {code}"
        raise BuildError(f"{what} failed ({' '.join(argv[:4])} ... {reason}): {tail[-1500:]}")


def python_version() -> str:
    return f"{platform.python_implementation()}-{'.'.join(map(str, sys.version_info[:3]))}"


class VenvBuilder:
    """A virtualenv built with uv (the PyPI package's binary) from a requirements file, for this Python."""

    kind = "venv"
    relocatable = True  # uv venv --relocatable

    def __init__(self, requirements: Path, base_python: str = sys.executable) -> None:
        self.requirements = requirements.resolve()
        self.base_python = base_python
        self._text = self.requirements.read_bytes()

    def key(self) -> str:
        return content_hash(self._text, python_version(), self.base_python)

    def source(self) -> str:
        return str(self.requirements)

    def python(self, path: Path) -> str:
        return str(path / "bin" / "python")

    async def build(self, staging: Path) -> dict[str, object]:
        from uv import find_uv_bin

        uv = find_uv_bin()
        await run_step([uv, "venv", "--relocatable", "--python", self.base_python, str(staging)], "uv venv")
        await run_step(
            [uv, "pip", "install", "--python", str(staging / "bin" / "python"), "-r", str(self.requirements)],
            "uv pip install",
        )
        return {"requirements": self._text.decode(errors="replace")}


def find_conda(explicit: str | None = None) -> str:
    """The conda-compatible executable: `--conda-exe`, else micromamba, mamba or conda on PATH."""
    candidates = [explicit] if explicit else ["micromamba", "mamba", "conda"]
    for name in candidates:
        found = shutil.which(name) if name else None
        if found:
            return found
    if explicit:
        raise StartError(f"--conda-exe {explicit!r} was not found")
    raise StartError("--isolation conda needs micromamba, mamba or conda on PATH (or --conda-exe); none was found")


class CondaBuilder:
    """A conda env per requirements hash; instances run its python directly (never `conda run`)."""

    kind = "conda"
    relocatable = False  # conda writes its prefix into files

    def __init__(self, requirements: Path, conda_exe: str, create_timeout: float = BUILD_TIMEOUT) -> None:
        self.requirements = requirements.resolve()
        self.conda = conda_exe
        self.create_timeout = create_timeout
        self._text = self.requirements.read_bytes()

    def key(self) -> str:
        return content_hash(self._text, python_version(), Path(self.conda).name)

    def source(self) -> str:
        return str(self.requirements)

    def python(self, path: Path) -> str:
        return str(path / "bin" / "python")

    def plan(self, staging: Path) -> list[list[str]]:
        """The command lines a build runs, in order (tested on machines without conda)."""
        tool = Path(self.conda).name
        is_yaml = self.requirements.suffix in (".yml", ".yaml")
        if is_yaml:
            create = [
                self.conda,
                "create" if tool == "micromamba" else "env",
                *([] if tool == "micromamba" else ["create"]),
                "-y",
                "-p",
                str(staging),
                "-f",
                str(self.requirements),
            ]
            return [create]
        version = ".".join(map(str, sys.version_info[:2]))
        return [
            [self.conda, "create", "-y", "-p", str(staging), f"python={version}", "pip"],
            [self.python(staging), "-m", "pip", "install", "-r", str(self.requirements)],
        ]

    async def build(self, staging: Path) -> dict[str, object]:
        for argv in self.plan(staging):
            await run_step(argv, Path(argv[0]).name, time_limit=self.create_timeout)
        return {"conda": self.conda, "requirements": self._text.decode(errors="replace")}
