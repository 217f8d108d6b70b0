"""The sandbox tests need bwrap able to build namespaces here; they are skipped, saying why, only if it cannot."""

import shutil
import subprocess

import pytest


def _bwrap_problem() -> str | None:
    if shutil.which("bwrap") is None:
        return "bwrap is not installed (`make sandbox-tools` installs Debian's bubblewrap)"
    probe = ["bwrap", "--unshare-all", "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--", "true"]
    result = subprocess.run(probe, capture_output=True, timeout=20)
    if result.returncode != 0:
        return f"bwrap cannot build namespaces here: {result.stderr.decode(errors='replace').strip()}"
    return None


PROBLEM = _bwrap_problem()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if PROBLEM is None:
        return
    for item in items:
        if "tests/sandbox/" in str(item.fspath):
            item.add_marker(pytest.mark.skip(reason=PROBLEM))
