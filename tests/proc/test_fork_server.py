"""`--fork-server`: instances forked from a preloaded template behave exactly like spawned ones."""

import os
import signal
import sys
import time
from pathlib import Path

import anyio
import psutil
import pytest
from mcp import Client

from helpers.http import HTTP
from helpers.mcp_client import initial_map, lake, move
from helpers.procs import running
from helpers.serve import server_script, start_serve, survivors
from mcpsim.proc.fork_client import fork_target

TOOLBOX = f"python {server_script('toolbox.py')}"

ACTIONS = ["RIGHT", "DOWN", "RIGHT", "DOWN", "LEFT", "DOWN", "RIGHT", "RIGHT", "UP", "DOWN"]


async def trajectories(url: str, seeds: range) -> dict[int, list]:
    out: dict[int, list] = {}

    async def one(seed: int) -> None:
        async with lake(url, seed, '{"map_size": 6}') as client:
            trace: list = [await initial_map(client)]
            for action in ACTIONS:
                trace.append(await move(client, action))
            out[seed] = trace

    async with anyio.create_task_group() as tg:
        for seed in seeds:
            tg.start_soon(one, seed)
    return out


async def test_forked_instances_give_the_same_trajectories_as_spawned_ones(serve_factory):
    spawned = serve_factory("--env", "frozen_lake", "--no-fork-server")
    forked = serve_factory("--env", "frozen_lake", "--fork-server")
    seeds = range(4)
    expected = await trajectories(spawned.url, seeds)
    got = await trajectories(forked.url, seeds)
    assert got == expected
    log = forked.log()
    assert "fork server ready" in log
    # forked instances are children of the template, not of mcpsim serve
    async with lake(forked.url, 1) as client:
        await move(client, "LEFT")
        (item,) = forked.get("/api/instances").json()
        parent = psutil.Process(item["pid"]).ppid()
        assert "fork_template" in " ".join(psutil.Process(parent).cmdline())


async def test_forked_instance_crash_names_its_exit_code_and_stderr(serve_factory):
    serve = serve_factory("--server", f"python {server_script('toolbox.py')}", "--fork-server")
    async with Client(f"{serve.mcp}?seed=4", mode="legacy") as client:
        result = await client.call_tool("echo", {"text": "hi"})
        assert "seed=4" in result.content[0].text
        with pytest.raises(Exception, match="exited with code 9"):
            await client.call_tool("crash", {"code": 9})
        with pytest.raises(Exception, match="toolbox: crashing with 9"):
            await client.call_tool("echo", {"text": "after"})
    assert "fork server ready" in serve.log()


async def test_config_read_at_module_level_is_per_instance(serve_factory):
    # toolbox.py reads MCPSIM_CONFIG and MCPSIM_SEED at import: each fork must run it fresh
    serve = serve_factory("--server", f"python {server_script('toolbox.py')}", "--fork-server")
    for seed in (3, 5):
        async with Client(f"{serve.mcp}?seed={seed}", mode="legacy") as client:
            assert client.instructions == f"toolbox seed {seed}"
    response = HTTP.post(f"{serve.url}/api/instances", json={"seed": 6, "config": {"exit_at_start": 4}}, timeout=30)
    assert response.status_code == 502
    assert "exited with code 4 before it was ready" in response.json()["error"]["message"]


async def test_a_command_that_is_not_python_falls_back_to_spawn_and_says_why(serve_factory):
    # `env` runs Python, but mcpsim cannot know what a wrapper runs: a plain spawn, reported in /health too
    serve = serve_factory("--server", f"env {sys.executable} {server_script('toolbox.py')}", "--fork-server")
    async with Client(f"{serve.mcp}?seed=2", mode="legacy") as client:
        result = await client.call_tool("echo", {"text": "hi"})
        assert "seed=2" in result.content[0].text
        (item,) = serve.get("/api/instances").json()
        assert psutil.Process(item["pid"]).ppid() == serve.process.pid
    assert "fork server not used" in serve.log() and "does not run Python code" in serve.log()
    fork = serve.get("/health").json()["fork_server"]
    assert fork["enabled"] and not fork["active"] and fork["state"] == "fallback"
    assert "does not run Python code" in fork["fallback_reason"] and fork["spawned_instead"] == 1
    overview = serve.get("/api/overview").json()  # what the dashboard renders
    assert overview["health"]["fork_server"]["fallback_reason"] == fork["fallback_reason"]


