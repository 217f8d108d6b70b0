"""OpenAIPolicy against a local OpenAI-compatible server (tests/helpers/fake_openai.py) that checks every request."""

import pytest
from mcp import Client

import mcpsim
from helpers.fake_openai import API_KEY, FakeOpenAI, decode_png, image_urls, text_of_message
from helpers.rollouts import solve, standalone
from helpers.serve import ports, server_script
from mcpsim.client.content import text_of
from mcpsim.client.report import run_stats
from mcpsim.trajectory import read_recording

COLORS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}


def lake_brain(body):
    """A model that reads the latest map in the conversation and walks the shortest path to the goal."""
    prompt = text_of_message(body["messages"][1])
    if "call fly" in prompt:
        return {"tool_calls": [("fly", {"to": "goal"})]}
    if "broken json" in prompt:
        return {"tool_calls": [("lake_move", '{"action": "DOWN"')]}
    if "say nothing" in prompt:
        return {"content": "I would rather not."}
    for message in reversed(body["messages"]):
        move = solve(text_of_message(message))
        if move:
            return {"tool_calls": [("lake_move", {"action": move})]}
    return {"content": "I see no map."}


def canvas_brain(body):
    """Looks twice in one turn (two tool calls), then paints the swatch's colour if it can see it."""
    messages = body["messages"]
    seen = [decode_png(url).convert("RGB").getpixel((0, 0)) for m in messages for url in image_urls(m)]
    swatches = [c for c in seen if c != (255, 255, 255)]
    if swatches:
        color = next(name for name, rgb in COLORS.items() if rgb == swatches[-1])
        return {"tool_calls": [("paint", {"color": color})]}
    looked = any(call["function"]["name"] == "look" for m in messages for call in m.get("tool_calls") or [])
    if not looked:
        return {"content": "Let me look twice.", "tool_calls": [("look", {}), ("look", {})]}
    return {"tool_calls": [("paint", {"color": "red"})]}


@pytest.fixture
def lake_api():
    with FakeOpenAI(lake_brain) as api:
        yield api


CANVAS_ERA = "legacy"
"""canvas.py keeps each episode's state per MCP session (handshake era): a 2026-07-28 client, which has no
session, would share one state across every episode of the standalone process."""


@pytest.fixture(scope="module")
def canvas_url(tmp_path_factory):
    port, _ = ports(500)
    log = tmp_path_factory.mktemp("canvas") / "canvas.log"
    with standalone([server_script("canvas.py"), "--seed", "2"], port, log) as url:  # seed 2: blue
        yield url


def policy_for(api, **kwargs):
    return mcpsim.OpenAIPolicy("fake-model", base_url=api.base_url, api_key=API_KEY, **kwargs)


async def test_llm_plays_frozen_lake_with_native_tool_calls_and_one_conversation_per_env(
    frozen_lake_server, lake_api, tmp_path
):
    rows = [
        {"id": f"ep{seed}", "seed": seed, "system_prompt": "You are careful.", "user_prompt": f"Episode {seed}."}
        for seed in (1, 2, 3)
    ]
    envs = mcpsim.make(frozen_lake_server.mcp, dataset=rows)
    policy = policy_for(lake_api)
    trajectories = await mcpsim.rollout(envs, policy, steps=20, record=tmp_path / "run.jsonl")
    await policy.aclose()

    assert lake_api.problems == []
    assert [t.error for t in trajectories] == [None, None, None]
    assert all(t.success for t in trajectories), [t.outcome for t in trajectories]

    async with Client(f"{frozen_lake_server.mcp}?seed=1", mode="legacy") as client:
        tool = (await client.list_tools()).tools[0]
    expected_tools = [
        {
            "type": "function",
            "function": {"name": "lake_move", "description": tool.description, "parameters": tool.input_schema},
        }
    ]
    for body in lake_api.requests:
        assert body["model"] == "fake-model"
        assert body["temperature"] == 0.0
        assert body["tools"] == expected_tools

    for trajectory in trajectories:
        prompt = f"Episode {trajectory.seed}."
        mine = [b for b in lake_api.requests if text_of_message(b["messages"][1]).startswith(prompt)]
        assert len(mine) == len(trajectory.steps)
        messages = mine[-1]["messages"]
        assert messages[0] == {"role": "system", "content": "You are careful."}
        assert messages[1]["role"] == "user"
        assert text_of(trajectory.initial_observation) in messages[1]["content"]
        turns = messages[2:]
        assert [m["role"] for m in turns] == ["assistant", "tool"] * (len(trajectory.steps) - 1)
        pairs = zip(turns[::2], turns[1::2], strict=True)
        for (assistant, tool_msg), step in zip(pairs, trajectory.steps, strict=False):
            (call,) = assistant["tool_calls"]
            assert tool_msg["tool_call_id"] == call["id"] == step.action.info["call_id"]
            assert tool_msg["content"] == text_of(step.observation)
        for step in trajectory.steps:
            assert step.usage["requests"] == 1 and step.usage["prompt_tokens"] > 0
        assert trajectory.usage["total_tokens"] == sum(s.usage["total_tokens"] for s in trajectory.steps)

    recorded = mcpsim.replay(tmp_path / "run.jsonl")
    assert [s.usage for s in recorded[0].steps] == [s.usage for s in trajectories[0].steps]
    stats = run_stats(read_recording(tmp_path / "run.jsonl")).values
    assert stats["tokens"]["total_tokens"] == sum(t.usage["total_tokens"] for t in trajectories) > 0
    assert stats["tokens"]["requests"] == len(lake_api.requests) and stats["success_rate"] == 1.0
    assert read_recording(tmp_path / "run.jsonl").header["model"] == "fake-model"


