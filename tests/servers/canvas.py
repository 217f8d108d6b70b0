"""A production-style MCP server whose observations are images (PNG made with pillow), for vision tests.

The target colour comes from the seed (`MCPSIM_SEED` or `--seed`): red, green, blue for seed % 3 = 0, 1, 2.
`look()` returns the target as a PNG swatch (plus text that does not name it), `paint(color)` returns a PNG of
the painted canvas with reward 1 and the end of the episode when it matches. The initial state resource is a
blank (white) PNG. State is kept per MCP session, so one standalone process serves independent episodes.
"""

import argparse
import base64
import io
import os
from typing import Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import CallToolResult, ImageContent, TextContent
from PIL import Image

COLORS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}
parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=int(os.environ.get("MCPSIM_SEED", "0")))
parser.add_argument("--port", type=int)
args = parser.parse_args()
target = list(COLORS)[args.seed % 3]
MAX_STEPS = 4
server = MCPServer("canvas", instructions="Paint the canvas in the colour that look() shows.", log_level="WARNING")
sessions: dict[str, dict[str, int]] = {}


def png(rgb: tuple[int, int, int], size: int = 24) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def image(rgb: tuple[int, int, int]) -> ImageContent:
    return ImageContent(type="image", data=base64.b64encode(png(rgb)).decode(), mimeType="image/png")


def advance(ctx: Context, reward: float, terminated: bool) -> dict:
    session_id = (ctx.headers or {}).get("mcp-session-id", "stdio")
    state = sessions.setdefault(session_id, {"step": 0})
    state["step"] += 1
    truncated = not terminated and state["step"] >= MAX_STEPS
    return {"mcpsim": {"reward": reward, "terminated": terminated, "truncated": truncated, "step": state["step"]}}


@server.tool()
def look(ctx: Context) -> CallToolResult:
    """Look at the colour to paint."""
    meta = advance(ctx, 0.0, False)
    return CallToolResult(content=[TextContent(type="text", text="The swatch:"), image(COLORS[target])], _meta=meta)


@server.tool()
def paint(color: Literal["red", "green", "blue"], ctx: Context) -> CallToolResult:
    """Paint the whole canvas in one colour."""
    hit = color == target
    meta = advance(ctx, 1.0 if hit else 0.0, hit)
    text = f"Painted {color}."
    return CallToolResult(content=[TextContent(type="text", text=text), image(COLORS[color])], _meta=meta)


@server.resource("game://initial_state", name="initial_state", mime_type="image/png")
def initial_state() -> bytes:
    return png((255, 255, 255))


if __name__ == "__main__":
    if args.port:
        server.run("streamable-http", port=args.port, session_idle_timeout=None)
    else:
        server.run("stdio")
