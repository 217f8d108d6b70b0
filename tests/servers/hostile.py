"""A hostile MCP server for the sandbox tests: each tool tries something a server nobody vetted might do.

Probing tools (`connect`, `fast_open`, `listen_loopback`, `read`, `write`, `listdir`, `processes`) answer with
what happened ("ok: ..." or "refused: <error>"), so a test sees each attempt's outcome. Attack tools (`fork_bomb`,
`memory_hog`, `cpu_spin`, `write_big`) behave like a server that crashes on the error it provokes: the
exception goes to stderr and the process exits, so the session's error must name the limit. `echo` is the
well-behaved tool a second session keeps calling meanwhile.
"""

import os
import socket
import sys
import time
import traceback
from pathlib import Path

from mcp.server.mcpserver import MCPServer

server = MCPServer("hostile", log_level="WARNING")
HOME = Path(os.environ.get("MCPSIM_INSTANCE_DIR") or os.environ.get("HOME", "/tmp"))


def _try(action) -> str:
    try:
        return f"ok: {action()}"
    except Exception as exc:
        return f"refused: {exc!r}"


def _die(exc: BaseException) -> None:
    traceback.print_exception(exc, file=sys.stderr)
    sys.stderr.flush()
    os._exit(1)


@server.tool()
def echo(text: str) -> str:
    """The well-behaved tool."""
    return f"{text} pid={os.getpid()}"


@server.tool()
def connect(host: str, port: int) -> str:
    """Open a TCP connection to host:port."""
    return _try(lambda: socket.create_connection((host, port), timeout=2).close() or "connected")


@server.tool()
def connect_or_die(host: str, port: int) -> str:
    """Connect, and crash like a server that needed the network."""
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as exc:
        _die(exc)
    return "connected"


@server.tool()
def fast_open(host: str, port: int) -> str:
    """Open a TCP connection without connect(): TCP fast open (sendto with MSG_FASTOPEN)."""

    def run() -> str:
        with socket.socket() as sock:
            sock.settimeout(2)
            sock.sendto(b"x", socket.MSG_FASTOPEN, (host, port))
            return "sent"

    return _try(run)


@server.tool()
def listen_loopback() -> str:
    """Listen on 127.0.0.1 and connect to itself (a server's own loopback)."""

    def run() -> str:
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            socket.create_connection(listener.getsockname(), timeout=2).close()
            return f"listened on {listener.getsockname()[1]}"

    return _try(run)


@server.tool()
def read(path: str) -> str:
    """Read a file."""
    return _try(lambda: Path(path).read_text())


@server.tool()
def write(path: str) -> str:
    """Create a file."""
    return _try(lambda: Path(path).write_text("planted by a hostile server"))


@server.tool()
def listdir(path: str) -> str:
    """List a directory."""
    return _try(lambda: sorted(entry.name for entry in Path(path).iterdir()))


@server.tool()
def processes() -> str:
    """Every process visible in /proc, with its command line."""

    def run() -> list[str]:
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    found.append((entry / "cmdline").read_text().replace("\0", " "))
                except OSError:
                    continue
        return found

    return _try(run)


@server.tool()
def work_dir() -> str:
    """Write a file in the instance's own work dir; return its path."""
    path = HOME / "mine.txt"
    return _try(lambda: path.write_text("mine") and str(path))


@server.tool()
def fork_bomb() -> str:
    """Fork sleeping children until the system refuses."""
    try:
        for _ in range(100_000):
            if os.fork() == 0:
                time.sleep(60)
                os._exit(0)
    except OSError as exc:
        _die(exc)
    return "never refused"


@server.tool()
def memory_hog(gigabytes: int = 4) -> str:
    """Allocate (and touch) that many gigabytes."""
    try:
        block = bytearray(gigabytes << 30)
        block[:: 1 << 12] = b"x" * len(block[:: 1 << 12])
    except MemoryError as exc:
        _die(exc)
    return "allocated"


@server.tool()
def cpu_spin() -> str:
    """Spin forever."""
    while True:
        pass


@server.tool()
def write_big(gigabytes: int = 10) -> str:
    """Write a file of that many gigabytes into the work dir."""
    chunk = b"x" * (1 << 20)
    try:
        with (HOME / "big.bin").open("wb") as f:
            for _ in range(gigabytes << 10):
                f.write(chunk)
    except OSError as exc:
        _die(exc)
    return "written"


if __name__ == "__main__":
    # `--transport http|sse --port N`: the same tools behind an HTTP backend (the sandbox's relay)
    transport = sys.argv[sys.argv.index("--transport") + 1] if "--transport" in sys.argv else "stdio"
    if transport == "stdio":
        server.run()
    else:
        port = int(sys.argv[sys.argv.index("--port") + 1])
        server.run("sse" if transport == "sse" else "streamable-http", host="127.0.0.1", port=port)
