"""`mcpsim export`: a recorded LLM rollout (token data from a server that answers like vLLM) as a Hugging Face
dataset, a chat JSONL and TRL's prompt-completion columns, read back with `datasets.load_dataset`."""

import json
import subprocess
import sys

import pytest

import mcpsim
from helpers.fake_openai import API_KEY, FakeOpenAI, text_of_message
from helpers.rollouts import solve
from mcpsim.errors import ConfigError, TrajectoryError
from mcpsim.export import export

datasets = pytest.importorskip("datasets")


def lake_brain(body):
    for message in reversed(body["messages"]):
        move = solve(text_of_message(message))
        if move:
            return {"tool_calls": [("lake_move", {"action": move})]}
    return {"content": "no map"}


@pytest.fixture(scope="module")
def recording(frozen_lake_server, tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "run.jsonl"

    async def run():
        with FakeOpenAI(lake_brain, flavor="vllm") as api:
            policy = mcpsim.OpenAIPolicy(
                "fake-model", base_url=api.base_url, api_key=API_KEY, logprobs=True, top_logprobs=1, token_ids=True
            )
            envs = mcpsim.make(frozen_lake_server.mcp, seeds=[1, 6], samples=2)
            await mcpsim.rollout(envs, policy, steps=3, record=path)  # 3 steps: some reach the goal, some not
            await policy.aclose()

    import anyio

    anyio.run(run)
    return path


def load(path, tmp_path):
    return datasets.load_dataset("parquet", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache"))


def test_hf_export_has_one_row_per_episode_with_messages_rewards_groups_and_tokens(recording, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    target = export(recording, "hf", tmp_path / "out")
    table = load(target, tmp_path)
    trajectories = mcpsim.replay(recording)
    assert table.num_rows == len(trajectories) == 4
    for row, trajectory in zip(table, trajectories, strict=True):
        assert row["episode_id"] == trajectory.env_id and row["group_id"] == trajectory.group_id
        assert row["seed"] == trajectory.seed and row["reward"] == trajectory.total_reward
        assert [m["role"] for m in row["messages"]] == [m["role"] for m in trajectory.messages]
        assert row["messages"][0]["content"] == trajectory.messages[0]["content"]
        calls = [m["tool_calls"] for m in row["messages"] if m["role"] == "assistant"]
        assert all(json.loads(c[0]["function"]["arguments"])["action"] for c in calls)
        assert len(row["token_ids"]) == len(row["mask"]) == len(row["logprobs"]) > 0
        assert sum(row["mask"]) == sum(len(t.token_ids) for t in trajectory.turns)
        assert row["turn_token_ids"] == [t.token_ids for t in trajectory.turns]
        assert json.loads(row["tools"])[0]["function"]["name"] == "lake_move"
        assert json.loads(row["sampling"])["model"] == "fake-model"
    advantages = mcpsim.client.trajectory_advantages(trajectories)
    assert table["advantage"] == pytest.approx(advantages)


def test_trl_export_is_conversational_prompt_completion(recording, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    table = load(export(recording, "trl", tmp_path / "out"), tmp_path)
    assert set(table.column_names) >= {"prompt", "completion", "reward", "advantage", "group_id"}
    for row in table:
        assert [m["role"] for m in row["prompt"]] == ["system", "user"]
        assert row["completion"][0]["role"] == "assistant"
        assert {m["role"] for m in row["completion"]} <= {"assistant", "tool", "user"}


def test_chat_export_keeps_the_exact_messages_and_tools(recording, tmp_path):
    target = export(recording, "chat", tmp_path / "out")
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    trajectories = mcpsim.replay(recording)
    assert [line["messages"] for line in lines] == [t.messages for t in trajectories]
    assert all(line["tools"][0]["type"] == "function" for line in lines)


def test_a_run_without_conversations_exports_rows_without_token_data(frozen_lake_server, tmp_path):
    import anyio

    path = tmp_path / "random.jsonl"
    envs = mcpsim.make(frozen_lake_server.mcp, seeds=[2])
    anyio.run(lambda: mcpsim.rollout(envs, mcpsim.RandomPolicy(0), steps=4, record=path))
    table = load(export(path, "hf", tmp_path / "out"), tmp_path)
    (row,) = table
    assert row["messages"] == [] and row["token_ids"] is None and row["steps"] > 0


def test_export_refuses_an_unknown_format_and_a_file_that_is_no_trajectory(tmp_path):
    with pytest.raises(ConfigError, match="unknown export format 'csv'"):
        export(tmp_path / "x.jsonl", "csv", tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"hello": 1}\n')
    with pytest.raises(TrajectoryError, match="not a trajectory header"):
        export(bad, "chat", tmp_path / "out")


WITHOUT_DATASETS = """
import sys
sys.modules["datasets"] = None  # as if not installed: `import datasets` raises ImportError
from mcpsim.cli import main
main(sys.argv[1:])
"""


def test_the_cli_exports_and_says_how_to_install_datasets_when_missing(recording, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "mcpsim", "export", str(recording), "--format", "chat", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout and (tmp_path / "chat.jsonl").exists()
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_DATASETS, "export", str(recording), "--format", "hf", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "need Hugging Face datasets, which is not installed: pip install 'mcpsim[export]'" in done.stderr
