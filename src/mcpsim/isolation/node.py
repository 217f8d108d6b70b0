"""Builders for Node servers: an installed copy of a Node project, and a pre-warmed npx package cache."""

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import anyio

from mcpsim.isolation.builds import run_step
from mcpsim.isolation.cache import content_hash
from mcpsim.proc.spawn import Spawner

SKIP = {"node_modules", ".git"}


def project_digest(project: Path) -> str:
    """Hash of the project's own files (not node_modules): a changed source or lockfile is a new build."""
    parts: list[bytes | str] = []
    for path in sorted(project.rglob("*")):
        if path.is_file() and not SKIP.intersection(path.relative_to(project).parts):
            parts += [str(path.relative_to(project)), path.read_bytes()]
    return content_hash(*parts)


class NodeProjectBuilder:
    """A copy of the project with its dependencies installed (`npm ci`, or `npm install` without a lockfile)."""

    kind = "node"
    relocatable = True

    def __init__(self, project: Path) -> None:
        self.project = project.resolve()
        self._key = project_digest(self.project)

    def key(self) -> str:
        return self._key

    def source(self) -> str:
        return str(self.project)

    def python(self, path: Path) -> None:
        return None

    async def build(self, staging: Path, spawner: Spawner) -> dict[str, object]:
        await anyio.to_thread.run_sync(
            lambda: shutil.copytree(self.project, staging, ignore=shutil.ignore_patterns(*SKIP), symlinks=True)
        )
        has_lock = (staging / "package-lock.json").is_file()
        command = ["npm", "ci"] if has_lock else ["npm", "install"]
        await run_step(spawner, [*command, "--no-audit", "--no-fund"], f"npm {command[1]}", cwd=str(staging))
        return {"installer": " ".join(command)}


def npx_package(argv: list[str] | tuple[str, ...]) -> str | None:
    """The package an `npx` command runs: the first argument that is not an option (`npx -y pkg@1 ...`)."""
    if not argv or Path(argv[0]).name != "npx":
        return None
    args = list(argv[1:])
    while args:
        arg = args.pop(0)
        if arg in ("-p", "--package"):
            return args.pop(0) if args else None
        if arg.startswith("--package="):
            return arg.split("=", 1)[1]
        if not arg.startswith("-"):
            return arg
    return None


def npx_installed_argv(argv: Sequence[str], cache: Path) -> list[str] | None:
    """`node <bin> ARGS` for `npx [-y] PKG ARGS` whose package the pre-warm installed into `cache`, or None.

    What a sandboxed instance runs instead of npx: npx resolves the package against the registry at every
    start, which a sandbox (no network) cannot reach, while the installed bin needs nothing but node."""
    if not argv or Path(argv[0]).name != "npx":
        return None
    args = list(argv[1:])
    while args and args[0] in ("-y", "--yes"):
        args.pop(0)
    if not args or args[0].startswith("-"):
        return None
    spec, rest = args[0], args[1:]
    name = spec[: spec.rindex("@")] if spec.rfind("@") > 0 else spec
    for manifest in sorted((cache / "_npx").glob("*/package.json")):
        try:
            if spec not in json.loads(manifest.read_text()).get("_npx", {}).get("packages", []):
                continue
            package = manifest.parent / "node_modules" / name
            bins = json.loads((package / "package.json").read_text()).get("bin")
        except (OSError, ValueError):
            continue
        if isinstance(bins, dict) and bins:
            bins = bins.get(name.rsplit("/", 1)[-1]) or next(iter(bins.values()))
        if isinstance(bins, str) and (package / bins).is_file():
            return ["node", str((package / bins).resolve()), *rest]
    return None


class NpxBuilder:
    """A private npm cache in which the package is installed once; instances' npx then runs it from there."""

    kind = "npx"
    relocatable = True

    def __init__(self, package: str) -> None:
        self.package = package

    def key(self) -> str:
        return content_hash(self.package)

    def source(self) -> str:
        return self.package

    def python(self, path: Path) -> None:
        return None

    @staticmethod
    def cache_dir(path: Path) -> Path:
        return path / "npm-cache"

    async def build(self, staging: Path, spawner: Spawner) -> dict[str, object]:
        cache = self.cache_dir(staging)
        cache.mkdir(parents=True)
        await run_step(
            spawner,
            ["npx", "--yes", f"--cache={cache}", "--package", self.package, "--", "node", "-e", "0"],
            f"npx pre-warm {self.package}",
        )
        return {"package": self.package}
