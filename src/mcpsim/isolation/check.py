"""Health check of a built environment: its interpreter runs, and each required distribution is installed
and its top-level modules import (run inside the environment's own interpreter)."""

import json
import re
from pathlib import Path

from mcpsim.isolation.cache import EnvRecord
from mcpsim.proc.spawn import Spawner

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")

CHECK_SCRIPT = r"""
import importlib, importlib.metadata as md, json, sys
problems, imported = [], []
for name in json.loads(sys.argv[1]):
    try:
        dist = md.distribution(name)
    except md.PackageNotFoundError:
        problems.append(f"{name}: not installed")
        continue
    tops = set((dist.read_text("top_level.txt") or "").split())
    for path in dist.files or []:
        if len(path.parts) == 1 and path.parts[0].endswith(".py"):
            tops.add(path.parts[0][:-3])
        elif len(path.parts) == 2 and path.parts[1] == "__init__.py":
            tops.add(path.parts[0])
    for module in sorted(m for m in tops if not m.startswith("_")):
        try:
            importlib.import_module(module)
            imported.append(module)
        except Exception as exc:
            problems.append(f"{name}: import {module} failed: {exc!r}")
print(json.dumps({"python": sys.version.split()[0], "imported": imported, "problems": problems}))
"""


def requirement_names(text: str) -> list[str]:
    """Distribution names from a requirements file (options, comments, URLs and editables are skipped)."""
    names = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        match = _NAME.match(line)
        if match:
            names.append(match.group(1))
    return names


async def check_environment(path: Path, record: EnvRecord, spawner: Spawner) -> tuple[bool, str]:
    """(ok, what was found): the interpreter runs and every requirement imports (Node builds: files present)."""
    if record.python is None:
        ok = (path / "node_modules").is_dir() or (path / "npm-cache").is_dir()
        return ok, "installed files present" if ok else "nothing installed"
    requirements = requirement_names(str(record.extra.get("requirements", "")))
    lines: list[str] = []
    code, tail = await spawner.run_logged(
        [record.python, "-c", CHECK_SCRIPT, json.dumps(requirements)], lines.append, time_limit=120
    )
    if code != 0:
        return False, f"the interpreter {record.python} failed (exit code {code}): {tail[-500:]}"
    try:
        report = json.loads(next(line for line in reversed(lines) if line.startswith("stdout: {")).split(": ", 1)[1])
    except (StopIteration, ValueError):
        return False, f"unexpected output from the check: {tail[-500:]}"
    if report["problems"]:
        return False, "; ".join(report["problems"])
    return True, f"python {report['python']}; imported {', '.join(report['imported']) or 'nothing to import'}"
