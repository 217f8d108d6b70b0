"""The rollout client speaks 2026-07-28 by default (following mcpsim's handles), falls back to the handshake for
servers that do not speak it, and records which revision each episode used."""

import json

import pytest

import mcpsim
from helpers.rollouts import solve, standalone
from helpers.serve import ports
from mcpsim.client.content import text_of
from mcpsim.errors import ConfigError
from mcpsim.trajectory import read_recording


def solver(episode, observation):
    move = solve(text_of(observation))
    return ("lake_move", {"action": move}) if move else None


def outline(trajectory) -> list:
    return [text_of(trajectory.initial_observation)] + [
        (s.action.tool, s.action.arguments, text_of(s.observation), s.reward, s.terminated) for s in trajectory.steps
    ]


async def test_default_rollout_speaks_2026_and_plays_what_the_handshake_plays(frozen_lake_server, tmp_path):
    seeds = [3, 13, 21]
    modern = await mcpsim.rollout(
        mcpsim.make(frozen_lake_server.mcp, seeds=seeds),
        mcpsim.ScriptedPolicy(solver),
        steps=20,
        record=tmp_path / "modern.jsonl",
    )
    legacy = await mcpsim.rollout(
        mcpsim.make(frozen_lake_server.mcp, seeds=seeds, protocol="legacy"), mcpsim.ScriptedPolicy(solver), steps=20
    )
    assert [t.protocol for t in modern] == ["2026-07-28"] * 3
    assert {t.protocol for t in legacy} == {"2025-11-25"}
    assert [outline(t) for t in modern] == [outline(t) for t in legacy]
    assert all(t.error is None and t.steps for t in modern)
    for trajectory in modern:  # the handle is routing, not the environment's info
        assert all("mcpsim/handle" not in (s.meta or {}) for s in trajectory.steps)
    lines = [json.loads(line) for line in (tmp_path / "modern.jsonl").read_text().splitlines()]
    assert [line["protocol"] for line in lines if line["type"] == "episode"] == ["2026-07-28"] * 3
    assert [t.protocol for t in read_recording(tmp_path / "modern.jsonl").trajectories] == ["2026-07-28"] * 3


async def test_the_default_client_plays_a_server_that_is_not_mcpsim(tmp_path):
    """A production server alone (SDK 2.3, dual-era) names no handle: the client sends none and still plays."""
    port = ports(1500)[0]
    argv = ["-m", "mcpsim.envs.frozen_lake", "--seed", "13", "--transport", "http"]
    with standalone(argv, port, tmp_path / "lake.log") as url:
        (trajectory,) = await mcpsim.rollout(mcpsim.make(url, seeds=[13]), mcpsim.ScriptedPolicy(solver), steps=20)
    assert trajectory.error is None and trajectory.steps and trajectory.terminated
    assert trajectory.protocol == "2026-07-28"


def test_an_unknown_protocol_is_refused_up_front():
    with pytest.raises(ConfigError, match="protocol must be one of"):
        mcpsim.make("http://127.0.0.1:9/mcp", seeds=[1], protocol="2030-01-01")
