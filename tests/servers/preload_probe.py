"""A server whose helper module (`preload_probe_helper.py`) records, when imported, the process, user and
capabilities it was imported with; `facts` reports them beside the server's own pid."""

import json
import os

import preload_probe_helper as helper
from mcp.server.mcpserver import MCPServer

server = MCPServer("preload-probe", log_level="WARNING")


@server.tool()
def facts() -> str:
    """Where and as whom the helper module's import ran."""
    return json.dumps(
        {"pid": os.getpid(), "imported_by": helper.IMPORTED_BY, "resuid": helper.RESUID, "caps": helper.CAPABILITIES}
    )


if __name__ == "__main__":
    server.run()
