"""Run a Python stdio MCP server as if it spoke only the handshake era: `server/discover` is refused (-32601)
here, so a 2026-07-28 client (or mcpsim's probe) falls back to `initialize`; every other line reaches the
server unchanged, and its output is untouched.

    python tests/servers/handshake_only.py tests/servers/conformance_server.py [ARGS...]

The server runs in this process (`runpy`), so under `mcpsim serve --fork-server` it starts as fast as the server
alone; a thread reads the real stdin and feeds the server through a pipe. The dual-era conformance server behind
it is what mcpsim's translation (a 2026 client, a handshake backend) is measured with:
`tests/node/run_conformance.py --backend-era handshake`.
"""

import json
import os
import runpy
import sys
import threading

REFUSED = b'{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"Method not found","data":"server/discover"}}\n'


def feed(real_stdin: int, to_server: int, wire: int) -> None:
    """Copy client lines to the server, answering `server/discover` itself on `wire` (a copy of the original
    stdout: the SDK's stdio server soon diverts fd 1 to stderr; one short write is atomic on a pipe)."""
    with os.fdopen(real_stdin, "rb") as lines, os.fdopen(to_server, "wb", buffering=0) as server:
        for line in lines:
            try:
                message = json.loads(line)
            except ValueError:
                message = None
            if isinstance(message, dict) and message.get("method") == "server/discover" and "id" in message:
                os.write(wire, REFUSED % json.dumps(message["id"]).encode())
                continue
            server.write(line)


def main() -> None:
    script, *args = sys.argv[1:]
    real_stdin, wire = os.dup(0), os.dup(1)
    read_end, write_end = os.pipe()
    os.dup2(read_end, 0)
    os.close(read_end)
    threading.Thread(target=feed, args=(real_stdin, write_end, wire), daemon=True).start()
    sys.argv = [script, *args]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
