"""What `sandbox/isolate.py` costs a forked child: fork -> ready, with and without isolating, in a template-like
bwrap (root only: the child drops to nobody first, as a fork template's does).

`python tests/sandbox/isolate_cost.py [ROUNDS]`: re-runs itself under bwrap with the template's namespaces and
capabilities, then alternates 4 x ROUNDS forks: a child that drops to nobody and signals, and one that drops,
isolates itself (user, mount, network, pid, ipc, uts, cgroup namespaces, its init, /proc, tmpfs, devpts) and
signals from the server process. Prints medians (ms). The forking process is small: a fork template's larger
heap makes each of the child's two extra forks dearer."""

import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ISOLATE = Path(__file__).resolve().parents[2] / "src" / "mcpsim" / "proc" / "sandbox" / "isolate.py"


def once(isolate, work: str, isolated: bool) -> float:
    read, write = os.pipe()
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
            if isolated:
                isolate.isolate({"work_dir": work, "keep": [], "cwd": "/"})
            os.write(write, b"x")
        finally:
            os._exit(0)
    os.close(write)
    os.read(read, 1)
    elapsed = (time.perf_counter() - started) * 1000
    os.close(read)
    os.waitpid(pid, 0)
    return elapsed


def inside(rounds: int, work: str) -> None:
    spec = importlib.util.spec_from_file_location("isolate", ISOLATE)
    assert spec is not None and spec.loader is not None
    isolate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(isolate)
    results: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(4):
        for isolated in (False, True):
            results[isolated] += [once(isolate, work, isolated) for _ in range(rounds)]
    for isolated, values in results.items():
        label = "drop + isolate" if isolated else "drop only"
        print(f"{label:<15} fork -> ready median {statistics.median(values):.2f} ms (min {min(values):.2f})")


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--inside":
        inside(int(sys.argv[2]), sys.argv[3])
        return
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    top = Path(tempfile.mkdtemp(prefix="mcpsim-isolate-cost-"))
    try:
        top.chmod(0o711)
        work = top / "work"
        work.mkdir()
        os.chown(work, 65534, 0)
        bwrap = ["bwrap", "--unshare-ipc", "--unshare-uts", "--unshare-net", "--unshare-cgroup-try"]
        bwrap += ["--die-with-parent", "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        bwrap += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/run"]
        bwrap += ["--ro-bind", "/proc", "/run/mcpsim-host-proc", "--bind", str(top), str(top)]
        command = [sys.executable, str(Path(__file__).resolve()), "--inside", str(rounds), str(work)]
        subprocess.run([*bwrap, "--", *command], check=True)
    finally:
        shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()
