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

# The SDK is imported only now: its import takes seconds under a loaded suite, and the start behaviours above must
# show within a short startup timeout all the same.
from mcp.server.mcpserver import Context, MCPServer  # noqa: E402
from mcp.types import SamplingMessage, TextContent  # noqa: E402

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


DAEMON = """
import os, signal, sys, time
ready_r, ready_w = os.pipe()
if os.fork() == 0:  # the classic double fork: a new session, then the daemon, whose parent exits at once
    os.setsid()
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.write(ready_w, str(os.getpid()).encode())
        os.close(ready_w)
        while True:
            time.sleep(3600)
    os._exit(0)
os.close(ready_w)
pid = os.read(ready_r, 32)
os.wait()
sys.stdout.write(pid.decode())
"""


@server.tool()
def spawn_daemon(keep_env: bool = True, exec_daemon: bool = True) -> int:
    """Start a daemon that escapes the process group: double fork + setsid, ignoring SIGTERM and SIGHUP; returns
    its pid once its parent has exited (it is reparented). `keep_env=False` starts it with an environment of its
    own (no MCPSIM_INSTANCE_ID); `exec_daemon=False` forks it from this process without exec."""
    if not exec_daemon:
        namespace: dict = {}
        sys.stdout.flush()
        read_end, write_end = os.pipe()
        if os.fork() == 0:  # runs the same steps in a forked copy of this server, no exec
            os.close(read_end)
            os.dup2(write_end, 1)
            os.close(write_end)
            exec(DAEMON, namespace)
            sys.stdout.flush()
            os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end) as result:
            pid = int(result.read())
        os.wait()
        return pid
    env = {**os.environ} if keep_env else {"PATH": os.environ.get("PATH", "")}
    result = subprocess.run(
        [sys.executable, "-c", DAEMON], stdin=subprocess.DEVNULL, capture_output=True, env=env, timeout=30, check=True
    )
    return int(result.stdout)


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
