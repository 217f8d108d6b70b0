"""`mcpsim.make` + `mcpsim.rollout` against the managed server and a single production server."""

import json
import time

import anyio
import pytest

import mcpsim
from helpers.rollouts import solve, standalone
from helpers.serve import ports, server_script
from mcpsim.client.content import text_of
from mcpsim.envs.frozen_lake import SPEC, render
from mcpsim.envs.gym_server import Episode
from mcpsim.errors import DatasetError


def local_map(seed: int, config: dict | None = None) -> str:
    """The initial observation FrozenLake renders for `seed`, computed in-process."""
    return render(Episode(SPEC, seed, config or {}))[0].text


def solver(episode, observation):
    move = solve(text_of(observation))
    return ("lake_move", {"action": move}) if move else None


async def test_random_rollout_gets_seeded_episodes_with_rewards_from_meta(frozen_lake_server):
    envs = mcpsim.make(frozen_lake_server.mcp, seeds=range(5))
    assert [env.env_id for env in envs] == [f"seed{s}" for s in range(5)]
    trajectories = await mcpsim.rollout(envs, mcpsim.RandomPolicy(1), steps=30)
    for seed, trajectory in enumerate(trajectories):
        assert trajectory.error is None
        assert trajectory.seed == seed
        assert text_of(trajectory.initial_observation) == local_map(seed)
        assert 1 <= len(trajectory.steps) <= 30
        assert [s.step for s in trajectory.steps] == list(range(1, len(trajectory.steps) + 1))
        assert [s.meta["mcpsim"]["step"] for s in trajectory.steps] == [s.step for s in trajectory.steps]
        assert trajectory.total_reward == sum(s.reward for s in trajectory.steps)
        assert trajectory.outcome in ("terminated", "max_steps")
        assert trajectory.terminated == (trajectory.outcome == "terminated")
        assert all(s.action.tool == "lake_move" for s in trajectory.steps)
        assert all(s.latency_ms > 0 for s in trajectory.steps)
    again = await mcpsim.rollout(mcpsim.make(frozen_lake_server.mcp, seeds=range(5)), mcpsim.RandomPolicy(1), steps=30)
    assert [t.actions for t in again] == [t.actions for t in trajectories]  # per-episode RNG: reproducible


async def test_solver_reaches_the_goal_and_config_reaches_the_server(frozen_lake_server):
    rows = [{"id": "small", "seed": 3}, {"id": "big", "seed": 3, "config": {"map_size": 8}}]
    small, big = await mcpsim.rollout(
        mcpsim.make(frozen_lake_server.mcp, dataset=rows), mcpsim.ScriptedPolicy(solver), steps=40
    )
    assert small.success and big.success
    assert text_of(big.initial_observation) == local_map(3, {"map_size": 8})
    assert "FrozenLake 8x8" in text_of(big.initial_observation)
    assert small.total_reward == big.total_reward == 1.0


async def test_repeated_rows_are_independent_episodes(frozen_lake_server):
    envs = mcpsim.make(frozen_lake_server.mcp, dataset=[{"id": "p", "seed": 9}], samples=3)
    assert [env.env_id for env in envs] == ["p#0", "p#1", "p#2"]
    script = [("lake_move", {"action": "RIGHT"}), ("lake_move", {"action": "LEFT"})]
    trajectories = await mcpsim.rollout(envs, mcpsim.ScriptedPolicy(script), steps=5)
    for trajectory in trajectories:
        assert trajectory.outcome == "stopped"  # the script ran out
        assert [s.meta["mcpsim"]["step"] for s in trajectory.steps] == [1, 2]  # each its own instance
        assert trajectory.steps[1].observation == trajectories[0].steps[1].observation


async def test_a_slow_environment_never_holds_the_others(frozen_lake_server):
    async def policy(episode, observation):
        if episode.env_id == "slow" and episode.step == 0:
            await anyio.sleep(5)
        return ("lake_move", {"action": "LEFT"})  # LEFT from the start never ends the episode

    rows = [{"id": "slow", "seed": 1}, {"id": "fast", "seed": 1}]
    slow, fast = await mcpsim.rollout(
        mcpsim.make(frozen_lake_server.mcp, dataset=rows), mcpsim.ScriptedPolicy(policy), steps=6
    )
    assert len(fast.steps) == len(slow.steps) == 6
    assert slow.steps[0].policy_ms >= 4900
    assert fast.finished_at < slow.started_at + slow.connect_ms / 1000 + 5  # fast is done before slow's 1st step


