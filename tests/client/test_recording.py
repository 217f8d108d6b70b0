"""Recording (the trajectory file), policy replay, environment replay with no server, damaged files."""

import base64
import hashlib
import json

import anyio
import pytest

import mcpsim
from helpers.rollouts import standalone
from helpers.serve import ports, server_script
from mcpsim.errors import TrajectoryError
from mcpsim.trajectory import read_recording


def lines_of(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def same_episode(a, b):
    assert a.env_id == b.env_id and a.seed == b.seed
    assert a.initial_observation == b.initial_observation
    assert [s.action.to_record() for s in a.steps] == [s.action.to_record() for s in b.steps]
    assert [s.observation for s in a.steps] == [s.observation for s in b.steps]
    assert [(s.reward, s.terminated, s.truncated) for s in a.steps] == [
        (s.reward, s.terminated, s.truncated) for s in b.steps
    ]
    assert (a.total_reward, a.outcome) == (b.total_reward, b.outcome)


async def test_record_then_policy_replay_gives_identical_episodes(frozen_lake_server, tmp_path):
    path = tmp_path / "run.jsonl"
    rows = [{"id": "r", "seed": 11}, {"id": "s", "seed": 12, "config": {"map_size": 5}}, {"id": "t", "seed": 13}]
    envs = mcpsim.make(frozen_lake_server.mcp, dataset=rows, samples=2)
    original = await mcpsim.rollout(envs, mcpsim.RandomPolicy(7), steps=25, record=path, metadata={"run": "a"})
    assert all(t.error is None for t in original)

    recording = read_recording(path)
    assert recording.header["format"] == "mcpsim.trajectory/1"
    assert recording.header["policy"] == "random" and recording.header["url"] == frozen_lake_server.mcp
    assert recording.header["metadata"] == {"run": "a"} and recording.header["policy_params"] == {"seed": 7}
    assert [row["env_id"] for row in recording.header["dataset"]] == ["r#0", "r#1", "s#0", "s#1", "t#0", "t#1"]
    replayed = await mcpsim.rollout(
        mcpsim.make(frozen_lake_server.mcp, dataset=recording.dataset), mcpsim.PlaybackPolicy(path), steps=25
    )
    for before, after in zip(original, replayed, strict=True):
        same_episode(before, after)
        assert after.error is None


async def test_environment_replay_recreates_trajectories_and_images_without_a_server(tmp_path):
    path = tmp_path / "canvas.jsonl"
    script = [("look", {}), ("paint", {"color": "green"}), ("paint", {"color": "blue"}), ("look", {})]
    port, _ = ports(520)
    with standalone([server_script("canvas.py"), "--seed", "2"], port, tmp_path / "canvas.log") as url:
        envs = mcpsim.make(url, seeds=[2, 5], protocol="legacy")  # canvas.py keeps state per MCP session
        original = await mcpsim.rollout(envs, mcpsim.ScriptedPolicy(script), steps=10, record=path)
    # the server is gone now: everything below comes from the file alone
    assert [t.outcome for t in original] == ["terminated", "terminated"]
    replayed = mcpsim.replay(path)
    for before, after in zip(original, replayed, strict=True):
        same_episode(before, after)
        assert after.complete

    records = lines_of(path)
    blobs = [r for r in records if r["type"] == "blob"]
    distinct = {
        hashlib.sha256(base64.b64decode(b["data"])).hexdigest()
        for t in original
        for b in [*t.initial_observation, *(block for s in t.steps for block in s.observation)]
        if b["type"] == "image"
    }
    assert sorted(b["sha256"] for b in blobs) == sorted(distinct)  # each image once: white, blue, green
    assert len(blobs) == 3
    for record in records:
        for block in record.get("observation", []) + record.get("initial_observation", []):
            if block["type"] == "image":
                assert "data" not in block and block["blob"] in distinct
    first_use = {}
    for index, record in enumerate(records):
        for block in record.get("observation", []) + record.get("initial_observation", []):
            first_use.setdefault(block.get("blob"), index)
    for index, record in enumerate(records):
        if record["type"] == "blob":
            assert index < first_use[record["sha256"]]

    rescored = mcpsim.replay(path, reward_fn=lambda t: 10 * len(t.steps))
    assert [t.total_reward for t in rescored] == [10 * len(t.steps) for t in original]
    assert rescored[0].reward_source == "reward_fn"


@pytest.fixture(scope="module")
def small_recording(tmp_path_factory, frozen_lake_server):
    path = tmp_path_factory.mktemp("rec") / "run.jsonl"
    envs = mcpsim.make(frozen_lake_server.mcp, seeds=[1, 2, 3])
    script = [("lake_move", {"action": "LEFT"})] * 4
    anyio.run(lambda: mcpsim.rollout(envs, mcpsim.ScriptedPolicy(script), steps=10, record=path))
    return path


@pytest.fixture
def damaged(tmp_path, small_recording):
    def write(text: str):
        path = tmp_path / "damaged.jsonl"
        path.write_text(text)
        return path

    return write, small_recording.read_text()


def test_a_truncated_file_names_the_line_and_keeps_complete_episodes_when_lenient(damaged):
    write, text = damaged
    lines = text.splitlines(keepends=True)
    # cut in the middle of the last step of the last episode to start writing steps
    last_episode = max(i for i, line in enumerate(lines) if '"type":"episode"' in line)
    cut = write("".join(lines[:last_episode]) + lines[last_episode][:40])
    with pytest.raises(TrajectoryError) as info:
        mcpsim.replay(cut)
    message = str(info.value)
    assert f"damaged.jsonl:{last_episode + 1}: not valid JSON" in message
    assert "the file ends mid-line" in message
    assert "has 4 steps but no episode line" in message
    kept = mcpsim.replay(cut, strict=False)
    assert [t.complete for t in kept].count(True) == 2
    assert [len(t.steps) for t in kept] == [4, 4, 4]


def test_corrupt_lines_and_wrong_files_are_clear_errors(damaged, tmp_path):
    write, text = damaged
    lines = text.splitlines(keepends=True)
    garbage = write("".join(lines[:3]) + "{not json}\n" + "".join(lines[3:]))
    with pytest.raises(TrajectoryError, match=r"damaged.jsonl:4: not valid JSON"):
        mcpsim.replay(garbage)
    with pytest.raises(TrajectoryError, match="the first line must be the header"):
        mcpsim.replay(write("".join(lines[1:])))
    with pytest.raises(TrajectoryError, match="unsupported format 'other/2'"):
        mcpsim.replay(write(lines[0].replace("mcpsim.trajectory/1", "other/2") + "".join(lines[1:])))
    with pytest.raises(TrajectoryError, match="is empty"):
        mcpsim.replay(write(""))
    with pytest.raises(TrajectoryError, match="cannot read"):
        mcpsim.replay(tmp_path / "nope.jsonl")
    skipped = [line for line in lines if '"step":2,' not in line or '"seed":2,' not in line]
    with pytest.raises(TrajectoryError, match=r"'seed2': step 3 where step 2 was expected"):
        mcpsim.replay(write("".join(skipped)))


async def test_playback_of_a_damaged_file_fails_each_episode_clearly(frozen_lake_server, damaged):
    write, text = damaged
    path = write(text + '{"type": "step", "env_id"\n')
    trajectories = await mcpsim.rollout(
        mcpsim.make(frozen_lake_server.mcp, seeds=[1]), mcpsim.PlaybackPolicy(path), steps=5
    )
    assert trajectories[0].error["type"] == "policy"
    assert "damaged.jsonl" in trajectories[0].error["message"] and "not valid JSON" in trajectories[0].error["message"]


@pytest.mark.slow
async def test_64_random_episodes_through_the_managed_server_record_a_linear_file(frozen_lake_server, tmp_path):
    path = tmp_path / "run64.jsonl"
    envs = mcpsim.make(frozen_lake_server.mcp, seeds=range(64))
    trajectories = await mcpsim.rollout(envs, mcpsim.RandomPolicy(3), steps=30, max_concurrency=64, record=path)
    assert [t.error for t in trajectories] == [None] * 64
    assert all(t.outcome in ("terminated", "max_steps") for t in trajectories)
    assert {t.seed for t in trajectories} == set(range(64))

    raw = path.read_text().splitlines()
    records = [json.loads(line) for line in raw]
    kinds = [r["type"] for r in records]
    total_steps = sum(len(t.steps) for t in trajectories)
    assert kinds.count("header") == 1 and kinds[0] == "header"
    assert kinds.count("step") == total_steps and kinds.count("episode") == 64
    step_sizes = {}
    for line, record in zip(raw, records, strict=True):
        if record["type"] == "step":
            step_sizes.setdefault(record["step"], []).append(len(line))
    # linear: a step line does not grow with the episode's history (only the step counter's digits change)
    assert max(step_sizes[max(step_sizes)]) < max(step_sizes[1]) + 40
    assert max(max(sizes) for sizes in step_sizes.values()) < 1000
    replayed = mcpsim.replay(path)
    assert sum(len(t.steps) for t in replayed) == total_steps


def test_deep_or_huge_lines_are_problems_naming_the_line(tmp_path):
    """json.loads let RecursionError and the 4300-digit ValueError escape `replay`/`report`/`audit`."""
    path = tmp_path / "odd.jsonl"
    header = json.dumps({"type": "header", "format": "mcpsim.trajectory/1"})
    deep = '{"type": "step", "env_id": "a", "x": ' + "[" * 50_000 + "]" * 50_000 + "}"
    huge = '{"type": "step", "env_id": "a", "reward": ' + "9" * 4400 + "}"
    path.write_text(f"{header}\n{deep}\n{huge}\n")
    with pytest.raises(TrajectoryError, match=r"odd.jsonl:2: not valid JSON: nested more than 200 levels"):
        read_recording(path)
    problems = read_recording(path, strict=False).problems
    assert [problem.split(": not valid JSON: ")[0][-11:] for problem in problems] == ["odd.jsonl:2", "odd.jsonl:3"]
    assert "a number too large to read" in problems[1]
    path.write_text("[" * 50_000 + "\n")
    with pytest.raises(TrajectoryError, match=r"odd.jsonl:1: the header is not valid JSON \(nested more"):
        read_recording(path)
