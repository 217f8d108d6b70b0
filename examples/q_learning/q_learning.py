"""Tabular Q-learning on FrozenLake 4x4 through a managed mcpsim server, with `mcpsim.gym.make_vec`.

    mcpsim serve --env frozen_lake --fork-server --port 9000 &
    python examples/q_learning/q_learning.py --url http://127.0.0.1:9000/mcp --envs 8 --episodes 400

Every episode is a fresh, isolated instance of the FrozenLake MCP server (same map: one seed), stepped 8 at a
time over one event loop. The state is the player's cell, read from the observation text; the update skips the
autoreset step of an env whose episode just ended (Gymnasium 1.x next-step autoreset). At the end the greedy
policy plays `--eval` episodes; the success rate and the training speed (episodes/s) are printed.
"""

import argparse
import re
import time

import numpy as np

import mcpsim.gym

POSITION = re.compile(r"Position: row (\d+), column (\d+)")


def state_of(observation: str, size: int = 4) -> int:
    match = POSITION.search(observation)
    if match is None:
        raise ValueError(f"no position in the observation: {observation[:200]!r}")
    return int(match.group(1)) * size + int(match.group(2))


def train(
    url: str, seed: int, envs: int, episodes: int, alpha: float, gamma: float, rng: np.random.Generator, announce: bool
) -> tuple[np.ndarray, float]:
    q = np.zeros((16, 4))
    vec = mcpsim.gym.make_vec(url, seeds=[seed], num_envs=envs, announce=announce)
    try:
        observations, _ = vec.reset()
        states = np.array([state_of(o) for o in observations])
        resetting = np.zeros(envs, dtype=bool)
        finished = 0
        started = time.perf_counter()
        while finished < episodes:
            epsilon = max(0.05, 1.0 - finished / (0.6 * episodes))
            greedy = np.array([rng.choice(np.flatnonzero(q[s] == q[s].max())) for s in states])
            explore = rng.random(envs) < epsilon
            actions = np.where(explore, rng.integers(0, 4, envs), greedy)
            observations, rewards, terminated, truncated, _ = vec.step(actions)
            next_states = np.array([state_of(o) for o in observations])
            for i in range(envs):
                if resetting[i]:
                    continue  # this step started env i's next episode: no transition to learn
                target = rewards[i] + (0.0 if terminated[i] else gamma * q[next_states[i]].max())
                q[states[i], actions[i]] += alpha * (target - q[states[i], actions[i]])
            done = terminated | truncated
            finished += int(done.sum())
            resetting = done
            states = next_states
        elapsed = time.perf_counter() - started
    finally:
        vec.close()
    return q, finished / elapsed


def evaluate(url: str, seed: int, q: np.ndarray, episodes: int) -> float:
    env = mcpsim.gym.make(url, seed=seed)
    wins = 0
    try:
        for _ in range(episodes):
            observation, _ = env.reset()
            for _ in range(100):
                observation, reward, terminated, truncated, _ = env.step(int(q[state_of(observation)].argmax()))
                if terminated or truncated:
                    wins += int(reward > 0)
                    break
    finally:
        env.close()
    return wins / episodes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:9000/mcp", help="a managed FrozenLake server's /mcp")
    parser.add_argument("--seed", type=int, default=3, help="the map (one seed: the same lake every episode)")
    parser.add_argument("--envs", type=int, default=8, help="episodes at once (sub-envs of the VectorEnv)")
    parser.add_argument("--episodes", type=int, default=400, help="training episodes")
    parser.add_argument("--eval", type=int, default=20, help="greedy evaluation episodes")
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--gamma", type=float, default=0.95)
    parser.add_argument("--announce", action="store_true", help="have the server start the next instances ahead")
    args = parser.parse_args()
    q, rate = train(
        args.url, args.seed, args.envs, args.episodes, args.alpha, args.gamma, np.random.default_rng(0), args.announce
    )
    success = evaluate(args.url, args.seed, q, args.eval)
    print(f"trained on {args.episodes}+ episodes at {rate:.1f} episodes/s ({args.envs} envs)")
    print(f"greedy success rate: {success:.0%} over {args.eval} episodes")


if __name__ == "__main__":
    main()
