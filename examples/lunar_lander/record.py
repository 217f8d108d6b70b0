"""Record one LunarLander episode as a trajectory file (mcpsim.trajectory/1), flown by Gymnasium's heuristic.

    python examples/lunar_lander/record.py --seed 4 --out landing.jsonl            # its own stdio server
    python examples/lunar_lander/record.py --url 'http://127.0.0.1:9000/mcp?seed=4' --out landing.jsonl

The pilot sees only what a model would: it reads the text summary of each result back into the state vector
Gymnasium's `heuristic` expects. Every frame (MCP image content) goes into the file once, as a `blob` line.
Then: `mcpsim render landing.jsonl --out landing.gif`.
"""

import argparse
import base64
import hashlib
import json
import math
import re
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TextIO

import anyio
from gymnasium.envs.box2d.lunar_lander import heuristic
from mcp import Client, StdioServerParameters

ACTIONS = ("NOTHING", "FIRE_LEFT", "FIRE_MAIN", "FIRE_RIGHT")
NUMBER = r"([+-]?\d+\.\d+)"
DISCRETE = SimpleNamespace(unwrapped=SimpleNamespace(continuous=False))  # what `heuristic` asks of the env


def state_from_text(text: str) -> list[float]:
    """x, y, vx, vy, angle (radians), angular velocity, left leg, right leg: back from the summary."""
    x, y = (float(v) for v in re.search(rf"x={NUMBER}, y={NUMBER}", text).groups())
    vx, vy = (float(v) for v in re.search(rf"vx={NUMBER}, vy={NUMBER}", text).groups())
    angle = math.radians(float(re.search(rf"Angle: {NUMBER} degrees", text).group(1)))
    spin = float(re.search(rf"angular velocity {NUMBER}", text).group(1))
    legs = re.search(r"Legs touching the ground: (\w+)", text).group(1)
    return [x, y, vx, vy, angle, spin, float(legs in ("left", "both")), float(legs in ("right", "both"))]


class TrajectoryWriter:
    """Writes header, blobs (each image once, before its first use), steps and the episode line."""

    def __init__(self, out: TextIO, **metadata: Any) -> None:
        self.out, self.seen = out, set()
        self._write({"type": "header", "format": "mcpsim.trajectory/1", **metadata})

    def _write(self, record: dict[str, Any]) -> None:
        self.out.write(json.dumps(record, separators=(",", ":")) + "\n")

    def observation(self, content: list[Any]) -> list[dict[str, Any]]:
        blocks = []
        for block in content:
            if block.type == "image":
                raw = base64.b64decode(block.data)
                digest = hashlib.sha256(raw).hexdigest()
                if digest not in self.seen:
                    self.seen.add(digest)
                    self._write({"type": "blob", "sha256": digest, "mimeType": block.mime_type, "data": block.data})
                blocks.append({"type": "image", "mimeType": block.mime_type, "blob": digest})
            else:
                blocks.append(block.model_dump(mode="json", by_alias=True, exclude_none=True))
        return blocks

    def step(self, env_id: str, seed: int, step: int, action: dict[str, Any], result: Any, latency_ms: float) -> None:
        meta = (result.meta or {}).get("mcpsim", {})
        self._write({"type": "step", "env_id": env_id, "seed": seed, "step": step, "action": action,
                     "observation": self.observation(result.content), "reward": meta.get("reward"),
                     "terminated": meta.get("terminated", False), "truncated": meta.get("truncated", False),
                     "latency_ms": round(latency_ms, 3)})  # fmt: skip

    def episode(self, env_id: str, seed: int, total_reward: float, steps: int, terminated: bool) -> None:
        self._write({"type": "episode", "env_id": env_id, "seed": seed, "total_reward": total_reward,
                     "steps": steps, "terminated": terminated})  # fmt: skip


async def record(target: Any, seed: int, out: Path, max_steps: int) -> None:
    env_id = f"lunar_lander-{seed}"
    with out.open("w") as handle:
        writer = TrajectoryWriter(handle, env="lunar_lander", policy="gymnasium heuristic (from the text)")
        async with Client(target, mode="legacy") as client:
            text = (await client.read_resource("game://initial_state")).contents[0].text
            total, steps, terminated = 0.0, 0, False
            while steps < max_steps:
                action = {"tool": "lander_action", "arguments": {"action": ACTIONS[heuristic(DISCRETE, state_from_text(text))]}}
                started = time.perf_counter()
                result = await client.call_tool(action["tool"], action["arguments"])
                latency = (time.perf_counter() - started) * 1000
                steps += 1
                writer.step(env_id, seed, steps, action, result, latency)
                meta = result.meta["mcpsim"]
                total += meta["reward"]
                text = result.content[0].text
                if meta["terminated"] or meta["truncated"]:
                    terminated = meta["terminated"]
                    break
        writer.episode(env_id, seed, total, steps, terminated)
    end = {100.0: "landed", -100.0: "crashed"}.get(meta["reward"], "ended") if terminated else "not ended"
    print(f"{out}: {steps} steps, total reward {total:+.1f}, {end}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--url", help="an MCP URL (e.g. mcpsim serve --env lunar_lander); default: own stdio server")
    parser.add_argument("--out", type=Path, default=Path("landing.jsonl"))
    parser.add_argument("--max-steps", type=int, default=1000)
    args = parser.parse_args()
    target = args.url or StdioServerParameters(
        command=sys.executable, args=["-m", "mcpsim.envs.lunar_lander", "--seed", str(args.seed)]
    )
    anyio.run(record, target, args.seed, args.out, args.max_steps)


if __name__ == "__main__":
    main()
