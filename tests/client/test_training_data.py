"""Training data from a rollout: the conversation (`mcpsim.trajectory/2`), token ids, logprobs and masks from a
server that answers like vLLM, groups, and the refusals of endpoints that offer no token data."""

import json

import pytest

import mcpsim
from helpers.fake_openai import API_KEY, FakeOpenAI, text_of_message
from helpers.fake_vllm import Tokenizer, check_flags, render_prompt
from helpers.rollouts import solve
from mcpsim.errors import ConfigError
from mcpsim.trajectory import read_recording
from mcpsim.trajectory.turns import episode_tokens, token_delta


def lake_brain(body):
    for message in reversed(body["messages"]):
        move = solve(text_of_message(message))
        if move:
            return {"tool_calls": [("lake_move", {"action": move})]}
    return {"content": "I see no map."}


def policy_for(api, **kwargs):
    return mcpsim.OpenAIPolicy("fake-model", base_url=api.base_url, api_key=API_KEY, **kwargs)


def lines_of(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_vllm_token_ids_logprobs_and_masks_are_recorded_per_turn_and_read_back(frozen_lake_server, tmp_path):
    run = tmp_path / "run.jsonl"
    with FakeOpenAI(lake_brain, flavor="vllm") as api:
        policy = policy_for(api, logprobs=True, top_logprobs=2, token_ids=True)
        envs = mcpsim.make(frozen_lake_server.mcp, seeds=[1, 2], samples=2)
        trajectories = await mcpsim.rollout(envs, policy, steps=20, record=run)
        await policy.aclose()
        tokenizer = api.tokenizer
        requests = api.requests
    assert api.problems == [] and all(t.error is None and t.success for t in trajectories)
    for body in requests:
        assert body["logprobs"] is True and body["top_logprobs"] == 2
        assert body["return_token_ids"] is True and body["return_tokens_as_token_ids"] is True

    lines = lines_of(run)
    assert lines[0]["format"] == "mcpsim.trajectory/2"
    assert [t.group_id for t in trajectories] == ["seed1", "seed1", "seed2", "seed2"]
    recording = read_recording(run)
    assert len(recording.trajectories) == 4
    for live, read in zip(trajectories, recording.trajectories, strict=True):
        assert read.group_id == live.group_id and read.sampling == live.sampling
        assert read.sampling["model"] == "fake-model" and read.sampling["token_ids"] is True
        assert len(read.turns) == len(read.steps) == len(live.turns)
        for turn, step in zip(read.turns, read.steps, strict=True):
            assert turn.step == step.step
            assert turn.messages[-1]["role"] == "assistant"
            assert turn.completion["finish_reason"] == "tool_calls"
            assert len(turn.token_ids) == len(turn.logprobs) == len(turn.top_logprobs) > 0
            assert all(len(top) == 2 for top in turn.top_logprobs)
            assert turn.mask == [0] * len(turn.prompt_ids) + [1] * len(turn.token_ids)
            assert not turn.prompt_reset
        # the episode is one token sequence: the last prompt is every earlier turn's prompt + completion
        ids, mask, logprobs = episode_tokens(read.turns)
        mine = [b for b in requests if b["messages"] == read.messages[: len(b["messages"])]]
        last_prompt = tokenizer.encode(render_prompt(mine[-1]["messages"]))
        assert ids[: len(last_prompt)] == last_prompt
        assert tokenizer.decode([i for i, m in zip(ids, mask, strict=True) if m]).count("<tool_call>") == len(
            read.steps
        )
        assert all((lp is None) == (m == 0) for lp, m in zip(logprobs, mask, strict=True))
        # the conversation rebuilds every request the model saw, in order
        for n, body in enumerate(mine):
            assert body["messages"] == read.messages[: len(body["messages"])], n
    # the initial map is stored once per episode as text in the first user message, not repeated per line
    turn_lines = [line for line in lines if line["type"] == "turn"]
    assert all(line["messages"][0]["role"] in ("system", "tool") for line in turn_lines)


async def test_a_run_without_conversations_is_still_written_as_format_1(frozen_lake_server, tmp_path):
    run = tmp_path / "run.jsonl"
    await mcpsim.rollout(mcpsim.make(frozen_lake_server.mcp, seeds=[3]), mcpsim.RandomPolicy(0), steps=5, record=run)
    lines = lines_of(run)
    assert lines[0]["format"] == "mcpsim.trajectory/1"
    assert {line["type"] for line in lines} <= {"header", "step", "episode", "blob"}
    (trajectory,) = read_recording(run).trajectories
    assert trajectory.turns == [] and trajectory.group_id == "seed3"


async def test_the_hosted_api_refuses_token_ids_with_a_clear_error(frozen_lake_server):
    with FakeOpenAI(lake_brain) as api:
        policy = policy_for(api, token_ids=True, max_retries=0)
        (trajectory,) = await mcpsim.rollout(mcpsim.make(frozen_lake_server.mcp, seeds=[1]), policy, steps=5)
        await policy.aclose()
    assert trajectory.outcome == "error"
    message = trajectory.error["message"]
    assert "refused the token data asked for (token_ids)" in message
    assert "Unrecognized request argument supplied: return_token_ids" in message


async def test_hosted_logprobs_come_without_token_ids_and_are_recorded(frozen_lake_server, tmp_path):
    with FakeOpenAI(lake_brain) as api:
        policy = policy_for(api, logprobs=True)
        (trajectory,) = await mcpsim.rollout(mcpsim.make(frozen_lake_server.mcp, seeds=[1]), policy, steps=20)
        await policy.aclose()
    assert trajectory.error is None and trajectory.turns
    assert all(t.logprobs and t.token_ids is None and t.mask is None for t in trajectory.turns)
    assert "return_token_ids" not in api.requests[0]


async def test_an_older_vllm_gives_token_ids_through_its_logprob_tokens(frozen_lake_server):
    with FakeOpenAI(lake_brain, flavor="vllm-0.9") as api:  # ignores return_token_ids
        policy = policy_for(api, logprobs=True, token_ids=True)
        (trajectory,) = await mcpsim.rollout(mcpsim.make(frozen_lake_server.mcp, seeds=[1]), policy, steps=20)
        await policy.aclose()
        tokenizer = api.tokenizer
    assert trajectory.error is None and trajectory.success
    for turn in trajectory.turns:
        assert tokenizer.decode(turn.token_ids).startswith("<tool_call>")  # the ids of `token_id:N` tokens
        assert turn.prompt_ids is None and turn.mask == [1] * len(turn.token_ids)  # no prompt ids to be had


async def test_asking_for_token_ids_from_a_server_that_returns_none_fails_the_episode(frozen_lake_server):
    with FakeOpenAI(lake_brain, flavor="vllm-0.9") as api:  # without logprobs: no ids at all
        policy = policy_for(api, token_ids=True, max_retries=0)
        (trajectory,) = await mcpsim.rollout(mcpsim.make(frozen_lake_server.mcp, seeds=[1]), policy, steps=5)
        await policy.aclose()
    assert trajectory.outcome == "error"
    assert "returned no token ids although asked" in trajectory.error["message"]


def test_the_fake_vllm_checks_flags_like_vllm():
    assert check_flags({"top_logprobs": 3}, "vllm") == "when using `top_logprobs`, `logprobs` must be set to true."
    assert "greater than max allowed: 20" in check_flags({"logprobs": True, "top_logprobs": 21}, "vllm")
    assert "valid boolean" in check_flags({"return_token_ids": "yes"}, "vllm")
    assert check_flags({"logprobs": True, "top_logprobs": 5, "return_token_ids": True}, "vllm") is None
    assert check_flags({"return_tokens_as_token_ids": True}, "openai").startswith("Unrecognized request argument")


@pytest.mark.parametrize(
    ("options", "match"),
    [({"top_logprobs": 2}, "needs logprobs=True"), ({"logprobs": True, "top_logprobs": 21}, "between 0 and 20")],
)
def test_impossible_token_options_fail_at_construction(options, match):
    with pytest.raises(ConfigError, match=match):
        mcpsim.OpenAIPolicy("m", base_url="http://127.0.0.1:9/v1", **options)


def test_token_delta_keeps_only_new_prompt_tokens_or_restarts():
    assert token_delta(None, [1, 2, 3]) == ([1, 2, 3], False)
    assert token_delta(([1, 2], [3]), [1, 2, 3, 4, 5]) == ([4, 5], False)
    assert token_delta(([1, 2], [3]), [1, 9, 3, 4]) == ([1, 9, 3, 4], True)


def test_the_fake_tokenizer_round_trips():
    tokenizer = Tokenizer()
    text = render_prompt([{"role": "user", "content": "Move  DOWN, please."}])
    assert tokenizer.decode(tokenizer.encode(text)) == text


def canvas_brain(body):
    """Looks once, then paints (the swatch is in the image the look returned)."""
    looked = any(call["function"]["name"] == "look" for m in body["messages"] for call in m.get("tool_calls") or [])
    return {"tool_calls": [("paint", {"color": "blue"})]} if looked else {"tool_calls": [("look", {})]}


async def test_chat_images_are_stored_once_as_blobs_and_read_back_as_the_data_urls_sent(tmp_path):
    from helpers.fake_openai import image_urls
    from helpers.rollouts import standalone
    from helpers.serve import ports, server_script

    port, _ = ports(520)
    run = tmp_path / "vision.jsonl"
    log = tmp_path / "canvas.log"
    with standalone([server_script("canvas.py"), "--seed", "2"], port, log) as url, FakeOpenAI(canvas_brain) as api:
        policy = policy_for(api, vision=True)
        (trajectory,) = await mcpsim.rollout(mcpsim.make(url, seeds=[2]), policy, steps=3, record=run)
        await policy.aclose()
    assert trajectory.error is None and api.problems == []
    text = run.read_text()
    lines = [json.loads(line) for line in text.splitlines()]
    assert "data:image/png;base64" not in text  # chat images are blob references in the file
    turn_refs = [
        part["image_url"]
        for line in lines
        if line["type"] == "turn"
        for message in line["messages"]
        if isinstance(message.get("content"), list)
        for part in message["content"]
        if part.get("type") == "image_url"
    ]
    assert turn_refs and all(set(ref) == {"blob", "mimeType"} for ref in turn_refs)
    blobs = [line["sha256"] for line in lines if line["type"] == "blob"]
    assert len(blobs) == len(set(blobs))  # each image once, although observations and messages both use it
    assert {ref["blob"] for ref in turn_refs} <= set(blobs)
    (read,) = read_recording(run).trajectories
    sent = [url for body in api.requests for message in body["messages"] for url in image_urls(message)]
    stored = [url for message in read.messages for url in image_urls(message)]
    assert stored and set(stored) <= set(sent)
