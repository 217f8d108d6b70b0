"""A misbehaving stdio MCP server, written without the SDK so that it can break the protocol on request.

It answers the handshake and `tools/list` properly; `tools/call` of `malformed` answers
`{"isError": true, "content": 5}`, of `huge` answers with a line of `mb` megabytes (arguments), of `well`
answers a proper text result with the call count, so a test can see the instance survived its misdeeds.
"""

import json
import sys

TOOLS = [
    {"name": name, "description": name, "inputSchema": {"type": "object"}} for name in ("well", "malformed", "huge")
]
calls = 0


def answer(request_id, result) -> None:
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": request_id, "result": result}) + "\n")
    sys.stdout.flush()


for line in sys.stdin:
    message = json.loads(line)
    method, request_id = message.get("method"), message.get("id")
    if request_id is None:
        continue
    if method == "initialize":
        answer(request_id, {
            "protocolVersion": message["params"]["protocolVersion"],
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "rogue", "version": "1"},
        })  # fmt: skip
    elif method == "tools/list":
        answer(request_id, {"tools": TOOLS})
    elif method == "tools/call":
        calls += 1
        name = message["params"]["name"]
        if name == "malformed":
            answer(request_id, {"isError": True, "content": 5})
        elif name == "huge":
            megabytes = message["params"].get("arguments", {}).get("mb", 8)
            answer(request_id, {"content": [{"type": "text", "text": "x" * (megabytes * 2**20)}]})
        else:
            answer(request_id, {"content": [{"type": "text", "text": f"calls {calls}"}]})
    else:
        sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": request_id, "error": {"code": -32601, "message": method}}))
        sys.stdout.write("\n")
        sys.stdout.flush()
