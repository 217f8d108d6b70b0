"""Start cost the sandbox adds to a process, alternating plain and sandboxed runs so both see the same load.

    PYTHONPATH=src python tests/sandbox/start_overhead.py     # as root, with bwrap installed (docs/isolation.md)

"bwrap alone" is the sandboxed command line without its final `setpriv` exec (the drop to nobody).
"""

import statistics
import subprocess
import sys
import time

from mcpsim.proc.sandbox import Sandbox, SandboxConfig

RUNS = 60


def timed(argv: list[str], fds: list[int]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, pass_fds=fds, check=True)
    return (time.perf_counter() - started) * 1000


def main() -> None:
    for level in ("standard", "strict"):
        box = Sandbox(SandboxConfig(level=level))
        box.start()
        for argv in (["/bin/true"], [sys.executable, "-S", "-c", "pass"]):
            plain, boxed, bwrap_only = [], [], []
            for run in range(RUNS):
                plain.append(timed(argv, []))
                start = box.open_instance(f"a{run}", argv, None, {}, sys.executable)
                boxed.append(timed(start.argv, start.pass_fds))
                start.close()
                start = box.open_instance(f"b{run}", argv, None, {}, sys.executable)
                cut = start.argv.index("setpriv") if "setpriv" in start.argv else len(start.argv) - len(argv)
                bwrap_only.append(timed(start.argv[:cut] + argv, start.pass_fds))
                start.close()
            p, b, w = (statistics.median(samples) for samples in (plain, boxed, bwrap_only))
            print(
                f"{level:8} {argv[0].rsplit('/', 1)[-1]:7} plain {p:6.1f} ms | sandboxed {b:6.1f} ms (+{b - p:5.1f})"
                f" | bwrap alone {w:6.1f} ms (+{w - p:5.1f})  [medians of {RUNS}, alternating]"
            )
        box.close()


if __name__ == "__main__":
    main()