async def test_vision_sends_frames_as_png_data_urls_after_the_tool_messages(canvas_url):
    with FakeOpenAI(canvas_brain) as api:
        policy = policy_for(api, vision=True)
        (trajectory,) = await mcpsim.rollout(mcpsim.make(canvas_url, seeds=[2], protocol=CANVAS_ERA), policy, steps=4)
        await policy.aclose()
    assert api.problems == []
    assert trajectory.error is None and trajectory.success
    assert [s.action.tool for s in trajectory.steps] == ["look", "look", "paint"]
    first = api.requests[0]["messages"][1]
    (initial,) = image_urls(first)
    assert decode_png(initial).size == (24, 24)
    second = api.requests[1]["messages"]
    # both tool messages answer the two calls first; each call's image follows in its own user message
    assert [m["role"] for m in second] == ["system", "user", "assistant", "tool", "tool", "user", "user"]
    assert "image(s) returned by this call follow" in second[3]["content"]
    assert text_of_message(second[5]) == "Image(s) returned by look:"
    swatches = image_urls(second[5]) + image_urls(second[6])
    assert len(swatches) == 2
    assert {decode_png(url).convert("RGB").getpixel((5, 5)) for url in swatches} == {COLORS["blue"]}
    assert len(api.requests) == 2  # the second look came from the same reply, without a model call


async def test_max_images_keeps_only_the_latest_frames_in_a_request(canvas_url):
    with FakeOpenAI(canvas_brain) as api:
        policy = policy_for(api, vision=True, max_images=1)
        (trajectory,) = await mcpsim.rollout(mcpsim.make(canvas_url, seeds=[2], protocol=CANVAS_ERA), policy, steps=4)
        await policy.aclose()
    assert api.problems == [] and trajectory.success
    second = api.requests[1]["messages"]
    assert sum(len(image_urls(m)) for m in second) == 1  # of the 3 images so far, only the newest is sent
    assert "[earlier image omitted]" in text_of_message(second[1])


async def test_text_only_sends_no_images_and_the_model_plays_blind(canvas_url):
    with FakeOpenAI(canvas_brain) as api:
        policy = policy_for(api, vision=False)
        (trajectory,) = await mcpsim.rollout(mcpsim.make(canvas_url, seeds=[2], protocol=CANVAS_ERA), policy, steps=6)
        await policy.aclose()
    assert api.problems == []
    assert not any(image_urls(m) for body in api.requests for m in body["messages"])
    assert "[image omitted: image/png]" in api.requests[0]["messages"][1]["content"]
    assert trajectory.error is None and not trajectory.success
    assert trajectory.outcome == "truncated"


async def test_auto_vision_falls_back_to_text_when_the_endpoint_rejects_images(canvas_url):
    with FakeOpenAI(canvas_brain) as api:
        api.reject_images = True
        policy = policy_for(api)  # vision="auto"
        (trajectory,) = await mcpsim.rollout(mcpsim.make(canvas_url, seeds=[2], protocol=CANVAS_ERA), policy, steps=6)
        await policy.aclose()
    assert trajectory.error is None
    assert image_urls(api.requests[0]["messages"][1])
    assert not any(image_urls(m) for body in api.requests[1:] for m in body["messages"])
    assert policy.describe()["images_rejected"] is True


async def test_forced_vision_on_an_endpoint_without_images_is_a_clear_policy_error(canvas_url):
    with FakeOpenAI(canvas_brain) as api:
        api.reject_images = True
        policy = policy_for(api, vision=True)
        (trajectory,) = await mcpsim.rollout(mcpsim.make(canvas_url, seeds=[2], protocol=CANVAS_ERA), policy, steps=4)
        await policy.aclose()
    assert trajectory.outcome == "error"
    assert trajectory.error["type"] == "policy"
    assert "HTTP 400" in trajectory.error["message"]
    assert "image_url is only supported" in trajectory.error["message"]


