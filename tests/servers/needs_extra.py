"""A server that needs a package mcpsim's own environment does not have (for `--isolation venv` tests)."""

import json
import sys

import text_unidecode
from mcp.server.mcpserver import MCPServer

server = MCPServer("needs-extra", log_level="WARNING")


@server.tool()
def where() -> str:
    """Which interpreter runs this server, and the extra package's answer (as JSON)."""
    return json.dumps(
        {"python": sys.executable, "prefix": sys.prefix, "unidecode": text_unidecode.unidecode("Žluťoučký")}
    )


if __name__ == "__main__":
    server.run("stdio")
