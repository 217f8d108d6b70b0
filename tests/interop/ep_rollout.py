"""eval-protocol's own rollout client (`ep.make` + `ep.rollout`) against a URL, as a user of it would run it.

Runs in the eval-protocol venv (`make interop-clients`), never in mcpsim's: eval-protocol pins its
own `mcp` range. The policy is scripted (no model): it reads the lake from the initial observation and walks a
shortest safe path, recording what eval-protocol hands back per step (reward and termination, which come from
the server's `/control/*` routes). Prints one JSON line per phase; the phases run in order,
in one process since importing eval-protocol (litellm) takes seconds:

- `--url U --seeds a,b`: complete rollouts; prints `{"rows": [{"seed", "grid", "rewards", "terminated", "status"}]}`.
- `--abort-url U --abort-seeds ...`: the policy stops answering after 2 steps (`{"stopped": "abort"}`), and once a
  line arrives on stdin the rollout is cancelled, as a caller that gives up would; eval-protocol then resets and
  closes its sessions (`{"aborted": true}`).
- `--hang-url U --hang-seeds ...`: the policy stops after 1 step (`{"stopped": "hang"}`) and the script waits to
  be killed: a client that vanishes without closing anything.

`--args-on-stdin` alone: the arguments come as a JSON list on the first line of stdin, once the caller knows them.
"""

import argparse
import asyncio
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network lookup at import

import eval_protocol as ep
from eval_protocol.types import MCPToolCall

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "servers"))
from ep_frozen_lake import shortest_path


class WalkingPolicy:
    """What `ExecutionManager` calls: `await policy(tools, env_index, history)` and `add_tool_response`."""

    model_id = "scripted-walker"

    def __init__(self, n: int, stop_after: int | None) -> None:
        self.plans: dict[int, list[str]] = {}
        self.grids: dict[int, str] = {}
        self.rewards: dict[int, list[float]] = {i: [] for i in range(n)}
        self.terminated: dict[int, list[bool]] = {i: [] for i in range(n)}
        self.stop_after = stop_after
        self.stopped = asyncio.Event()
        self.calls = 0

    async def __call__(self, tools: Any, env_index: int, history: list[dict[str, Any]]) -> tuple:
        if env_index not in self.plans:
            observation = json.loads(history[1]["content"])
            self.grids[env_index] = observation["grid"]
            self.plans[env_index] = shortest_path(observation["grid"].split("\n")) or []
        if self.stop_after is not None and len(self.rewards[env_index]) >= self.stop_after:
            self.stopped.set()
            await asyncio.Event().wait()  # never answers
        plan = self.plans[env_index]
        if not plan:
            return [MCPToolCall("_no_tool_call", {})], None, "stop"
        self.calls += 1
        call = MCPToolCall("lake_move", {"action": plan.pop(0)}, tool_call_id=f"call_{self.calls}")
        return [call], None, "tool_calls"

    def add_tool_response(self, env_index, tool_call, response, history, reward=0.0, terminated=False, info=None):
        self.rewards[env_index].append(reward)
        self.terminated[env_index].append(terminated)
        history.append({"role": "tool", "tool_call_id": tool_call.tool_call_id, "content": response})

    def log_conversation_state_for_playback(self, *args: Any) -> None:
        pass


def observation_as_json(template: str, observation: Any, context: Any) -> str:
    return json.dumps(observation)


def rows_for(seeds: list[int]) -> list[dict[str, Any]]:
    return [
        {
            "id": f"row_{i}",
            "system_prompt": "Walk to the goal.",
            "user_prompt_template": "{observation}",
            "environment_context": {"seed": seed},
        }
        for i, seed in enumerate(seeds)
    ]


def start(url: str, seeds: list[int], stop_after: int | None) -> tuple[WalkingPolicy, Any, "asyncio.Future"]:
    envs = ep.make(url, dataset=rows_for(seeds), model_id="scripted-walker", user_prompt_formatter=observation_as_json)
    policy = WalkingPolicy(len(seeds), stop_after)
    return policy, envs, asyncio.ensure_future(ep.rollout(envs, policy, steps=30))


def say(message: dict[str, Any]) -> None:
    print(json.dumps(message), flush=True)


async def complete(url: str, seeds: list[int]) -> None:
    policy, _, rollout = start(url, seeds, None)
    results = await rollout
    rows = []
    for i, (seed, row) in enumerate(zip(seeds, results, strict=True)):
        status = row.rollout_status.model_dump(mode="json") if row.rollout_status else None
        grid, rewards, ended = policy.grids.get(i), policy.rewards[i], policy.terminated[i]
        rows.append({"seed": seed, "grid": grid, "rewards": rewards, "terminated": ended, "status": status})
    say({"rows": rows})


async def abort(url: str, seeds: list[int]) -> None:
    policy, _, rollout = start(url, seeds, 2)
    await asyncio.wait_for(policy.stopped.wait(), 120)
    say({"stopped": "abort"})
    await asyncio.to_thread(sys.stdin.readline)  # the caller has looked at the live instances
    rollout.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await rollout
    await asyncio.sleep(0.5)  # eval-protocol's cleanup (reset, close) runs as the rollout tasks unwind
    say({"aborted": True})


async def hang(url: str, seeds: list[int]) -> None:
    policy, _, _rollout = start(url, seeds, 1)
    await asyncio.wait_for(policy.stopped.wait(), 120)
    say({"stopped": "hang"})
    await asyncio.Event().wait()  # until killed


async def main() -> None:
    seeds = lambda text: [int(s) for s in text.split(",")]  # noqa: E731
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", help="complete rollouts here, then print their rows")
    parser.add_argument("--seeds", type=seeds, default=[])
    parser.add_argument("--abort-url", help="then start rollouts here and cancel them")
    parser.add_argument("--abort-seeds", type=seeds, default=[])
    parser.add_argument("--hang-url", help="then start rollouts here and wait to be killed")
    parser.add_argument("--hang-seeds", type=seeds, default=[])
    argv = sys.argv[1:]
    if argv == ["--args-on-stdin"]:  # the caller starts its servers while eval-protocol imports
        argv = json.loads(await asyncio.to_thread(sys.stdin.readline))
    args = parser.parse_args(argv)
    if args.url:
        await complete(args.url, args.seeds)
    if args.abort_url:
        await abort(args.abort_url, args.abort_seeds)
    if args.hang_url:
        await hang(args.hang_url, args.hang_seeds)


if __name__ == "__main__":
    asyncio.run(main())
