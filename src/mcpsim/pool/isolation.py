"""Where an instance's interpreter and files come from: `--isolation process|venv|conda`, Node projects, npx.

`prepare` runs once per pool (in the background, so the server answers `/health` meanwhile) and turns the
configured command into the one instances really run: the venv's or conda env's python for `{python}`, the
installed copy of a Node project as working directory, a pre-warmed private npm cache for `npx`. Every
environment is shared by all instances that need it, never built per session.
"""

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import anyio

from mcpsim.errors import ConfigError
from mcpsim.pool.builders import Builder, BuildObserver, CondaBuilder, VenvBuilder, ensure, find_conda
from mcpsim.pool.command import ServerCommand
from mcpsim.pool.envcache import EnvCache
from mcpsim.pool.nodebuilders import NodeProjectBuilder, NpxBuilder, npx_package

Isolation = Literal["process", "venv", "conda"]
ISOLATIONS: tuple[Isolation, ...] = ("process", "venv", "conda")


@dataclass(frozen=True)
class IsolationConfig:
    isolation: Isolation = "process"
    requirements: Path | None = None
    conda_exe: str | None = None
    cache_dir: Path | None = None


@dataclass
class Prepared:
    command: ServerCommand
    python: str
    env: dict[str, str] = field(default_factory=dict)
    environments: list[str] = field(default_factory=list)


def validate(config: IsolationConfig) -> str | None:
    """Start-up checks (clear errors before serving): the requirements file, the conda executable."""
    if config.isolation == "process":
        return None
    if config.requirements is None:
        raise ConfigError(f"--isolation {config.isolation} needs --requirements FILE")
    if not config.requirements.is_file():
        raise ConfigError(f"--requirements {config.requirements} does not exist")
    if config.isolation == "conda":
        return find_conda(config.conda_exe)
    return None


def builders_for(command: ServerCommand, config: IsolationConfig, python: str) -> list[Builder]:
    """What must be built for this command; reads project files, so call it off the event loop."""
    found: list[Builder] = []
    if config.isolation == "venv" and config.requirements is not None:
        found.append(VenvBuilder(config.requirements, python))
    elif config.isolation == "conda" and config.requirements is not None:
        found.append(CondaBuilder(config.requirements, find_conda(config.conda_exe)))
    if command.cwd and command.argv and command.argv[0] == "node" and (Path(command.cwd) / "package.json").is_file():
        found.append(NodeProjectBuilder(Path(command.cwd)))
    package = npx_package(command.argv)
    if package is not None:
        found.append(NpxBuilder(package))
    return found


async def prepare(
    command: ServerCommand, config: IsolationConfig, python: str, observer: BuildObserver | None = None
) -> Prepared:
    builders = await anyio.to_thread.run_sync(builders_for, command, config, python)
    cache = EnvCache(config.cache_dir)
    prepared = Prepared(command, python)
    for builder in builders:
        built = await ensure(builder, cache, observer)
        prepared.environments.append(built.path.name)
        if built.python is not None:
            prepared.python = built.python
        if isinstance(builder, NodeProjectBuilder):
            prepared.command = _relocate(prepared.command, builder.project, built.path)
        if isinstance(builder, NpxBuilder):
            prepared.env.update(
                {"npm_config_cache": str(NpxBuilder.cache_dir(built.path)), "npm_config_prefer_offline": "true"}
            )
    return prepared


def _relocate(command: ServerCommand, project: Path, copy: Path) -> ServerCommand:
    """Run the installed copy: the working directory and any argument inside the project move with it."""
    prefix = str(project) + os.sep
    argv = tuple(str(copy / token[len(prefix) :]) if token.startswith(prefix) else token for token in command.argv)
    return dataclasses.replace(command, argv=argv, cwd=str(copy))
