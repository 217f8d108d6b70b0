"""Where an instance's interpreter and files come from: `--isolation process|venv|conda`, Node projects, npx.

`prepare` runs once per pool (in the background, so the server answers `/health` meanwhile) and turns the
configured command into the one instances really run: the venv's or conda env's python for `{python}`, the
installed copy of a Node project as working directory, a pre-warmed private npm cache for `npx`. Every
environment is shared by all instances that need it, never built per session.
"""

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import anyio

from mcpsim.errors import ConfigError, StartError
from mcpsim.isolation.builds import Builder, BuildObserver, ensure
from mcpsim.isolation.cache import EnvCache
from mcpsim.isolation.node import NodeProjectBuilder, NpxBuilder, npx_installed_argv, npx_package
from mcpsim.isolation.python_envs import CondaBuilder, VenvBuilder, find_conda
from mcpsim.proc.spawn import Spawner

Isolation = Literal["process", "venv", "conda"]
ISOLATIONS: tuple[Isolation, ...] = ("process", "venv", "conda")


@dataclass(frozen=True)
class IsolationConfig:
    """Where instances' interpreter and files come from; checked when made, so a mistake stops `mcpsim serve`
    before it serves (not each session when the environment is built)."""

    isolation: Isolation = "process"
    """`process`: the interpreter running mcpsim; `venv`: a uv venv from `requirements`; `conda`: a conda env."""
    requirements: Path | None = None
    """requirements.txt (or environment.yml for conda); needed for venv and conda."""
    conda_exe: str | None = None
    """The conda, mamba or micromamba executable (default: the first of micromamba, mamba, conda on PATH)."""
    cache_dir: Path | None = None
    """Where built environments are kept (default: `$MCPSIM_CACHE_DIR`, else `~/.cache/mcpsim`)."""

    def __post_init__(self) -> None:
        if self.isolation not in ISOLATIONS:
            raise ConfigError(f"--isolation {self.isolation!r}: use one of {', '.join(ISOLATIONS)}")
        if self.isolation == "process":
            return
        if self.requirements is None:
            raise ConfigError(f"--isolation {self.isolation} needs --requirements FILE")
        if not self.requirements.is_file():
            raise ConfigError(f"--requirements {self.requirements} does not exist")
        if self.isolation == "conda":
            try:
                find_conda(self.conda_exe)
            except StartError as exc:
                raise ConfigError(str(exc)) from None


@dataclass
class Prepared:
    """The command instances really run, as its parts (the pool puts them back into its `ServerCommand`)."""

    argv: tuple[str, ...]
    cwd: str | None
    python: str
    env: dict[str, str] = field(default_factory=dict)
    environments: list[str] = field(default_factory=list)
    views: dict[str, str] = field(default_factory=dict)
    """Variables of `env` naming a shared cache directory that an instance gets a private view of instead
    (`mcpsim.pool.workdir.private_view`): npm writes into its cache even to run an installed package."""
    offline_argv: tuple[str, ...] | None = None
    """For an `npx` command: the installed package's bin run by node, which needs no registry (the sandbox)."""


def builders_for(argv: Sequence[str], cwd: str | None, config: IsolationConfig, python: str) -> list[Builder]:
    """What must be built for this command; reads project files, so call it off the event loop."""
    found: list[Builder] = []
    if config.isolation == "venv" and config.requirements is not None:
        found.append(VenvBuilder(config.requirements, python))
    elif config.isolation == "conda" and config.requirements is not None:
        found.append(CondaBuilder(config.requirements, find_conda(config.conda_exe)))
    if cwd and argv and argv[0] == "node" and (Path(cwd) / "package.json").is_file():
        found.append(NodeProjectBuilder(Path(cwd)))
    package = npx_package(list(argv))
    if package is not None:
        found.append(NpxBuilder(package))
    return found


async def prepare(
    argv: Sequence[str],
    cwd: str | None,
    config: IsolationConfig,
    python: str,
    spawner: Spawner,
    observer: BuildObserver | None = None,
) -> Prepared:
    """Build (or reuse) what the command needs; the command as instances run it (`StartError` on a failure)."""
    builders = await anyio.to_thread.run_sync(builders_for, argv, cwd, config, python)
    cache = EnvCache(config.cache_dir)
    prepared = Prepared(tuple(argv), cwd, python)
    for builder in builders:
        built = await ensure(builder, cache, spawner, observer)
        prepared.environments.append(built.path.name)
        if built.python is not None:
            prepared.python = built.python
        if isinstance(builder, NodeProjectBuilder):
            prepared.argv, prepared.cwd = _relocate(prepared.argv, builder.project, built.path)
        if isinstance(builder, NpxBuilder):
            npm_cache = NpxBuilder.cache_dir(built.path)
            prepared.env.update({"npm_config_cache": str(npm_cache), "npm_config_prefer_offline": "true"})
            prepared.views["npm_config_cache"] = str(npm_cache)
            direct = await anyio.to_thread.run_sync(npx_installed_argv, prepared.argv, npm_cache)
            prepared.offline_argv = tuple(direct) if direct else None
    return prepared


def _relocate(argv: tuple[str, ...], project: Path, copy: Path) -> tuple[tuple[str, ...], str]:
    """Run the installed copy: the working directory and any argument inside the project move with it."""
    prefix = str(project) + os.sep
    moved = tuple(str(copy / token[len(prefix) :]) if token.startswith(prefix) else token for token in argv)
    return moved, str(copy)
