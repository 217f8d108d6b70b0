"""The client side of `mcpsim bench --rollout`: one `mcpsim.rollout` in a process of its own.

It runs in its own process so its CPU is its own (the bench process only starts servers and reads `/proc`), and
it times the rollout alone: imports, the event loop's start and the server's start are outside the window.
Usage: `python -m mcpsim.bench.rollout_client URL EPISODES STEPS CONCURRENCY`; prints one JSON line:
`{"elapsed_s", "episodes", "steps", "errors", "cpu_s", "first_error"}`.
"""

import json
import resource
import sys
import time
from typing import Any

import anyio

from mcpsim.client import RandomPolicy, make, rollout


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process
    return usage.ru_utime + usage.ru_stime


async def run(url: str, episodes: int, steps: int, concurrency: int) -> dict[str, Any]:
    envs = make(url, seeds=list(range(episodes)))
    policy = RandomPolicy(0)
    cpu, started = _cpu_s(), time.perf_counter()
    try:
        trajectories = await rollout(envs, policy, steps=steps, max_concurrency=concurrency, progress=False)
    finally:
        await policy.aclose()
    elapsed, cpu = time.perf_counter() - started, _cpu_s() - cpu
    failed = [t for t in trajectories if t.error]
    return {
        "elapsed_s": round(elapsed, 4),
        "episodes": len(trajectories),
        "steps": sum(len(t.steps) for t in trajectories),
        "errors": len(failed),
        "cpu_s": round(cpu, 4),
        "first_error": failed[0].error if failed else None,
    }


def main(argv: list[str]) -> int:
    url, episodes, steps, concurrency = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    print(json.dumps(anyio.run(run, url, episodes, steps, concurrency)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
