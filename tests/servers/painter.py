"""A production-style MCP server whose tool returns a PNG frame, for the dashboard's thumbnails and the logs.

`paint(shade)` answers with a text block and a 64x48 PNG filled with the seed's colour at that shade, and
writes one line to stderr (so tests can find the instance's drained stderr in the log). `refuse()` answers
with an isError result; `burn(seconds)` keeps a core busy. Config (MCPSIM_CONFIG): `exit_at_start` (code).
"""

import io
import json
import os
import sys
import time

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.utilities.types import Image
from mcp.types import TextContent
from PIL import Image as PILImage

seed = int(os.environ.get("MCPSIM_SEED", "0"))
config = json.loads(os.environ.get("MCPSIM_CONFIG") or "{}")
if "exit_at_start" in config:
    print("painter: exiting at start as configured", file=sys.stderr, flush=True)
    sys.exit(int(config["exit_at_start"]))
server = MCPServer("painter", log_level="WARNING")


def frame(shade: int) -> bytes:
    colour = ((seed * 40) % 256, shade % 256, 255 - shade % 256)
    buffer = io.BytesIO()
    PILImage.new("RGB", (64, 48), colour).save(buffer, format="PNG")
    return buffer.getvalue()


@server.tool()
def paint(shade: int) -> list[TextContent | Image]:
    """Return a frame of the given shade (0-255)."""
    print(f"painter seed={seed}: painting shade {shade}", file=sys.stderr, flush=True)
    return [TextContent(type="text", text=f"shade {shade}"), Image(data=frame(shade), format="png")]


@server.tool()
def refuse() -> str:
    """Always fail (an isError tool result)."""
    raise ValueError("painter refuses on purpose")


@server.tool()
def burn(seconds: float) -> str:
    """Spin on the CPU for `seconds`."""
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
    return f"burnt {seconds} s"


if __name__ == "__main__":
    server.run("stdio")