async def test_rate_limit_is_retried_after_retry_after_and_counted(frozen_lake_server, lake_api):
    lake_api.fail_next(429, headers={"retry-after-ms": "300"})
    policy = policy_for(lake_api)
    (trajectory,) = await mcpsim.rollout(mcpsim.make(frozen_lake_server.mcp, seeds=[4]), policy, steps=20)
    await policy.aclose()
    assert trajectory.error is None and trajectory.success
    assert trajectory.steps[0].usage["retries"] == 1
    assert trajectory.steps[0].usage["requests"] == 1
    assert lake_api.arrivals[1] - lake_api.arrivals[0] >= 0.25
    assert trajectory.usage["retries"] == 1


async def test_server_errors_are_retried_with_backoff(frozen_lake_server, lake_api):
    lake_api.fail_next(500, times=1)
    lake_api.fail_next(503, times=1)
    policy = policy_for(lake_api)
    (trajectory,) = await mcpsim.rollout(mcpsim.make(frozen_lake_server.mcp, seeds=[5]), policy, steps=20)
    await policy.aclose()
    assert trajectory.error is None and trajectory.success
    assert trajectory.steps[0].usage["retries"] == 2
    assert lake_api.arrivals[2] - lake_api.arrivals[0] >= 0.5  # exponential backoff, not a busy loop


async def test_exhausted_retries_end_that_episode_only(frozen_lake_server, lake_api):
    lake_api.fail_next(429, times=2, headers={"retry-after-ms": "10"})
    policy = policy_for(lake_api, max_retries=1)
    envs = mcpsim.make(frozen_lake_server.mcp, seeds=[6, 7])
    failed, fine = await mcpsim.rollout(envs, policy, steps=20, max_concurrency=1)
    await policy.aclose()
    assert failed.outcome == "error" and failed.error["type"] == "policy"
    assert "HTTP 429 after 1 retries: simulated 429" in failed.error["message"]
    assert fine.error is None and fine.success


async def test_model_mistakes_are_recorded_on_their_episode(frozen_lake_server, lake_api):
    rows = [
        {"id": "fly", "seed": 1, "user_prompt": "Please call fly."},
        {"id": "json", "seed": 1, "user_prompt": "Send broken json."},
        {"id": "mute", "seed": 1, "user_prompt": "Please say nothing."},
        {"id": "good", "seed": 1, "user_prompt": "Play well."},
    ]
    policy = policy_for(lake_api)
    fly, broken, mute, good = await mcpsim.rollout(mcpsim.make(frozen_lake_server.mcp, dataset=rows), policy, steps=20)
    await policy.aclose()
    assert fly.error["type"] == "invalid_action"
    assert "unknown tool 'fly'; the server offers: lake_move" in fly.error["message"]
    assert broken.error["type"] == "invalid_action" and "not valid JSON" in broken.error["message"]
    assert mute.outcome == "stopped" and mute.error is None and mute.steps == []
    assert mute.usage["requests"] == 2  # asked, nudged once, then stopped
    mute_requests = [b for b in lake_api.requests if "say nothing" in text_of_message(b["messages"][1])]
    nudge = {"role": "user", "content": "Please continue by calling one of the tools."}
    assert mute_requests[-1]["messages"][-1] == nudge
    assert good.success


async def test_wrong_api_key_is_a_clear_error(frozen_lake_server, lake_api):
    policy = mcpsim.OpenAIPolicy("fake-model", base_url=lake_api.base_url, api_key="sk-wrong")
    (trajectory,) = await mcpsim.rollout(mcpsim.make(frozen_lake_server.mcp, seeds=[1]), policy, steps=5)
    await policy.aclose()
    assert trajectory.error["type"] == "policy"
    assert "HTTP 401" in trajectory.error["message"] and "Incorrect API key" in trajectory.error["message"]
    assert len(lake_api.requests) == 0  # 401 is not retried


def test_fireworks_policy_only_sets_the_endpoint_and_key_variable(monkeypatch):
    monkeypatch.delenv("FIREWORKS_API_KEY", raising=False)
    with pytest.raises(ValueError, match="FIREWORKS_API_KEY"):
        mcpsim.FireworksPolicy("accounts/fireworks/models/some-model")
    monkeypatch.setenv("FIREWORKS_API_KEY", "fw-test")
    policy = mcpsim.FireworksPolicy("accounts/fireworks/models/some-model", vision=False)
    assert str(policy.client.base_url).rstrip("/") == "https://api.fireworks.ai/inference/v1"
    assert policy.client.api_key == "fw-test"
    assert policy.describe()["policy"] == "fireworks"
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        mcpsim.OpenAIPolicy("gpt-4o")
    with pytest.raises(ValueError, match="vision"):
        mcpsim.OpenAIPolicy("m", base_url="http://127.0.0.1:1/v1", vision="sometimes")
