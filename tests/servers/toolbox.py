"""A production-style MCP server for tests: real SDK server, behaviours chosen by tool calls and MCPSIM_CONFIG.

Config keys (as JSON in MCPSIM_CONFIG): `exit_at_start` (exit code, after a line on stderr), `never_ready`
(sleep instead of serving), `start_delay` (seconds before serving), `stderr_at_start_kb`.
Tools cover every message kind the proxy must forward.
"""

import json
import os
import subprocess
import sys
import time

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import SamplingMessage, TextContent

config = json.loads(os.environ.get("MCPSIM_CONFIG") or "{}")
seed = int(os.environ.get("MCPSIM_SEED", "0"))

if "exit_at_start" in config:
    print("toolbox: exiting at start as configured", file=sys.stderr, flush=True)
    sys.exit(int(config["exit_at_start"]))
if config.get("start_delay"):
    time.sleep(float(config["start_delay"]))
if config.get("never_ready"):
    print("toolbox: never becoming ready", file=sys.stderr, flush=True)
    time.sleep(3600)
if config.get("stderr_at_start_kb"):
    for _ in range(int(config["stderr_at_start_kb"])):
        sys.stderr.write("s" * 1023 + "\n")
    sys.stderr.flush()

server = MCPServer("toolbox", instructions=f"toolbox seed {seed}", log_level="WARNING")
counter = {"calls": 0}


@server.tool()
def echo(text: str) -> str:
    """Return the text, with this instance's seed and call count."""
    counter["calls"] += 1
    return f"{text} seed={seed} calls={counter['calls']} pid={os.getpid()}"


@server.tool()
def crash(code: int = 7) -> str:
    """Exit the process at once with `code` (no answer is sent)."""
    print(f"toolbox: crashing with {code}", file=sys.stderr, flush=True)
    os._exit(code)


@server.tool()
async def slow(seconds: float) -> str:
    import anyio

    await anyio.sleep(seconds)
    return f"slept {seconds}"


@server.tool()
def chatty(kb: int = 1024) -> str:
    """Write `kb` kilobytes to stderr in 1 kB lines, then answer."""
    line = "c" * 1023 + "\n"
    sys.stderr.write(line * kb)
    sys.stderr.flush()
    return f"wrote {kb} kB"


@server.tool()
async def progress(steps: int, ctx: Context, delay: float = 0.0) -> str:
    """Report progress `steps` times (waiting `delay` seconds before each) and log a message at each step."""
    import anyio

    for i in range(steps):
        await anyio.sleep(delay)
        await ctx.report_progress(i + 1, steps, f"step {i + 1}")
        await ctx.info(f"progress log {i + 1}")
    return "done"


@server.tool()
async def change_tools(ctx: Context) -> str:
    """Add a tool and announce it with notifications/tools/list_changed."""
    server.add_tool(lambda: "new", name="added_tool", description="added at run time")
    await ctx.session.send_tool_list_changed()
    return "changed"


@server.tool()
async def ask_model(prompt: str, ctx: Context) -> str:
    """Ask the client's model via sampling/createMessage and return its text."""
    result = await ctx.session.create_message(
        [SamplingMessage(role="user", content=TextContent(type="text", text=prompt))], max_tokens=20
    )
    return f"model said: {result.content.text}"


@server.tool()
def spawn_grandchild() -> int:
    """Start a process that ignores SIGTERM and stdin EOF (only a group SIGKILL ends it); return its pid."""
    child = subprocess.Popen(
        [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(3600)"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return child.pid


@server.resource("data://info", name="info", description="Static info about this instance")
def info() -> str:
    return json.dumps({"seed": seed, "pid": os.getpid()})


@server.resource("data://items/{item}", name="item")
def item(item: str) -> str:
    return f"item {item}"


@server.prompt()
def greeting(name: str) -> str:
    """A prompt with one argument."""
    return f"Hello {name}, seed {seed}"


if __name__ == "__main__":
    if "--port" in sys.argv:
        port = int(sys.argv[sys.argv.index("--port") + 1])
        server.run("streamable-http", port=port, session_idle_timeout=None)
    else:
        server.run("stdio")
