"""CPU time a FrozenLake instance's server process spends per `lake_move`, beside the wall time of the call:
does the sandbox (strict's seccomp filter, say) make the server itself work more, or only wait more?

    PYTHONPATH=src python tests/sandbox/call_cpu.py PORT --fork-server --sandbox strict   # any serve flags

Three sessions of 300 calls each; the instance's CPU is read from /proc/<pid>/stat (with a spawned sandboxed
instance the pid is bwrap's, so use --fork-server, whose pids are the servers' own).
"""

import os
import subprocess
import sys
import time

import anyio
import httpx
from mcp import Client

CALLS = 300


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()  # noqa: PTH123, SIM115
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(url: str) -> list[tuple[float, float]]:
    out = []
    for seed in range(3):
        async with Client(f"{url}/mcp?seed={seed}", mode="legacy") as client:
            await client.call_tool("lake_move", {"action": "LEFT"})
            (pid,) = [i["pid"] for i in httpx.get(f"{url}/api/instances").json() if i["seed"] == seed]
            before, started = cpu_seconds(pid), time.perf_counter()
            for _ in range(CALLS):
                await client.call_tool("lake_move", {"action": "LEFT"})
            wall = time.perf_counter() - started
            out.append(((cpu_seconds(pid) - before) / CALLS * 1000, wall / CALLS * 1000))
    return out


def main() -> None:
    port, flags = int(sys.argv[1]), sys.argv[2:]
    argv = [sys.executable, "-m", "mcpsim", "serve", "--env", "frozen_lake", "--port", str(port), *flags]
    serve = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                httpx.get(f"{url}/health")
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        results = anyio.run(measure, url)
    finally:
        serve.terminate()
        serve.wait()
    cpu = " ".join(f"{c:.2f}" for c, _ in results)
    wall = " ".join(f"{w:.2f}" for _, w in results)
    print(
        f"{' '.join(flags):34} server CPU per call {cpu} ms | wall per call {wall} ms | {os.getloadavg()[0]:.1f} load"
    )


if __name__ == "__main__":
    main()