async def test_an_interpreter_named_by_absolute_path_is_forked(serve_factory):
    # the shared venv's own python, by path (a venv python is a symlink: the template must run the link itself)
    assert Path(sys.executable).is_absolute()
    serve = serve_factory("--server", f"{sys.executable} {server_script('toolbox.py')}", "--fork-server")
    async with Client(f"{serve.mcp}?seed=2", mode="legacy") as client:
        result = await client.call_tool("echo", {"text": "hi"})
        assert "seed=2" in result.content[0].text
        (item,) = serve.get("/api/instances").json()
        template = psutil.Process(psutil.Process(item["pid"]).ppid())
        assert "fork_template" in " ".join(template.cmdline())
        assert template.cmdline()[0] == sys.executable
    health = serve.get("/health").json()
    tracking = health["server"]["process_tracking"]
    assert health["fork_server"] == {
        "enabled": True,
        "active": True,
        "state": "active",
        "fallback_reason": None,
        "spawned_instead": 0,
        "last_fork_error": None,
        "cgroup_placement": "clone3" if tracking == "cgroup2" else "move" if tracking.startswith("cgroup") else None,
    }


@pytest.mark.parametrize("tracking", ["cgroup2", "cgroup1:pids"])
async def test_a_forked_instance_is_in_its_tracking_group_from_birth_or_moved_there(serve_factory, tracking):
    """cgroup v2: created in its group by clone3 (no move, no wait for an RCU grace period); a v1 group refuses
    that, so the child moves itself, as before: either way it is in its group before the server runs."""
    serve = serve_factory("--server", TOOLBOX, "--fork-server", env={"MCPSIM_PROCESS_TRACKING": tracking})
    if serve.get("/health").json()["server"]["process_tracking"] != tracking:
        pytest.skip(f"{tracking} is not usable here")
    for seed in (1, 2):  # the second start too: a refused clone3 is not retried, and moves still work
        async with Client(f"{serve.mcp}?seed={seed}", mode="legacy") as client:
            await client.call_tool("echo", {"text": "hi"})
            (item,) = serve.get("/api/instances").json()
            hierarchy = "" if tracking == "cgroup2" else "pids"
            lines = Path(f"/proc/{item['pid']}/cgroup").read_text().splitlines()
            group = next(line.split(":", 2)[2] for line in lines if line.split(":")[1] == hierarchy)
            assert group.endswith(f"/i-{item['id']}"), lines
    placement = serve.get("/health").json()["fork_server"]["cgroup_placement"]
    assert placement == ("clone3" if tracking == "cgroup2" else "move")


def test_health_reports_the_fork_server_off_when_refused(frozen_lake_server, serve_factory):
    deadline = time.monotonic() + 60
    while (state := frozen_lake_server.get("/health").json()["fork_server"]["state"]) == "preparing":
        assert time.monotonic() < deadline, "the fork template did not finish preloading"
        time.sleep(0.1)
    assert state == "active"
    plain = serve_factory("--server", f"python {server_script('toolbox.py')}", "--no-fork-server")
    fork = plain.get("/health").json()["fork_server"]
    assert not fork["enabled"] and not fork["active"] and fork["state"] == "off"


