"""Start cost the sandbox adds to a process, alternating plain and sandboxed runs so both see the same load.

    PYTHONPATH=src python tests/sandbox/start_overhead.py          # as root, with bwrap installed
    PYTHONPATH=src python tests/sandbox/start_overhead.py --steps  # which step of the command line costs what

"bwrap alone" is the sandboxed command line without its final `setpriv` exec (the drop to nobody). `--steps`
runs the whole strict command line of `/bin/true` and, interleaved with it, the same line without one step at a
time; a step's cost is what leaving it out saves, in wall time and in CPU time (user + system of the process
tree, which load disturbs less than wall time; kernel work done later, like a network namespace's teardown,
is in neither). Medians; `uptime`'s load average is printed with the figures, as they depend on it.
"""

import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from mcpsim.proc.sandbox import Sandbox, SandboxConfig

RUNS = 60


def timed(argv: list[str], fds: list[int]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, pass_fds=fds, check=True)
    return (time.perf_counter() - started) * 1000


def timed_cpu(argv: list[str], fds: list[int]) -> tuple[float, float]:
    """Wall and CPU milliseconds of one run (CPU: the children's user + system time it added)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = timed(argv, fds)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    return wall, cpu


def without(*options: str, arguments: int = 0) -> Callable[[list[str]], list[str]]:
    """The bwrap part of a command line without `options` (each followed by `arguments` values)."""

    def cut(argv: list[str]) -> list[str]:
        end, out, index = argv.index("--"), [], 0
        while index < len(argv):
            if index < end and argv[index] in options:
                index += 1 + arguments
                continue
            out.append(argv[index])
            index += 1
        return out

    return cut


def without_hidden(argv: list[str]) -> list[str]:
    """No tmpfs over /tmp, /root, /home, /run, and so nothing bound back into them."""
    out = without("--tmpfs", "--dir", "--size", "--perms", arguments=1)(argv)
    keep, index = [], 0
    while index < len(out):
        if out[index] == "--ro-bind" and out[index + 1] != "/":
            index += 3
            continue
        keep.append(out[index])
        index += 1
    return keep


def without_setpriv(argv: list[str]) -> list[str]:
    start = argv.index("setpriv")
    return argv[:start] + argv[argv.index("--", start) + 1 :]


STEPS: dict[str, Callable[[list[str]], list[str]]] = {
    "--unshare-net": without("--unshare-net"),
    "--unshare-pid (its init)": without("--unshare-pid"),
    "--proc /proc": without("--proc", arguments=1),
    "--dev /dev": without("--dev", arguments=1),
    "tmpfs x4 + binds back": without_hidden,
    "--seccomp": without("--seccomp", arguments=1),
    "setpriv exec": without_setpriv,
    "ipc, uts, cgroup ns": lambda argv: without("--hostname", arguments=1)(
        without("--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try")(argv)
    ),
    "--cap-drop/--cap-add": without("--cap-drop", "--cap-add", arguments=1),
}


def load() -> str:
    return "load average " + ", ".join(f"{value:.1f}" for value in os.getloadavg())


def steps() -> None:
    box = Sandbox(SandboxConfig(level="strict"))
    box.start()
    names = ["whole", *STEPS]
    wall: dict[str, list[float]] = {name: [] for name in ["plain", *names]}
    cpu: dict[str, list[float]] = {name: [] for name in wall}
    print(f"before: {load()}")
    for run in range(RUNS):
        for name in ["plain", *names]:
            start = box.open_instance(
                f"s{run}-{len(wall[name])}-{names.index(name) if name in names else 99}",
                ["/bin/true"],
                None,
                {},
                sys.executable,
            )
            argv = ["/bin/true"] if name == "plain" else STEPS.get(name, lambda a: a)(start.argv)
            w, c = timed_cpu(argv, start.pass_fds)
            wall[name].append(w)
            cpu[name].append(c)
            start.close()
    box.close()
    median = {name: (statistics.median(wall[name]), statistics.median(cpu[name])) for name in wall}
    whole_wall, whole_cpu = median["whole"]
    print(f"after: {load()}; strict sandbox of /bin/true, medians of {RUNS}, interleaved")
    print(f"{'':28} {'wall ms':>8} {'cpu ms':>8} | {'saves wall':>10} {'saves cpu':>9}")
    for name, (w, c) in median.items():
        print(f"{name:28} {w:8.2f} {c:8.2f} | {whole_wall - w:10.2f} {whole_cpu - c:9.2f}")


def main() -> None:
    print(f"before: {load()}")
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
    print(f"after: {load()}")


if __name__ == "__main__":
    steps() if "--steps" in sys.argv else main()
