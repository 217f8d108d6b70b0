"""Bounded names for metric labels and for what the dashboard keeps.

A client chooses the method and the tool name of every request it sends, so neither may become a Prometheus
label (or a string kept for the dashboard) as sent: 6,000 calls with unique 2 kB names once made `/metrics`
262 MB, kept after the session ended. A method is its own label when the MCP specification defines it as a
client request (the SDK's list, any protocol version), else `other`. A tool is its own label when a backend of
this pool declared it in a `tools/list` result, else `other`; at most `MAX_TOOLS` names are kept per pool, each
at most `MAX_NAME` characters (the specification's limit for tool names), first declared first kept. So the
series of one labelled metric number at most (methods + 1) + (MAX_TOOLS + 1).
"""

from typing import Any

from mcp_types.methods import SPEC_CLIENT_METHODS

MAX_TOOLS = 64
MAX_NAME = 128
OTHER = "other"


def method_label(method: str) -> str:
    return method if method in SPEC_CLIENT_METHODS else OTHER


def shorten(text: str, limit: int = MAX_NAME) -> str:
    """A client-chosen name cut to `limit` characters, for log lines and kept error entries."""
    return text if len(text) <= limit else text[:limit] + "..."


class DeclaredTools:
    """The tool names the pool's backends declared, learned from every `tools/list` result that passes by."""

    def __init__(self, limit: int = MAX_TOOLS) -> None:
        self.limit = limit
        self.names: set[str] = set()
        self.listed = False
        """Whether any `tools/list` result has been seen."""
        self.asked = False
        """Whether an instance's handshake has asked for the list (once per pool, whatever the answer)."""

    def should_ask(self) -> bool:
        """True once, for the first handshake while nothing has been listed: it asks for the list itself."""
        if self.listed or self.asked:
            return False
        self.asked = True
        return True

    def learn(self, result: dict[str, Any]) -> None:
        self.listed = True
        tools = result.get("tools")
        if not isinstance(tools, list):
            return
        for tool in tools:
            if len(self.names) >= self.limit:
                return
            name = tool.get("name") if isinstance(tool, dict) else None
            if isinstance(name, str) and 0 < len(name) <= MAX_NAME:
                self.names.add(name)

    def label(self, tool: str | None) -> str:
        """The label of a `tools/call` of `tool`: its name if declared, else `other`."""
        return tool if tool is not None and tool in self.names else OTHER
