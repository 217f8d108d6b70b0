"""`mcpsim.gym`: the Gymnasium views of mcpsim episodes against real managed servers (FrozenLake, the toolbox)."""

import threading
import time

import numpy as np
import pytest
from gymnasium.spaces import Discrete, MultiDiscrete, Text
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode, VectorEnv

import mcpsim.gym
from helpers.rollouts import solve
from helpers.serve import port_range, server_script, start_serve, survivors
from mcpsim.errors import ConfigError, InvalidAction

ACTIONS = ("LEFT", "DOWN", "RIGHT", "UP")


@pytest.fixture(scope="module")
def toolbox(tmp_path_factory):
    template = f"python {server_script('toolbox.py')}"
    serve = start_serve(tmp_path_factory.mktemp("toolbox"), "--server", template, "--port-range", port_range(1200, 50))
    yield serve
    serve.stop()
    assert not survivors(serve.seen_descendants)


def live_instances(serve, want=0, wait=10.0):
    deadline = time.monotonic() + wait
    while True:
        live = serve.get("/health").json()["instances"]["live"]
        if live == want or time.monotonic() > deadline:
            return live
        time.sleep(0.1)


def test_one_env_passes_gymnasiums_env_checker(frozen_lake_server):
    env = mcpsim.gym.make(frozen_lake_server.mcp, seed=3)
    try:
        assert env.action_space == Discrete(4) and isinstance(env.observation_space, Text)
        check_env(env, skip_render_check=True)
        first, info = env.reset(seed=11)
        again, _ = env.reset(seed=11)
        assert first == again and info["seed"] == 11 and "@" in first
        other, _ = env.reset(seed=12)
        assert other != first  # another seed, another map
    finally:
        env.close()


def test_the_discrete_action_walks_frozen_lake_to_the_goal(frozen_lake_server):
    env = mcpsim.gym.make(frozen_lake_server.mcp, seed=5)
    try:
        observation, _ = env.reset()
        for _ in range(20):
            observation, reward, terminated, truncated, info = env.step(ACTIONS.index(solve(observation)))
            if terminated:
                break
        assert terminated and reward == 1.0 and not truncated and info["seed"] == 5
        with pytest.raises(InvalidAction, match=r"action must be in 0..3, got 4"):
            env.step(4)
    finally:
        env.close()


def test_the_vector_env_steps_every_env_and_autoresets_on_the_next_step(frozen_lake_server):
    vec = mcpsim.gym.make_vec(frozen_lake_server.mcp, seeds=[5, 6, 7], num_envs=2)
    try:
        assert isinstance(vec, VectorEnv) and vec.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
        assert vec.action_space == MultiDiscrete([4, 4])
        observations, infos = vec.reset()
        assert list(infos["seed"]) == [5, 6]
        solved = [False, False]
        for _ in range(20):
            actions = [ACTIONS.index(solve(o)) if not done else 0 for o, done in zip(observations, solved, strict=True)]
            observations, rewards, terminated, truncated, infos = vec.step(np.array(actions))
            if terminated[0] and not solved[0]:
                assert rewards[0] == 1.0
                solved[0] = True
                # next step: env 0's action is ignored and its next episode starts, on the next seed (7)
                observations, rewards, terminated, truncated, infos = vec.step(np.array([0, 0]))
                assert rewards[0] == 0.0 and not terminated[0] and not truncated[0]
                assert infos["seed"][0] == 7 and "Steps taken: 0." in observations[0]
                break
        assert solved[0]
        observations, infos = vec.reset(seed=40)
        assert list(infos["seed"]) == [40, 41]
    finally:
        vec.close()
    assert live_instances(frozen_lake_server) == 0


def test_close_ends_every_session_and_the_loop_thread(frozen_lake_server):
    before = threading.active_count()
    vec = mcpsim.gym.make_vec(frozen_lake_server.mcp, seeds=[1], num_envs=3)
    vec.reset()
    vec.step(np.array([1, 1, 1]))
    assert threading.active_count() > before
    vec.close()
    vec.close()  # idempotent
    assert threading.active_count() == before
    assert live_instances(frozen_lake_server) == 0
    with pytest.raises(ConfigError, match="closed"):
        vec.step(np.array([1, 1, 1]))


def test_vector_steps_call_the_tools_concurrently(toolbox):
    vec = mcpsim.gym.make_vec(toolbox.mcp, seeds=[1, 2, 3, 4], tool="slow")
    try:
        assert isinstance(vec.single_action_space, Text)  # `seconds` is a number: arguments as JSON
        vec.reset()
        started = time.perf_counter()
        observations, *_ = vec.step(['{"seconds": 1.5}'] * 4)
        elapsed = time.perf_counter() - started
    finally:
        vec.close()
    assert all(observations)
    assert elapsed < 4 * 1.5 * 0.75, f"4 calls of 1.5 s took {elapsed:.1f} s: not concurrent"


def test_a_free_form_string_tool_gets_a_text_action(toolbox):
    env = mcpsim.gym.make(toolbox.mcp, seed=1, tool="echo")
    try:
        assert isinstance(env.action_space, Text) and env.codec.argument == "text"
        env.reset()
        observation, *_ = env.step("hello gym")
        assert "hello gym" in observation
        with pytest.raises(ConfigError, match="no tool 'nope'"):
            mcpsim.gym.make(toolbox.mcp, seed=1, tool="nope")
    finally:
        env.close()


def test_bad_arguments_are_refused():
    with pytest.raises(ConfigError, match="seeds is empty"):
        mcpsim.gym.make_vec("http://127.0.0.1:9/mcp", seeds=[])
    with pytest.raises(ConfigError, match="num_envs must be between 1 and 1024"):
        mcpsim.gym.make_vec("http://127.0.0.1:9/mcp", seeds=[1], num_envs=0)
    with pytest.raises(ConfigError, match="an environment URL must be"):
        mcpsim.gym.make("ftp://x", seed=1)


def test_announcing_starts_the_next_episodes_instances_ahead(frozen_lake_server):
    vec = mcpsim.gym.make_vec(frozen_lake_server.mcp, seeds=[21, 22, 23, 24], num_envs=2, announce=True)
    try:
        vec.reset()
        # seeds 23 and 24 (the next two episodes) were announced: their instances start before any session
        assert live_instances(frozen_lake_server, want=4) == 4
        _, infos = vec.reset()
        assert list(infos["seed"]) == [23, 24]
    finally:
        vec.close()
