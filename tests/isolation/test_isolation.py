"""`--isolation venv|conda`, Node projects and npx: environments built once, shared, cleaned, checked."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client

from helpers.http import HTTP
from helpers.serve import server_script, start_serve
from mcpsim.errors import StartError
from mcpsim.isolation import EnvCache
from mcpsim.isolation.python_envs import CondaBuilder, find_conda

EXTRA = "text-unidecode==1.3"


def mcpsim(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcpsim", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MCPSIM_CACHE_DIR": str(cache)},
    )


@pytest.fixture
def requirements(tmp_path) -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text(f"mcp>=2.3,<3\n{EXTRA}\n")
    return path


async def call_where(url: str, seed: int) -> dict:
    async with Client(f"{url}/mcp?seed={seed}", mode="legacy") as client:
        result = await client.call_tool("where", {})
        assert not result.is_error, result.content
        return json.loads(result.content[0].text)


async def test_venv_isolation_builds_once_and_instances_use_it(tmp_path, requirements, serve_factory):
    assert importlib.util.find_spec("text_unidecode") is None, "the test needs a package mcpsim's env lacks"
    cache = tmp_path / "cache"
    env = {"MCPSIM_CACHE_DIR": str(cache)}
    args = (
        "--server",
        f"python {server_script('needs_extra.py')}",
        "--isolation",
        "venv",
        "--requirements",
        str(requirements),
    )
    # two servers on one cache and two sessions each, all at once: one build
    first, second = serve_factory(*args, "--no-fork-server", env=env), serve_factory(*args, "--fork-server", env=env)
    results: list[dict] = []

    async def session(url: str, seed: int) -> None:
        results.append(await call_where(url, seed))

    async with anyio.create_task_group() as tg:
        for seed, serve in enumerate([first, first, second, second]):
            tg.start_soon(session, serve.url, seed)
    assert len(results) == 4
    assert all(r["unidecode"] == "Zlutoucky" for r in results)
    prefixes = {r["prefix"] for r in results}
    assert len(prefixes) == 1 and prefixes.pop().startswith(str(cache / "envs" / "venv-"))
    logs = first.log() + second.log()
    assert logs.count("building venv environment") == 1
    assert "reusing environment venv-" in logs
    health = first.get("/health").json()["environment"]
    assert health["state"] == "ready" and health["environments"][0].startswith("venv-")
    assert 'mcpsim_environment_build_seconds_count{kind="venv"}' in (
        first.get("/metrics").text + second.get("/metrics").text
    )

    listing = mcpsim("envs", "list", "--json", cache=cache)
    (entry,) = json.loads(listing.stdout)
    assert entry["kind"] == "venv" and entry["source"] == str(requirements.resolve())
    assert entry["size_bytes"] > 1_000_000 and entry["build_seconds"] > 0
    check = mcpsim("envs", "check", cache=cache)
    assert check.returncode == 0 and "imported" in check.stdout and "text_unidecode" in check.stdout


def test_envs_check_gc_and_rm_act_and_verify(tmp_path, requirements):
    cache = tmp_path / "cache"
    serve = start_serve(
        tmp_path,
        "--server",
        f"python {server_script('needs_extra.py')}",
        "--isolation",
        "venv",
        "--requirements",
        str(requirements),
        env={"MCPSIM_CACHE_DIR": str(cache)},
    )
    try:
        assert anyio.run(call_where, serve.url, 1)["unidecode"] == "Zlutoucky"
    finally:
        serve.stop()
    (name,) = [path.name for path, _ in EnvCache(cache).entries()]
    # break the environment: the check must notice (unlink first: uv hardlinks files from its own cache)
    package = next((cache / "envs" / name).rglob("text_unidecode/__init__.py"))
    package.unlink()
    package.write_text("raise ImportError('broken on purpose')\n")
    broken = mcpsim("envs", "check", name, cache=cache)
    assert broken.returncode == 1 and "broken on purpose" in broken.stdout
    assert mcpsim("envs", "gc", "--older-than-days", "30", cache=cache).stdout.count("removed ") == 0
    gc = mcpsim("envs", "gc", "--older-than-days", "0", cache=cache)
    assert gc.returncode == 0 and f"removed {name}" in gc.stdout
    assert not (cache / "envs" / name).exists()
    assert mcpsim("envs", "rm", "nope", cache=cache).returncode == 2


async def test_a_requirements_file_that_cannot_install_is_a_clear_error_and_leaves_nothing(tmp_path, serve_factory):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("this-package-does-not-exist-mcpsim-test==1.0\n")
    cache = tmp_path / "cache"
    serve = serve_factory(
        "--server",
        f"python {server_script('needs_extra.py')}",
        "--isolation",
        "venv",
        "--requirements",
        str(requirements),
        env={"MCPSIM_CACHE_DIR": str(cache)},
    )
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    response = HTTP.post(
        f"{serve.mcp}?seed=1", json=init, timeout=300, headers={"accept": "application/json, text/event-stream"}
    )
    assert response.status_code == 502
    message = response.json()["error"]["message"]
    assert "uv pip install failed" in message and "this-package-does-not-exist-mcpsim-test" in message
    assert serve.get("/health").json()["environment"]["state"] == "failed"
    assert "env.build.failed" in serve.log() or "failed to build" in serve.log()
    leftovers = [p.name for p in (cache / "envs").iterdir() if not p.name.startswith(".")]
    assert leftovers == [], f"half-built environments left in the cache: {leftovers}"


def test_conda_command_lines_and_missing_executable(tmp_path, monkeypatch):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("six\n")
    staging = tmp_path / "env"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    plan = CondaBuilder(requirements, "/opt/conda/bin/conda").plan(staging)
    assert plan == [
        ["/opt/conda/bin/conda", "create", "-y", "-p", str(staging), f"python={version}", "pip"],
        [str(staging / "bin" / "python"), "-m", "pip", "install", "-r", str(requirements)],
    ]
    yml = tmp_path / "environment.yml"
    yml.write_text("dependencies: [python=3.11, pip]\n")
    assert CondaBuilder(yml, "/x/mamba").plan(staging) == [
        ["/x/mamba", "env", "create", "-y", "-p", str(staging), "-f", str(yml)]
    ]
    assert CondaBuilder(yml, "/x/micromamba").plan(staging) == [
        ["/x/micromamba", "create", "-y", "-p", str(staging), "-f", str(yml)]
    ]
    # instances run the env's python directly, never `conda run`
    assert CondaBuilder(requirements, "/x/conda").python(staging) == str(staging / "bin" / "python")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(StartError, match="micromamba, mamba or conda"):
        find_conda()
    result = subprocess.run(
        [sys.executable, "-m", "mcpsim", "serve", "--isolation", "conda", "--requirements", str(requirements)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PATH": str(tmp_path)},
    )
    assert result.returncode == 2 and "needs micromamba, mamba or conda on PATH" in result.stderr


@pytest.mark.skipif(
    not any(shutil.which(n) for n in ("micromamba", "mamba", "conda")),
    reason="no conda/mamba/micromamba on this machine (CI machines reach no conda channel)",
)
async def test_real_conda_isolation(tmp_path, serve_factory):  # pragma: no cover - needs conda
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"mcp>=2.3,<3\n{EXTRA}\n")
    serve = serve_factory(
        "--server",
        f"python {server_script('needs_extra.py')}",
        "--isolation",
        "conda",
        "--requirements",
        str(requirements),
        "--startup-timeout",
        "900",
        env={"MCPSIM_CACHE_DIR": str(tmp_path / "cache")},
    )
    result = await call_where(serve.url, 1)
    assert result["unidecode"] == "Zlutoucky" and "conda-" in result["prefix"]


def test_serve_refuses_bad_isolation_arguments(tmp_path):
    for args, needle in (
        (["--isolation", "venv"], "needs --requirements"),
        (["--isolation", "venv", "--requirements", str(tmp_path / "missing.txt")], "does not exist"),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "mcpsim", "serve", *args], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 2 and needle in result.stderr, result.stderr
