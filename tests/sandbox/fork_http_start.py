"""New session to first result with an HTTP backend, fork server with and without the sandbox.

`PYTHONPATH=src python tests/sandbox/fork_http_start.py PORT [--sessions N] [--modes fork,fork-strict,...]`
(PORT: a free port for `mcpsim serve`; its instances get PORT+1..PORT+99). Each mode starts one `mcpsim serve
--env frozen_lake --backend-transport http --fork-server [--sandbox LEVEL]`, opens one session to warm it up,
then N sessions one after another, each timed from its first request to its first `lake_move` result (the
SDK's client), and prints p50/p95 and `/health`'s fork_server state. Modes alternate round by round, so they
see the same load."""

import argparse
import statistics
import subprocess
import sys
import time

import anyio
import httpx
from mcp import Client

MODES = {
    "fork": [],
    "fork-strict": ["--sandbox", "strict"],
    "fork-standard": ["--sandbox", "standard"],
    "fork-strict-nomem": ["--sandbox", "strict", "--limit-memory", "off"],
    "fork-strict-nopids": ["--sandbox", "strict", "--limit-pids", "off"],
}


async def first_result_ms(url: str, seed: int) -> float:
    started = time.perf_counter()
    async with Client(f"{url}/mcp?seed={seed}", mode="legacy") as client:
        await client.call_tool("lake_move", {"action": "LEFT"})
    return (time.perf_counter() - started) * 1000


def start(port: int, flags: list[str]) -> subprocess.Popen:
    argv = [sys.executable, "-m", "mcpsim", "serve", "--port", str(port), "--port-range", f"{port + 1}-{port + 99}"]
    argv += ["--env", "frozen_lake", "--backend-transport", "http", "--fork-server", *flags]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).json()["environment"]["state"] == "ready":
                return process
        except (httpx.HTTPError, KeyError, ValueError):
            pass
        time.sleep(0.1)
    process.kill()
    raise SystemExit("mcpsim serve did not become ready")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--modes", default="fork,fork-strict")
    args = parser.parse_args()
    modes = args.modes.split(",")
    servers = {mode: start(args.port + 100 * i, MODES[mode]) for i, mode in enumerate(modes)}
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    try:
        for i in range(len(modes)):
            await first_result_ms(f"http://127.0.0.1:{args.port + 100 * i}", 0)  # warm up
        for seed in range(1, args.sessions + 1):
            for i, mode in enumerate(modes):
                times[mode].append(await first_result_ms(f"http://127.0.0.1:{args.port + 100 * i}", seed))
        for i, mode in enumerate(modes):
            state = httpx.get(f"http://127.0.0.1:{args.port + 100 * i}/health").json()["fork_server"]
            values = sorted(times[mode])
            p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
            print(
                f"{mode:<14} first result p50 {statistics.median(values):7.1f} ms  p95 {p95:7.1f} ms  "
                f"fork_server {state['state']} (spawned instead {state['spawned_instead']})"
            )
    finally:
        for process in servers.values():
            process.terminate()
        for process in servers.values():
            process.wait(20)


if __name__ == "__main__":
    anyio.run(main)
