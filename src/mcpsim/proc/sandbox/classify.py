"""Why a sandboxed instance died, in words: "exceeded memory limit 1G", "network is disabled for this instance".

A limit shows in one of three places, checked in this order: the exit status (SIGXCPU: CPU time; SIGXFSZ: file
size; bwrap reports a signal death as 128 + the signal), the limit groups' kernel counters (memory OOM kills,
`pids.max` refusals), and the server's last stderr lines (an interpreter turns ENOMEM, EAGAIN from fork, EFBIG and
EAFNOSUPPORT into messages of its own). The answer is a sentence for the user, or None when nothing points at a
limit (then the usual "exited with code N" stands).
"""

import re
import signal

from mcpsim.proc.sandbox.config import SandboxConfig, format_size

_STDERR_HINTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("memory", re.compile(r"MemoryError|Cannot allocate memory|out of memory|std::bad_alloc|ENOMEM", re.I)),
    ("pids", re.compile(r"Cannot fork|can't start new thread|Resource temporarily unavailable|EAGAIN|fork failed")),
    ("file_size", re.compile(r"File too large|EFBIG|Errno 27")),
    ("network", re.compile(r"Address family not supported|Network is unreachable|EAFNOSUPPORT|ENETUNREACH")),
    ("files", re.compile(r"Too many open files|EMFILE")),
)


def limit_message(limit: str, config: SandboxConfig) -> str:
    """The sentence naming `limit` with its configured value."""
    if limit == "memory":
        return f"exceeded memory limit {format_size(config.memory) if config.memory else '?'}"
    if limit == "pids":
        return f"exceeded process limit {config.pids} (--limit-pids)"
    if limit == "cpu_seconds":
        return f"exceeded CPU time limit {config.cpu_seconds} s (--limit-cpu-seconds)"
    if limit == "file_size":
        return f"exceeded file size limit {format_size(config.file_size) if config.file_size else '?'}"
    if limit == "files":
        return f"exceeded open files limit {config.files} (--limit-files)"
    return "network is disabled for this instance"


def classify(returncode: int | None, group_hits: set[str], stderr: str, config: SandboxConfig) -> str | None:
    """The limit that most likely ended the process, as a sentence; None if none did."""
    if returncode is None:
        return None
    sig = -returncode if returncode < 0 else returncode - 128 if returncode > 128 else 0
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and config.cpu_seconds and "cpu" in group_hits):
        return limit_message("cpu_seconds", config)
    if sig == signal.SIGXFSZ:
        return limit_message("file_size", config)
    if "memory" in group_hits:
        return limit_message("memory", config)
    if "pids" in group_hits:
        return limit_message("pids", config)
    for limit, pattern in _STDERR_HINTS:
        if pattern.search(stderr) and (limit != "network" or config.network != "host"):
            return limit_message(limit, config)
    return None
