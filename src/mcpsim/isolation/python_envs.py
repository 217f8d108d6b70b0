"""Python environments: a uv virtualenv or a conda env per requirements hash, for `--isolation venv|conda`."""

import platform
import shutil
import sys
from pathlib import Path

from mcpsim.errors import StartError
from mcpsim.isolation.builds import BUILD_TIMEOUT, run_step
from mcpsim.isolation.cache import content_hash
from mcpsim.proc.spawn import Spawner


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

    async def build(self, staging: Path, spawner: Spawner) -> dict[str, object]:
        from uv import find_uv_bin

        uv = find_uv_bin()
        await run_step(spawner, [uv, "venv", "--relocatable", "--python", self.base_python, str(staging)], "uv venv")
        await run_step(
            spawner,
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

    async def build(self, staging: Path, spawner: Spawner) -> dict[str, object]:
        for argv in self.plan(staging):
            await run_step(spawner, argv, Path(argv[0]).name, time_limit=self.create_timeout)
        return {"conda": self.conda, "requirements": self._text.decode(errors="replace")}
