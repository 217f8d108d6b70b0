"""A stdio server that keeps state on disk where a careless production server would: in `$HOME`, `$TMPDIR` and a
directory given on its command line (`--data DIR`, from mcpsim's `{instance_dir}`). Tools: `where` (what it sees),
`write`/`read` a file in `$HOME`."""

import json
import os
import sys
from pathlib import Path

from mcp.server.mcpserver import MCPServer

data = sys.argv[sys.argv.index("--data") + 1] if "--data" in sys.argv else None
server = MCPServer("stateful", log_level="WARNING")
started_with = {
    name: sorted(child.name for child in Path(path).iterdir()) if path and Path(path).is_dir() else None
    for name, path in (("home", os.environ.get("HOME")), ("tmp", os.environ.get("TMPDIR")))
}


@server.tool()
def where() -> str:
    """What this instance sees: its directories, their contents at start, and the XDG variables it inherited."""
    return json.dumps(
        {
            "home": os.environ.get("HOME"),
            "tmpdir": os.environ.get("TMPDIR"),
            "instance_dir": os.environ.get("MCPSIM_INSTANCE_DIR"),
            "data_arg": data,
            "started_with": started_with,
            "xdg_cache_home": os.environ.get("XDG_CACHE_HOME"),
            "mode": oct(Path(os.environ["MCPSIM_INSTANCE_DIR"]).stat().st_mode & 0o777)
            if os.environ.get("MCPSIM_INSTANCE_DIR")
            else None,
        }
    )


@server.tool()
def write(name: str, text: str) -> str:
    (Path.home() / name).write_text(text)
    return "ok"


@server.tool()
def read(name: str) -> str:
    path = Path.home() / name
    return path.read_text() if path.exists() else "<missing>"


if __name__ == "__main__":
    server.run("stdio")