@pytest.mark.parametrize(
    ("argv", "target"),
    [
        (["{python}", "-m", "pkg.server"], ("module", "pkg.server", 3)),
        (["python3.12", "server.py", "--seed", "{seed}"], ("script", "server.py", 2)),
        (["/opt/venvs/a/bin/python", "-m", "srv"], ("module", "srv", 3)),
        (["./.venv/bin/python3", "s.py"], ("script", "s.py", 2)),
        (["python3", "-c", "print(1)"], None),
        (["node", "server.js"], None),
        (["/usr/bin/env", "python", "s.py"], None),
        (["pythonista", "s.py"], None),
        (["{python}"], None),
    ],
)
def test_fork_target_recognises_python_interpreters_by_name_or_path(argv, target):
    assert fork_target(argv) == target


async def test_template_death_fails_its_sessions_clearly_and_new_ones_spawn(serve_factory):
    serve = serve_factory("--server", f"python {server_script('toolbox.py')}", "--fork-server")
    async with Client(f"{serve.mcp}?seed=1", mode="legacy") as client:
        await client.call_tool("echo", {"text": "hi"})
        (item,) = serve.get("/api/instances").json()
        template = psutil.Process(item["pid"]).ppid()
        os.kill(template, signal.SIGKILL)
        # a call that reaches the child before the pool has seen the template go and ended its children may
        # still be answered; within 5 s a call must fail, naming how the instance ended
        with pytest.raises(Exception, match=r"killed by signal 9|exited"):
            with anyio.fail_after(5):
                while True:
                    await client.call_tool("echo", {"text": "after"})
                    await anyio.sleep(0.05)
    async with Client(f"{serve.mcp}?seed=2", mode="legacy") as client:
        result = await client.call_tool("echo", {"text": "new"})
        assert "seed=2" in result.content[0].text


def test_sigkill_of_serve_with_a_fork_server_leaves_nothing(tmp_path):
    roots = tmp_path / "roots"  # where the pool makes its directory of instance directories
    toolbox = f"python {server_script('toolbox.py')}"
    serve = start_serve(tmp_path, "--server", toolbox, "--fork-server", "--instance-root", str(roots))

    async def scenario() -> list[int]:
        clients, grandchildren = [], []
        for seed in range(3):
            client = Client(f"{serve.mcp}?seed={seed}", mode="legacy")
            await client.__aenter__()
            clients.append(client)
            grandchildren.append((await client.call_tool("spawn_grandchild", {})).structured_content["result"])
        serve.descendants()
        serve.stop(signal.SIGKILL)
        return grandchildren

    grandchildren = anyio.run(scenario)
    assert len(serve.seen_descendants) >= 7  # template + 3 servers + 3 grandchildren (+ watchdog)
    assert not survivors(serve.seen_descendants, deadline_s=5)
    deadline = time.monotonic() + 5
    while any(running(pid) for pid in grandchildren):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # the instances' directories (3 of them, with what the servers wrote) go too: the watchdog removes them
    while list(roots.iterdir()):
        assert time.monotonic() < deadline, [str(p) for p in roots.rglob("*")][:10]
        time.sleep(0.05)


def _comparable(trajectory) -> list:
    """What an episode is made of, without timings: initial observation, then every step's action and outcome."""
    assert trajectory.error is None, trajectory.error
    steps = [
        (s.action.tool, s.action.arguments, s.observation, s.reward, s.terminated, s.truncated)
        for s in trajectory.steps
    ]
    return [trajectory.initial_observation, *steps]


@pytest.mark.parametrize("env", ["taxi", "lunar_lander"])
async def test_every_shipped_env_gives_the_same_episodes_forked_and_spawned(serve_factory, env):
    # FrozenLake is covered above; the fork-server default (docs/performance.md) rests on this for all three
    import mcpsim

    episodes = {}
    for flags in (("--no-fork-server",), ("--fork-server",)):
        serve = serve_factory("--env", env, *flags)
        envs = mcpsim.make(serve.mcp, seeds=[3, 11])
        got = await mcpsim.rollout(envs, mcpsim.RandomPolicy(5), steps=6, max_concurrency=2, progress=False)
        episodes[flags] = [_comparable(t) for t in got]
    assert episodes[("--no-fork-server",)] == episodes[("--fork-server",)]
    assert all(len(steps) > 1 for steps in episodes[("--no-fork-server",)])
