"""The client reaches servers over every transport (`/mcp`, `/sse`, `stdio:COMMAND`) with the same results,
and announces upcoming seeds to a managed server so their instances start ahead."""

import sys

import mcpsim
from helpers.rollouts import solve
from mcpsim import RandomPolicy
from mcpsim.client.content import text_of


def outcome(trajectories) -> list:
    return [
        (t.env_id, t.seed, [(s.action.arguments, s.reward, s.terminated) for s in t.steps], t.error)
        for t in trajectories
    ]


def solver(episode, observation):
    move = solve(text_of(observation))
    return ("lake_move", {"action": move}) if move else None


def outline(trajectory) -> list:
    return [trajectory.seed, text_of(trajectory.initial_observation)] + [
        (s.action.arguments, text_of(s.observation), s.reward, s.terminated) for s in trajectory.steps
    ]


async def test_streamable_http_sse_and_stdio_give_the_same_episodes(frozen_lake_server):
    seeds = [3, 4, 5]
    urls = [
        frozen_lake_server.mcp,
        f"{frozen_lake_server.url}/sse",
        f"stdio:{sys.executable} -m mcpsim.envs.frozen_lake --seed {{seed}}",
        f"stdio:{sys.executable} -m mcpsim serve --stdio --env frozen_lake",  # seed via MCPSIM_SEED
    ]
    results = []
    for url in urls:
        trajectories = await mcpsim.rollout(mcpsim.make(url, seeds=seeds), RandomPolicy(7), steps=8, progress=False)
        assert all(t.error is None for t in trajectories), [t.error for t in trajectories]
        results.append(outcome(trajectories))
    assert results[1:] == [results[0]] * 3


def test_stdio_urls_are_validated():
    import pytest

    with pytest.raises(ValueError, match="stdio: needs a command"):
        mcpsim.make("stdio:", seeds=[1])
    with pytest.raises(ValueError, match="stdio:COMMAND"):
        mcpsim.make("ftp://x/mcp", seeds=[1])


async def test_a_rollout_announces_upcoming_seeds_so_they_start_warm(serve_factory):
    serve = serve_factory("--env", "frozen_lake", "--fork-server")

    def warm_hits() -> float:
        lines = serve.get("/metrics").text.splitlines()
        return float(next(line.split()[-1] for line in lines if line.startswith("mcpsim_warm_hits_total")))

    envs = mcpsim.make(serve.mcp, seeds=list(range(12)), protocol="legacy")  # warm instances are handshake-era
    trajectories = await mcpsim.rollout(envs, RandomPolicy(1), steps=3, max_concurrency=3, progress=False)
    assert all(t.error is None for t in trajectories)
    hits = warm_hits()
    assert hits >= 6  # episodes 3..11 were announced three places ahead; most found their instance warm
    seeds = list(range(20, 32))
    modern = await mcpsim.rollout(
        mcpsim.make(serve.mcp, seeds=seeds), mcpsim.ScriptedPolicy(solver), steps=20, max_concurrency=3, progress=False
    )
    assert all(t.error is None and t.protocol == "2026-07-28" for t in modern)
    assert warm_hits() >= hits + 6, "a 2026 rollout announces its seeds for its era and claims them warm"
    assert not [i for i in serve.get("/api/instances").json() if i["warm"] and i["state"] == "ready"], (
        "every 2026 warm instance was claimed: none was opened in the wrong era"
    )
    cold = await mcpsim.rollout(
        mcpsim.make(serve.mcp, seeds=seeds), mcpsim.ScriptedPolicy(solver), steps=20, announce=False, progress=False
    )
    assert [outline(t) for t in modern] == [outline(t) for t in cold]  # warm or cold: the same seeded episodes
    assert any(t.steps for t in modern)
    quiet = await mcpsim.rollout(
        mcpsim.make(serve.mcp, seeds=[50, 51]), RandomPolicy(1), steps=2, announce=False, progress=False
    )
    assert all(t.error is None for t in quiet)
