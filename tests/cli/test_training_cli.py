"""`mcpsim rollout --logprobs --top-logprobs N --token-ids` then `mcpsim export`, as a user runs them."""

import json
import os
import subprocess
import sys

from helpers.fake_openai import API_KEY, FakeOpenAI, text_of_message
from helpers.rollouts import solve


def lake_brain(body):
    for message in reversed(body["messages"]):
        move = solve(text_of_message(message))
        if move:
            return {"tool_calls": [("lake_move", {"action": move})]}
    return {"content": "no map"}


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OPENAI_API_KEY": API_KEY}
    return subprocess.run(
        [sys.executable, "-m", "mcpsim", *args], capture_output=True, text=True, timeout=240, env=env, check=False
    )


def test_rollout_records_token_data_and_export_writes_it(frozen_lake_server, tmp_path):
    run = tmp_path / "run.jsonl"
    with FakeOpenAI(lake_brain, flavor="vllm") as api:
        flags = ["--policy", "openai:fake-model", "--base-url", api.base_url, "--seeds", "1-3", "--samples", "2"]
        done = cli(
            "rollout",
            "--url",
            frozen_lake_server.mcp,
            *flags,
            "--steps",
            "20",
            "--record",
            str(run),
            "--logprobs",
            "--top-logprobs",
            "3",
            "--token-ids",
            "--progress",
            "off",
        )
    assert done.returncode == 0, done.stdout + done.stderr
    assert all(b["top_logprobs"] == 3 and b["return_token_ids"] is True for b in api.requests)
    lines = [json.loads(line) for line in run.read_text().splitlines()]
    assert lines[0]["format"] == "mcpsim.trajectory/2"
    assert lines[0]["policy_params"]["token_ids"] is True
    turns = [line for line in lines if line["type"] == "turn"]
    assert turns and all(len(t["top_logprobs"][0]) == 3 and t["mask"] for t in turns)
    episodes = [line for line in lines if line["type"] == "episode"]
    assert sorted(e["group_id"] for e in episodes) == ["seed1", "seed1", "seed2", "seed2", "seed3", "seed3"]

    done = cli("export", str(run), "--format", "chat", "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert len((tmp_path / "out" / "chat.jsonl").read_text().splitlines()) == 6


def test_rollout_against_the_hosted_api_with_token_ids_says_why_it_failed(frozen_lake_server):
    with FakeOpenAI(lake_brain) as api:
        done = cli(
            "rollout",
            "--url",
            frozen_lake_server.mcp,
            "--policy",
            "openai:fake-model",
            "--base-url",
            api.base_url,
            "--seeds",
            "1",
            "--token-ids",
            "--max-retries",
            "0",
            "--progress",
            "off",
        )
    assert done.returncode == 1
    assert "refused the token data asked for (token_ids)" in done.stdout


def test_impossible_token_flags_are_refused_before_anything_runs():
    done = cli(
        "rollout",
        "--url",
        "http://127.0.0.1:9/mcp",
        "--policy",
        "openai:m",
        "--base-url",
        "http://127.0.0.1:9/v1",
        "--seeds",
        "1",
        "--top-logprobs",
        "3",
    )
    assert done.returncode == 2 and "top_logprobs needs logprobs=True" in done.stderr