async def test_max_concurrency_bounds_open_sessions(frozen_lake_server):
    active = {"now": 0, "peak": 0}

    class Counting(mcpsim.Policy):
        async def reset(self, episode):
            active["now"] += 1
            active["peak"] = max(active["peak"], active["now"])

        async def act(self, episode, observation):
            if episode.step == 0:
                await anyio.sleep(0.3)
                return mcpsim.Action("lake_move", {"action": "LEFT"})
            active["now"] -= 1
            return None

    trajectories = await mcpsim.rollout(
        mcpsim.make(frozen_lake_server.mcp, seeds=range(4)), Counting(), steps=5, max_concurrency=2
    )
    assert [t.outcome for t in trajectories] == ["stopped"] * 4
    assert active["peak"] == 2


async def test_single_production_server_without_the_managed_server(tmp_path):
    port, _ = ports(510)
    argv = ["-m", "mcpsim.envs.frozen_lake", "--seed", "3", "--transport", "http"]
    with standalone(argv, port, tmp_path / "lake.log") as url:
        (trajectory,) = await mcpsim.rollout(mcpsim.make(url, seeds=[3]), mcpsim.ScriptedPolicy(solver), steps=20)
    assert trajectory.error is None and trajectory.success
    assert text_of(trajectory.initial_observation) == local_map(3)


async def test_reward_fn_scores_episodes_and_the_progress_bar_counts_them(frozen_lake_server, capsys):
    def reward_fn(trajectory):
        return -len(trajectory.steps)

    async with mcpsim.ScriptedPolicy([("lake_move", {"action": "LEFT"})] * 3) as policy:
        (trajectory,) = await mcpsim.rollout(
            mcpsim.make(frozen_lake_server.mcp, seeds=[2]), policy, steps=10, reward_fn=reward_fn, progress=True
        )
    assert trajectory.total_reward == -3 and trajectory.reward_source == "reward_fn"
    assert "1/1 episodes, 3 steps" in capsys.readouterr().err


async def test_a_recording_that_cannot_be_written_fails_before_any_episode(tmp_path):
    with pytest.raises(OSError, match="cannot write the recording"):
        await mcpsim.rollout(
            mcpsim.make("http://127.0.0.1:9/mcp", seeds=[1]), mcpsim.RandomPolicy(), record=tmp_path / "no" / "x.jsonl"
        )


async def test_unreachable_url_fails_each_episode_with_the_cause_quickly():
    started = time.monotonic()
    trajectories = await mcpsim.rollout(mcpsim.make("http://127.0.0.1:9/mcp", seeds=[1, 2]), mcpsim.RandomPolicy())
    assert time.monotonic() - started < 20
    for trajectory in trajectories:
        assert trajectory.outcome == "error" and trajectory.steps == []
        assert trajectory.error["type"] == "connect"
        assert "http://127.0.0.1:9/mcp?seed=" in trajectory.error["message"]
        assert "ConnectError" in trajectory.error["message"]


def test_bad_dataset_rows_fail_make_with_their_position(tmp_path):
    with pytest.raises(DatasetError, match=r"dataset row 1 has no 'seed'"):
        mcpsim.make("http://127.0.0.1:9/mcp", dataset=[{"seed": 1}, {"id": "x"}])
    with pytest.raises(DatasetError, match=r"'seed' must be an integer, got 'abc'"):
        mcpsim.make("http://127.0.0.1:9/mcp", dataset=[{"seed": "abc"}])
    with pytest.raises(DatasetError, match=r"'config' must be a JSON object"):
        mcpsim.make("http://127.0.0.1:9/mcp", dataset=[{"seed": 1, "config": [1]}])
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"id": "a", "seed": 1}) + "\n\n" + json.dumps({"id": "b"}) + "\n")
    with pytest.raises(DatasetError, match=r"rows.jsonl:3 has no 'seed'"):
        mcpsim.make("http://127.0.0.1:9/mcp", dataset=rows)
    rows.write_text('{"id": "a", "seed": 1}\n{"id": "b", "se\n')
    with pytest.raises(DatasetError, match=r"rows.jsonl:2: not valid JSON"):
        mcpsim.make("http://127.0.0.1:9/mcp", dataset=str(rows))
    with pytest.raises(DatasetError, match="cannot read dataset"):
        mcpsim.make("http://127.0.0.1:9/mcp", dataset=tmp_path / "missing.jsonl")
    with pytest.raises(ValueError, match="http"):
        mcpsim.make("127.0.0.1:9000/mcp", seeds=[1])
    envs = mcpsim.make("http://h:1/mcp?token=t", dataset=[{"seed": 4, "config": {"map_size": 8}}])
    assert envs[0].session_url == "http://h:1/mcp?token=t&seed=4&config=%7B%22map_size%22%3A8%7D"


