"""Best-first tree search over FrozenLake states with `env_session.branch(k)`.

Every node of the tree is a live episode on its own instance. Expanding a node branches it into four copies (a
live fork under `--fork-server`, else a checked replay) and moves each copy one way; the children go on a
priority queue ordered as A* orders them (steps so far + Manhattan distance to the goal, ties to the deeper
node, so a clear run toward the goal is followed rather than every equally good detour), and holes, walls and
cells reached before are pruned. No episode is ever played again from the start: the search continues from
any state it has seen. Pruned and expanded nodes end their instances at once (`close_branch`), so the live
instances are the open states, not the whole tree.

    mcpsim serve --env frozen_lake --fork-server --port 9000
    python examples/branching/tree_search.py --url http://127.0.0.1:9000/mcp --seed 3 --size 8

Whatever is still open ends when the root session closes.
"""

import argparse
import heapq
import itertools
import re

import anyio

import mcpsim
from mcpsim.trajectory import Action

ACTIONS = ["LEFT", "DOWN", "RIGHT", "UP"]


def position(observation: list) -> tuple[int, int] | None:
    text = " ".join(block.get("text", "") for block in observation if isinstance(block, dict))
    found = re.search(r"row (\d+), column (\d+)", text)
    return (int(found[1]), int(found[2])) if found else None


async def search(url: str, seed: int, size: int, budget: int) -> list[str] | None:
    (env,) = mcpsim.make(url, dataset=[{"id": "root", "seed": seed, "config": {"map_size": size}}])
    goal = (size - 1, size - 1)
    async with env.connect() as root:
        order = itertools.count()
        queue = [(2 * (size - 1), 0, next(order), root, [], (0, 0))]
        seen = {(0, 0)}
        for expansion in range(budget):
            if not queue:
                return None
            _, _, _, node, path, where = heapq.heappop(queue)
            children = await node.branch(len(ACTIONS))
            if node is not root:
                await node.close_branch()  # its children hold every continuation of its state
            for action, child in zip(ACTIONS, children, strict=True):
                step = await child.step(Action("lake_move", {"action": action}), len(path) + 1)
                cell = position(step.observation)
                if step.reward > 0:
                    print(f"goal after {expansion + 1} expansions: {' '.join([*path, action])}")
                    return [*path, action]
                if step.terminated or step.is_error or cell is None or cell in seen:
                    await child.close_branch()  # a hole, the end, or a state reached before (a wall bump)
                    continue
                seen.add(cell)
                steps = len(path) + 1
                distance = abs(goal[0] - cell[0]) + abs(goal[1] - cell[1])
                heapq.heappush(queue, (steps + distance, -steps, next(order), child, [*path, action], cell))
            print(f"expanded {where} ({len(path)} steps): {len(queue)} states open")
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:9000/mcp")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--size", type=int, default=8)
    parser.add_argument("--budget", type=int, default=40, help="nodes expanded at most")
    args = parser.parse_args()
    if anyio.run(search, args.url, args.seed, args.size, args.budget) is None:
        print("no path found within the budget")


if __name__ == "__main__":
    main()
