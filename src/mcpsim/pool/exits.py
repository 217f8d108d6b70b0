"""How an instance's end is put into words for its session: "the server process exited with code 1 before it
was ready; last stderr: ...", or, for a sandboxed instance ended by a limit, "exceeded memory limit 1G (...)"."""

from mcpsim.proc.child import ChildProcess
from mcpsim.proc.sandbox import SandboxedStart


def stderr_suffix(process: ChildProcess | None) -> str:
    """`; last stderr: ...` with the process's last stderr lines, or nothing."""
    tail = process.stderr_tail() if process is not None else ""
    return f"; last stderr: {tail}" if tail else ""


def exit_reason(label: str, process: ChildProcess, when: str, box: SandboxedStart | None) -> str:
    """Why `process` is gone (`label`: "instance ID (seed N)"), naming the sandbox limit that ended it if any."""
    code = process.returncode
    what = "is no longer connected" if code is None else f"exited with code {code}"
    if code is not None and code < 0:
        what = f"was killed by signal {-code}"
    what = f"the server process {what}{' ' + when if when else ''}"
    limit = box.explain(code, process.output_tail()) if box is not None else None
    return f"{label}: {f'{limit} ({what})' if limit else what}{stderr_suffix(process)}"