async def test_invalid_actions_and_policy_crashes_end_only_their_episode(frozen_lake_server):
    def policy(episode, observation):
        if episode.env_id == "unknown":
            return ("lake_jump", {})
        if episode.env_id == "bad-args":
            return ("lake_move", {"direction": "UP"})
        if episode.env_id == "crash" and episode.step == 1:
            raise RuntimeError("policy bug")
        return ("lake_move", {"action": "LEFT"})

    rows = [{"id": name, "seed": 1} for name in ("unknown", "bad-args", "crash", "fine")]
    unknown, bad, crash, fine = await mcpsim.rollout(
        mcpsim.make(frozen_lake_server.mcp, dataset=rows), mcpsim.ScriptedPolicy(policy), steps=4
    )
    assert unknown.error == {
        "type": "invalid_action",
        "message": "unknown tool 'lake_jump'; the server offers: lake_move",
        "step": 1,
    }
    assert bad.error["type"] == "invalid_action"
    assert "'action' is a required property" in bad.error["message"]
    assert crash.error["type"] == "policy" and crash.error["step"] == 2
    assert "RuntimeError: policy bug" in crash.error["message"]
    assert len(crash.steps) == 1  # what was played before the failure is kept
    assert fine.error is None and len(fine.steps) == 4 and fine.outcome == "max_steps"


async def test_a_tool_call_that_kills_the_server_ends_that_episode_with_the_cause(serve_factory):
    serve = serve_factory("--server", f"python {server_script('toolbox.py')}")

    def policy(episode, observation):
        if episode.env_id == "crasher":
            return ("crash", {"code": 9})
        return ("echo", {"text": "hi"}) if episode.step == 0 else None

    rows = [{"id": name, "seed": 4} for name in ("crasher", "fine")]
    crasher, fine = await mcpsim.rollout(mcpsim.make(serve.mcp, dataset=rows), mcpsim.ScriptedPolicy(policy), steps=3)
    assert crasher.outcome == "error" and crasher.error["type"] == "environment"
    assert crasher.error["message"].startswith("tools/call 'crash' failed: ")
    assert "exit" in crasher.error["message"] and "9" in crasher.error["message"]
    assert crasher.steps == [], crasher.error
    assert fine.outcome == "stopped" and fine.steps[0].observation[0]["text"].startswith("hi seed=4 calls=1")


async def test_a_session_the_server_refuses_is_a_connect_error_naming_the_limit(serve_factory):
    serve = serve_factory("--server", f"python {server_script('toolbox.py')}", "--max-instances", "1")

    async def policy(episode, observation):
        await anyio.sleep(1.5)  # hold the only instance while the other session is refused
        return None

    trajectories = await mcpsim.rollout(
        mcpsim.make(serve.mcp, seeds=[1, 2]), mcpsim.ScriptedPolicy(policy), steps=3, max_concurrency=2
    )
    refused = [t for t in trajectories if t.error]
    served = [t for t in trajectories if not t.error]
    assert len(refused) == 1 and len(served) == 1
    assert refused[0].error["type"] == "connect"
    assert "--max-instances reached: 1 of 1 instances are running" in refused[0].error["message"]
    assert served[0].outcome == "stopped"


async def test_legacy_sse_endpoint_of_a_single_production_server(tmp_path):
    port, _ = ports(511)
    argv = ["-m", "mcpsim.envs.frozen_lake", "--seed", "3", "--transport", "sse"]
    with standalone(argv, port, tmp_path / "lake.log") as url:
        sse_url = url.removesuffix("/mcp") + "/sse"
        (trajectory,) = await mcpsim.rollout(mcpsim.make(sse_url, seeds=[3]), mcpsim.ScriptedPolicy(solver), steps=20)
    assert trajectory.error is None and trajectory.success
