"""A third-party server that keeps state on disk: `@modelcontextprotocol/server-memory`, through `npx`.

Unmodified, it writes its knowledge graph to `memory.jsonl` beside its own script, which `npx` runs from
mcpsim's shared npm cache: without a private directory per instance every session, and every later run, would
share one graph, and the cache would hold it. Through mcpsim each instance sees the cache through a private view
in its own directory: sessions never see each other's entities, a new session starts empty, nothing is written
into the cache, and the instance directories are gone when the sessions end.
"""

import json
import os
import time
from pathlib import Path

import anyio
from mcp import Client

from helpers.serve import ServeProcess

MEMORY = "@modelcontextprotocol/server-memory@2026.8.31"


def npx_env_dir() -> Path | None:
    """The built npx environment of `MEMORY` in mcpsim's cache (the default one: `~/.cache/mcpsim`)."""
    root = Path(os.environ.get("MCPSIM_CACHE_DIR") or Path.home() / ".cache" / "mcpsim") / "envs"
    for record in root.glob("npx-*/mcpsim-env.json"):
        if json.loads(record.read_text()).get("source") == MEMORY:
            return record.parent
    return None


def snapshot(directory: Path) -> dict[str, tuple[int, int, int]]:
    """Every file under `directory`: (size, modification time, inode): a write, a new file or a swap shows."""
    out = {}
    for path in directory.rglob("*"):
        if path.is_file() and not path.is_symlink():
            info = path.stat()
            out[str(path.relative_to(directory))] = (info.st_size, info.st_mtime_ns, info.st_ino)
    return out


async def entity_names(client: Client) -> set[str]:
    result = await client.call_tool("read_graph", {})
    graph = result.structured_content or json.loads(result.content[0].text)
    return {entity["name"] for entity in graph["entities"]}


async def create(client: Client, name: str) -> None:
    entity = {"name": name, "entityType": "person", "observations": [f"{name} was here"]}
    result = await client.call_tool("create_entities", {"entities": [entity]})
    assert not result.is_error, result


async def two_sessions_then_a_third(url: str) -> tuple[set[str], set[str], set[str]]:
    async with Client(url, mode="legacy") as alice, Client(url, mode="legacy") as bob:
        await create(alice, "alice-secret")
        await create(bob, "bob-secret")
        seen_by_alice, seen_by_bob = await entity_names(alice), await entity_names(bob)
    async with Client(url, mode="legacy") as later:
        seen_later = await entity_names(later)
    return seen_by_alice, seen_by_bob, seen_later


def wait_for_build(serve: ServeProcess, within: float = 240) -> Path:
    deadline = time.monotonic() + within
    while (found := npx_env_dir()) is None:
        assert time.monotonic() < deadline, f"{MEMORY} was not built in {within} s:\n{serve.log()[-3000:]}"
        time.sleep(0.2)
    return found


def test_sessions_never_share_state_and_nothing_is_written_into_the_cache(serve_factory, tmp_path):
    root = tmp_path / "instances"
    serve = serve_factory("--server", f"npx -y {MEMORY}", "--instance-root", str(root), "--startup-timeout", "120")
    built = wait_for_build(serve)
    before = snapshot(built / "npm-cache")
    assert not any(name.endswith("memory.jsonl") for name in before), (
        f"a graph is already in the cache (left by an mcpsim without per-instance views?): mcpsim cache rm {built.name}"
    )

    seen_by_alice, seen_by_bob, seen_later = anyio.run(two_sessions_then_a_third, serve.mcp)
    assert seen_by_alice == {"alice-secret"}
    assert seen_by_bob == {"bob-secret"}
    assert seen_later == set()  # nothing persisted from the earlier sessions

    assert snapshot(built / "npm-cache") == before, "an instance wrote into the shared npm cache"
    deadline = time.monotonic() + 10
    while any(list(pool.iterdir()) for pool in root.iterdir()):
        assert time.monotonic() < deadline, f"instance directories left: {list(root.rglob('*'))[:10]}"
        time.sleep(0.1)
