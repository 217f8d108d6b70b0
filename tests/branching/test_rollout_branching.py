"""`rollout(..., branch_at=N, branches=K)` and `mcpsim rollout --branch-at N --branches K` against a real serve:
every episode is copied live after N steps, each copy played on by the policy and recorded as its own episode,
and the file reads back, replays and audits like any other (the audit plays each copy from the start without
branching, so it also checks that a copy began in its source's exact state)."""

import functools
import json
import re

import anyio
import pytest

from helpers.serve import REPO
from mcpsim import audit, make, read_recording, replay, rollout
from mcpsim.cli import main
from mcpsim.client.policies.random_policy import RandomPolicy
from mcpsim.errors import ConfigError
from mcpsim.trajectory.episodes import read_episodes

CONFIG = {"map_size": 8, "frozen_probability": 1.0}


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def brief(trajectory) -> list:
    return [(step.action.arguments, step.observation, step.reward, step.terminated) for step in trajectory.steps]


async def test_each_episode_branches_into_copies_recorded_replayed_and_audited(frozen_lake_server, tmp_path):
    record = tmp_path / "run.jsonl"
    rows = [{"id": f"lake-{seed}", "seed": seed, "config": CONFIG} for seed in (3, 4)]
    envs = make(frozen_lake_server.mcp, dataset=rows)
    played = await rollout(envs, RandomPolicy(seed=1), steps=9, record=record, branch_at=3, branches=3, progress=False)
    assert [t.env_id for t in played] == [
        "lake-3", "lake-3@3.1", "lake-3@3.2", "lake-3@3.3", "lake-4", "lake-4@3.1", "lake-4@3.2", "lake-4@3.3",
    ]  # fmt: skip
    assert not [t.error for t in played if t.error]
    for root in (played[0], played[4]):
        copies = [t for t in played if t.parent == root.env_id]
        assert root.outcome == "branched" and len(root.steps) == 3 and len(copies) == 3
        for copy in copies:
            assert copy.branched_at_step == 3 and copy.group_id == f"{root.env_id}@3"
            assert brief(copy)[:3] == brief(root) and len(copy.steps) > 3
            assert copy.initial_observation == root.initial_observation
        assert len({json.dumps(brief(copy)[3:]) for copy in copies}) > 1  # each copy acts on its own

    written = lines(record)
    assert sorted(r["env_id"] for r in written if r["type"] == "branch") == [t.env_id for t in played if t.parent]
    steps_written = [r for r in written if r["type"] == "step"]
    assert len(steps_written) == sum(len(t.steps) - (t.branched_at_step or 0) for t in played)  # no prefix twice
    episodes = {r["env_id"]: r for r in written if r["type"] == "episode"}
    assert episodes["lake-4@3.2"]["parent"] == "lake-4" and episodes["lake-4@3.2"]["branched_at_step"] == 3
    assert episodes["lake-4"]["outcome"] == "branched"

    read = read_recording(record)
    assert [t.env_id for t in read.trajectories] == [t.env_id for t in played]
    for got, want in zip(read.trajectories, played, strict=True):
        assert brief(got) == brief(want) and got.parent == want.parent and got.total_reward == want.total_reward
    assert [brief(t) for t in replay(record)] == [brief(t) for t in played]
    viewed = {episode.env_id: episode for episode in read_episodes(record).episodes}  # what `mcpsim view` shows
    assert [len(viewed[t.env_id].steps) for t in played] == [len(t.steps) for t in played]

    report = await audit(record, frozen_lake_server.mcp, progress=False)
    assert report.episodes == 8 and not report.divergences and not report.problems
    assert report.steps_checked == sum(len(t.steps) for t in played)


def test_the_cli_branches_and_bad_options_name_the_cause(frozen_lake_server, tmp_path, capsys):
    record, dataset = tmp_path / "cli.jsonl", tmp_path / "rows.jsonl"
    dataset.write_text(json.dumps({"id": "lake", "seed": 5, "config": CONFIG}) + "\n")
    argv = ["rollout", "--url", frozen_lake_server.mcp, "--dataset", str(dataset), "--steps", "4", "--progress", "off"]
    try:
        main([*argv, "--branch-at", "2", "--branches", "2", "--record", str(record)])
    except SystemExit as exc:
        assert exc.code in (0, None), capsys.readouterr()
    env_ids = [t.env_id for t in read_recording(record).trajectories]
    assert env_ids[1:] == [f"{env_ids[0]}@2.1", f"{env_ids[0]}@2.2"]
    try:
        main([*argv, "--branch-at", "2"])
    except SystemExit as exc:
        assert exc.code not in (0, None)
    assert "branch_at and branches go together" in capsys.readouterr().err
    envs = make(frozen_lake_server.mcp, seeds=[1])
    for options, message in [
        ({"branch_at": 0, "branches": 2}, "branch_at must be a step number of at least 1"),
        ({"branch_at": 2, "branches": 65}, "branches must be from 1 to 64"),
        ({"branch_at": 4, "branches": 2}, "branch_at (4) must be below steps (4)"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            anyio.run(functools.partial(rollout, envs, RandomPolicy(), steps=4, progress=False, **options))


async def test_the_tree_search_example_reaches_the_goal_within_its_budget(frozen_lake_server):
    import importlib.util

    from mcpsim.trajectory import Action

    spec = importlib.util.spec_from_file_location("tree_search", REPO / "examples" / "branching" / "tree_search.py")
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    path = await example.search(frozen_lake_server.mcp, 2, 5, 16)  # 5x5 map of seed 2: found after 11 expansions
    assert path is not None and len(path) == 8  # the shortest path around the holes
    with anyio.fail_after(15):  # every node's instance ended with the search
        while any(item["seed"] == 2 for item in frozen_lake_server.get("/api/instances").json()):
            await anyio.sleep(0.1)
    (env,) = make(frozen_lake_server.mcp, dataset=[{"id": "check", "seed": 2, "config": {"map_size": 5}}])
    async with env.connect() as session:  # the path found reaches the goal when played from the start
        for number, action in enumerate(path, start=1):
            step = await session.step(Action("lake_move", {"action": action}), number)
        assert step.reward > 0 and step.terminated
