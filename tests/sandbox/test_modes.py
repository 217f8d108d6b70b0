"""The sandbox with the other start modes (a Node project's installed copy, the warm pool, an isolated venv),
and its refusals: no bwrap on PATH, a bad level or limit - each one clear line, before anything runs."""

import json
import os
import subprocess
import sys
import time

import anyio
import gymnasium
import numpy
import pytest
from mcp import Client

from helpers.mcp_client import move
from helpers.serve import REPO, server_script

JS_PROJECT = REPO / "examples" / "js_frozen_lake"


def serve_refusal(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcpsim", "serve", "--port", "1", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_serve_refuses_to_start_without_bwrap_rather_than_run_unsandboxed(tmp_path):
    result = serve_refusal("--sandbox", "strict", env={"PATH": str(tmp_path)})
    assert result.returncode == 2
    assert "--sandbox strict needs bwrap" in result.stderr and "make sandbox-tools" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--sandbox", "sealed"), "argument --sandbox: invalid choice: 'sealed'"),
        (("--sandbox", "standard", "--limit-files", "3"), "--limit-files must be an integer of at least 16"),
        (("--sandbox", "strict", "--limit-memory", "12Q"), "--limit-memory: '12Q' is not a size"),
        (("--sandbox", "strict", "--limit-pids", "2"), "--limit-pids must be an integer of at least 4"),
        (("--sandbox", "strict", "--limit-cpu-seconds", "soon"), "--limit-cpu-seconds: 'soon' is not a whole number"),
    ],
)
def test_bad_sandbox_flags_are_refused_in_one_line(args, message):
    result = serve_refusal(*args)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


async def test_a_node_project_and_warm_instances_run_sandboxed(serve_factory, tmp_path):
    if not (JS_PROJECT / "node_modules").exists():
        pytest.skip("the example's node_modules (make node-deps) is missing")
    env = {"MCPSIM_CACHE_DIR": str(tmp_path / "cache")}
    serve = serve_factory("--server", str(JS_PROJECT), "--sandbox", "strict", "--warm", "2", env=env)
    deadline = time.monotonic() + 120  # the project's copy is installed first
    while sum(item["warm"] and item["state"] == "ready" for item in serve.get("/api/instances").json()) < 2:
        assert time.monotonic() < deadline, serve.log()[-3000:]
        await anyio.sleep(0.1)
    async with Client(f"{serve.mcp}", mode="legacy") as client:  # no seed: served by a warm instance
        text, meta, is_error = await move(client, "LEFT")
        assert not is_error and meta["step"] == 1, text
        listing = serve.get("/api/instances").json()
    assert listing and all(item["sandbox"]["level"] == "strict" for item in listing)
    assert "claimed by a session" in serve.log()


async def test_an_npx_package_runs_sandboxed_from_its_read_only_cache(serve_factory):
    from server.test_server_everything import EVERYTHING, NPM_CACHE, NPM_ENV

    if not NPM_CACHE.exists():
        pytest.skip(f"{NPM_CACHE} is missing (make node-deps)")
    serve = serve_factory("--server", f"npx -y {EVERYTHING}", "--sandbox", "strict", env=NPM_ENV, ready_timeout=120)
    async with Client(f"{serve.mcp}?seed=1", mode="legacy") as client:
        result = await client.call_tool("echo", {"message": "from the sandbox"})
        assert not result.is_error and "from the sandbox" in result.content[0].text
        (item,) = serve.get("/api/instances").json()
    assert item["sandbox"]["level"] == "strict"


async def test_a_venv_isolated_server_runs_sandboxed_with_its_venv_read_only(serve_factory, tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"mcp>=2.3,<3\ngymnasium=={gymnasium.__version__}\nnumpy=={numpy.__version__}\n")
    cache = tmp_path / "cache"
    args = ("--server", f"python {server_script('venv_lake.py')} --seed {{seed}}", "--isolation", "venv")
    args += ("--requirements", str(requirements), "--startup-timeout", "300")
    actions = ["RIGHT", "DOWN", "RIGHT", "DOWN", "LEFT", "DOWN"]

    async def run(serve, where: bool) -> tuple[list, list[dict]]:
        steps, places = [], []
        for seed in range(2):
            async with Client(f"{serve.mcp}?seed={seed}", mode="legacy") as client:
                steps.append([(await client.call_tool("lake_move", {"action": a})).content[0].text for a in actions])
                if where:  # (not unsandboxed: as root it would write into the cache)
                    places.append(json.loads((await client.call_tool("where", {})).content[0].text))
        return steps, places

    plain = serve_factory(*args, env={"MCPSIM_CACHE_DIR": str(cache)})
    expected, _ = await run(plain, where=False)
    plain.stop()
    boxed = serve_factory(*args, "--sandbox", "strict", env={"MCPSIM_CACHE_DIR": str(cache)})
    got, places = await run(boxed, where=True)
    assert got == expected
    assert len({step for steps in got for step in steps}) > 1  # the steps say something
    for place in places:
        assert place["prefix"].startswith(str(cache / "envs" / "venv-")), place
        assert place["write"] == "refused: Read-only file system", place  # bound read-only, not only sealed
    assert "reusing environment venv-" in boxed.log() and "sandbox strict" in boxed.log()
