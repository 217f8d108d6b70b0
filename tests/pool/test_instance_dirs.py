"""Every instance's private, empty directory (`{instance_dir}`, `MCPSIM_INSTANCE_DIR`), with `HOME` and
`TMPDIR` inside it unless `--keep-home`, removed when the instance ends (`tests/servers/stateful.py` keeps its
state in `$HOME`, as a careless production server would)."""

import json
import time
from pathlib import Path

import anyio
from mcp import Client

from helpers.serve import server_script


async def call(client: Client, tool: str, **args: str) -> str:
    result = await client.call_tool(tool, args)
    assert not result.is_error, result
    return result.content[0].text


async def two_sessions(url: str) -> tuple[dict, dict, str, str]:
    async with Client(f"{url}?seed=1", mode="legacy") as a, Client(f"{url}?seed=1", mode="legacy") as b:
        seen_a, seen_b = json.loads(await call(a, "where")), json.loads(await call(b, "where"))
        await call(a, "write", name="state.txt", text="only a's")
        return seen_a, seen_b, await call(a, "read", name="state.txt"), await call(b, "read", name="state.txt")


def test_each_instance_has_its_own_empty_directory_removed_at_its_end(serve_factory, tmp_path):
    root = tmp_path / "instances"
    serve = serve_factory(
        "--server",
        f"python {server_script('stateful.py')} --data {{instance_dir}}",
        "--instance-root",
        str(root),
        env={"XDG_CACHE_HOME": str(tmp_path / "shared-cache")},
    )
    seen_a, seen_b, read_a, read_b = anyio.run(two_sessions, serve.mcp)
    for seen in (seen_a, seen_b):
        directory = Path(seen["instance_dir"])
        assert directory.parent.parent == root and seen["data_arg"] == str(directory)
        assert (seen["home"], seen["tmpdir"]) == (str(directory / "home"), str(directory / "tmp"))
        assert seen["started_with"] == {"home": [], "tmp": []}
        assert seen["mode"] == "0o700"
        assert seen["xdg_cache_home"] is None  # tools fall back to the private HOME
    assert seen_a["instance_dir"] != seen_b["instance_dir"]
    assert (read_a, read_b) == ("only a's", "<missing>")
    deadline = time.monotonic() + 10
    while Path(seen_a["instance_dir"]).exists() or Path(seen_b["instance_dir"]).exists():
        assert time.monotonic() < deadline, "an instance directory outlived its instance"
        time.sleep(0.1)
    serve.stop()
    assert list(root.iterdir()) == []  # the pool's own root went with it


def test_keep_home_keeps_the_callers_home_tmpdir_and_xdg(serve_factory, tmp_path):
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    env = {"HOME": str(home), "TMPDIR": str(tmp), "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    serve = serve_factory("--server", f"python {server_script('stateful.py')}", "--keep-home", env=env)

    async def where() -> dict:
        async with Client(serve.mcp, mode="legacy") as client:
            return json.loads(await call(client, "where"))

    seen = anyio.run(where)
    assert (seen["home"], seen["tmpdir"], seen["xdg_cache_home"]) == (str(home), str(tmp), str(tmp_path / "xdg"))
    assert seen["instance_dir"] is not None and seen["data_arg"] is None
