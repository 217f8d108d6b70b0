"""What to run for an instance: a shell-free command template, or an env name, or a path to detect.

A template is split like a shell would (`shlex`), but never run through one: the seed and port replace the
`{seed}` and `{port}` placeholders inside the template's own arguments and are integers, so nothing from a
request can add an argument; `{instance_dir}` is the instance's private directory (see `workdir.py`), a path
mcpsim made. `python`/`python3` as the program means the interpreter of the instance's isolation (by default the
one running mcpsim), so a template works the same in every environment; any other interpreter (`python3.12`,
`/path/to/venv/bin/python`) is run as named, and the fork server forks it too.
"""

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mcpsim.errors import CommandError

Transport = Literal["stdio", "http", "sse"]
TRANSPORTS: tuple[Transport, ...] = ("stdio", "http", "sse")
PLACEHOLDERS = ("{seed}", "{port}", "{python}", "{instance_dir}")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
SHIPPED_ENVS = ("frozen_lake", "taxi", "lunar_lander")


@dataclass(frozen=True)
class ServerCommand:
    argv: tuple[str, ...]
    transport: Transport
    cwd: str | None = None
    http_path: str = "/mcp"
    label: str = ""

    @property
    def uses_port(self) -> bool:
        return self.transport != "stdio"

    def expand(self, *, seed: int, port: int | None, python: str, instance_dir: str | None = None) -> list[str]:
        values = {
            "{seed}": str(seed),
            "{port}": "" if port is None else str(port),
            "{python}": python,
            "{instance_dir}": instance_dir or "",
        }
        out = []
        for token in self.argv:
            for placeholder, value in values.items():
                token = token.replace(placeholder, value)
            out.append(token)
        return out

    def url(self, port: int) -> str:
        return f"http://127.0.0.1:{port}{self.http_path if self.transport == 'http' else '/sse'}"


def for_env(name: str, transport: Transport = "stdio") -> ServerCommand:
    """The command for one of the environments shipped in `mcpsim.envs`."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise CommandError(f"invalid env name {name!r}")
    argv = ["{python}", "-m", f"mcpsim.envs.{name}", "--seed", "{seed}"]
    if transport != "stdio":
        argv += ["--transport", transport, "--port", "{port}"]
    return ServerCommand(tuple(argv), transport, label=f"env {name}")


def parse_command(template: str, transport: Transport | None = None) -> ServerCommand:
    """Parse `--server`: a command template, a directory with `package.json`, or a `.py`/`.js` file."""
    try:
        argv = shlex.split(template)
    except ValueError as exc:
        raise CommandError(f"cannot parse server command {template!r}: {exc}") from None
    if not argv:
        raise CommandError("the server command is empty")
    detected = _detect_path(argv)
    if detected is not None:
        argv, cwd, label = detected
    else:
        cwd, label = None, argv[0]
    if argv[0] in ("python", "python3"):
        argv[0] = "{python}"
    for token in argv:
        for name in _PLACEHOLDER.findall(token):
            if f"{{{name}}}" not in PLACEHOLDERS:
                raise CommandError(f"unknown placeholder {{{name}}} in {template!r}; use {', '.join(PLACEHOLDERS)}")
    chosen = transport or ("http" if any("{port}" in token for token in argv) else "stdio")
    if chosen not in TRANSPORTS:
        raise CommandError(f"unknown backend transport {chosen!r}; use one of {', '.join(TRANSPORTS)}")
    return ServerCommand(tuple(argv), chosen, cwd=cwd, label=label)


def _detect_path(argv: list[str]) -> tuple[list[str], str | None, str] | None:
    """A lone path argument: a Node project directory, or a script to run with the right interpreter."""
    path = Path(argv[0])
    rest = argv[1:]
    if path.is_dir() and (path / "package.json").is_file():
        entry = node_entry_point(path)
        return ["node", str(entry), *rest], str(path.resolve()), f"node project {path}"
    if path.is_file() and path.suffix == ".py":
        return ["{python}", str(path.resolve()), *rest], None, f"python script {path}"
    if path.is_file() and path.suffix in (".js", ".mjs", ".cjs"):
        return ["node", str(path.resolve()), *rest], None, f"node script {path}"
    return None


def node_entry_point(project: Path) -> Path:
    """The file `node` should run for a project: its `bin` (first one), else `main`, else `index.js`."""
    try:
        manifest = json.loads((project / "package.json").read_text())
    except (OSError, ValueError) as exc:
        raise CommandError(f"cannot read {project / 'package.json'}: {exc}") from None
    bin_field = manifest.get("bin")
    if isinstance(bin_field, dict) and bin_field:
        bin_field = next(iter(bin_field.values()))
    for candidate in (bin_field, manifest.get("main"), "index.js"):
        if isinstance(candidate, str) and (project / candidate).is_file():
            return (project / candidate).resolve()
    raise CommandError(f"{project} has a package.json but no entry point (bin, main or index.js)")
