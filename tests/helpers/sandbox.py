"""Can bwrap build the sandbox's namespaces here? Tests of sandboxed modes are skipped, saying why, only if not."""

import shutil
import subprocess


def bwrap_problem() -> str | None:
    """Why `--sandbox` cannot run on this machine, or None when it can."""
    if shutil.which("bwrap") is None:
        return "bwrap is not installed (`make sandbox-tools` installs Debian's bubblewrap)"
    probe = ["bwrap", "--unshare-all", "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--", "true"]
    result = subprocess.run(probe, capture_output=True, timeout=20)
    if result.returncode != 0:
        return f"bwrap cannot build namespaces here: {result.stderr.decode(errors='replace').strip()}"
    return None
