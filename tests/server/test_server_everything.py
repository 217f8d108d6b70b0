"""A third-party server through the managed server: `npx -y @modelcontextprotocol/server-everything` (stdio).

The same scenario runs twice with the official client, once straight against the server over stdio and once
through `mcpsim serve`; tools, resources, prompts and notifications must come out the same. `make test`
installs the pinned package into the project's npm cache first (`make node-deps`), so npx starts offline.
"""

import base64
import os
import re
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.types import (
    CreateMessageResult,
    ElicitResult,
    LoggingMessageNotification,
    ResourceUpdatedNotification,
    TextContent,
)

from helpers.serve import REPO

EVERYTHING = "@modelcontextprotocol/server-everything@2026.8.31"  # keep in step with EVERYTHING in the Makefile
NPM_CACHE = REPO / ".mcpsim" / "npm-cache"
NPM_ENV = {
    "npm_config_cache": str(NPM_CACHE),
    "npm_config_prefer_offline": "true",
    "npm_config_update_notifier": "false",
}


URL_ELICITATION_TOOL = "trigger-url-elicitation"
"""Registered only for clients that declare `elicitation.url`. An instance is initialized by the pool before
any client connects, with the pool's own capabilities (`elicitation: {}`), so this one tool is not offered
through mcpsim: the one known difference, left out of the comparison."""


def dump(model: Any) -> Any:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def untimed(contents: dict[str, Any]) -> dict[str, Any]:
    """Dynamic resources say when they were made ('created at 3:04:05 PM'); the rest must be identical."""
    for item in contents["contents"]:
        if "text" in item:
            item["text"] = re.sub(r"created at .*", "created at <time>", item["text"])
        if "blob" in item:
            text = re.sub(r"created at .*", "created at <time>", base64.b64decode(item["blob"]).decode())
            item["blob"] = text
    return contents


async def sampling(context, params) -> CreateMessageResult:
    return CreateMessageResult(role="assistant", content=TextContent(type="text", text="sampled"), model="test")


async def elicitation(context, params) -> ElicitResult:
    return ElicitResult(action="decline")


async def transcript(target: Any) -> dict[str, Any]:
    """What a client sees of server-everything: listings, results, and the notifications a few tools cause."""
    notes: list[Any] = []
    got_update, got_log = anyio.Event(), anyio.Event()

    async def on_message(message: Any) -> None:
        notes.append(message)
        if isinstance(message, ResourceUpdatedNotification):
            got_update.set()
        if isinstance(message, LoggingMessageNotification):
            got_log.set()

    client = Client(target, mode="legacy", sampling_callback=sampling, elicitation_callback=elicitation,
                    message_handler=on_message)  # fmt: skip
    out: dict[str, Any] = {}
    async with client:
        out["server"] = dump(client.server_info)
        out["capabilities"] = dump(client.server_capabilities)
        tools = [dump(t) for t in (await client.list_tools()).tools if t.name != URL_ELICITATION_TOOL]
        out["tools"] = sorted(tools, key=lambda t: t["name"])
        out["resources"] = dump(await client.list_resources())
        out["templates"] = dump(await client.list_resource_templates())
        out["prompts"] = dump(await client.list_prompts())
        out["echo"] = dump(await client.call_tool("echo", {"message": "through the proxy"}))
        out["sum"] = dump(await client.call_tool("get-sum", {"a": 2, "b": 40}))
        out["bad_args"] = dump(await client.call_tool("get-sum", {"a": "two"}))
        out["image"] = dump(await client.call_tool("get-tiny-image", {}))
        out["structured"] = dump(await client.call_tool("get-structured-content", {"location": "New York"}))
        out["sampled"] = dump(await client.call_tool("trigger-sampling-request", {"prompt": "hi", "maxTokens": 5}))
        first_doc = out["resources"]["resources"][0]["uri"]
        out["doc"] = dump(await client.read_resource(first_doc))
        out["dynamic_text"] = untimed(dump(await client.read_resource("demo://resource/dynamic/text/1")))
        out["dynamic_blob"] = untimed(dump(await client.read_resource("demo://resource/dynamic/blob/2")))
        out["simple_prompt"] = dump(await client.get_prompt("simple-prompt"))
        out["args_prompt"] = dump(await client.get_prompt("args-prompt", {"city": "Paris", "state": "TX"}))

        progress: list[tuple[float, float | None, str | None]] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            progress.append((value, total, message))

        args = {"duration": 0.3, "steps": 3}
        result = await client.call_tool("trigger-long-running-operation", args, progress_callback=on_progress)
        out["long_running"] = (dump(result), progress)

        await client.subscribe_resource("demo://resource/dynamic/text/1")
        await client.call_tool("toggle-subscriber-updates", {})
        with anyio.fail_after(10):
            await got_update.wait()
        await client.call_tool("toggle-subscriber-updates", {})
        await client.call_tool("toggle-simulated-logging", {})
        with anyio.fail_after(10):
            await got_log.wait()
        await client.call_tool("toggle-simulated-logging", {})
    updates = {n.params.uri for n in notes if isinstance(n, ResourceUpdatedNotification)}
    logs = [n.params for n in notes if isinstance(n, LoggingMessageNotification)]
    out["updates"] = sorted(updates)
    # the level of a simulated log line is random; its shape is not
    out["log_shape"] = sorted({(type(p.data).__name__, str(p.data).split("-level")[0] != "") for p in logs})
    return out


@pytest.fixture(scope="module")
def everything_direct():
    if not NPM_CACHE.is_dir():
        pytest.fail(f"{NPM_CACHE} is missing: run `make node-deps` (make test does) to pre-install {EVERYTHING}")
    params = StdioServerParameters(command="npx", args=["-y", EVERYTHING], env={**NPM_ENV, "PATH": os.environ["PATH"]})
    return anyio.run(transcript, params)


@pytest.mark.filterwarnings("ignore:resources/subscribe is removed")  # the 2025 protocol this server speaks has it
async def test_tools_resources_prompts_and_notifications_pass_through_unmodified(everything_direct, serve_factory):
    serve = serve_factory("--server", f"npx -y {EVERYTHING}", env=NPM_ENV)
    proxied = await transcript(f"{serve.mcp}?seed=1")
    direct = everything_direct
    # the scenario did exercise what it claims to, directly
    assert direct["long_running"][1] == [(1.0, 3.0, None), (2.0, 3.0, None), (3.0, 3.0, None)]
    assert direct["updates"] == ["demo://resource/dynamic/text/1"]
    assert "sampled" in str(direct["sampled"]["content"])  # the server's sampling request reached our callback
    tool_names = {t["name"] for t in direct["tools"]}
    assert {"echo", "get-sum", "trigger-sampling-request", "trigger-elicitation-request"} <= tool_names
    assert direct["prompts"]["prompts"] and direct["bad_args"]["isError"]
    for key in direct:
        assert proxied[key] == direct[key], f"{key} differs through mcpsim"
    assert set(proxied) == set(direct)
