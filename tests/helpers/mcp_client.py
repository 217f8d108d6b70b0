"""Small helpers over the official MCP client for tests."""

from typing import Any

from mcp import Client
from mcp.types import CreateMessageResult, ElicitResult, TextContent


def lake(url: str, seed: int | None = None, config: str | None = None) -> Client:
    query = []
    if seed is not None:
        query.append(f"seed={seed}")
    if config is not None:
        from urllib.parse import quote

        query.append(f"config={quote(config)}")
    return Client(f"{url}/mcp" + ("?" + "&".join(query) if query else ""), mode="legacy")


async def initial_map(client: Client) -> str:
    result = await client.read_resource("game://initial_state")
    return result.contents[0].text


async def move(client: Client, action: str) -> tuple[str, dict[str, Any], bool]:
    result = await client.call_tool("lake_move", {"action": action})
    text = "\n".join(block.text for block in result.content if block.type == "text")
    return text, (result.meta or {}).get("mcpsim", {}), bool(result.is_error)


ACCEPT = {"accept": "application/json, text/event-stream"}
"""What a streamable-HTTP client must accept; add `content-type` for POSTs that httpx does not mark as JSON."""
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
"""A raw `initialize` request, for tests that speak HTTP without the SDK client."""


def answer_of(response: Any) -> dict[str, Any]:
    """The JSON-RPC answer in an HTTP response to a POSTed request: its JSON body, or, from an SSE body, the last
    event that carries an `id` (what comes before it are the server's notifications and requests meanwhile)."""
    import json

    if not response.headers.get("content-type", "").startswith("text/event-stream"):
        return response.json()
    messages = [
        json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:") and line[5:].strip()
    ]
    answers = [message for message in messages if "id" in message and ("result" in message or "error" in message)]
    assert answers, f"no answer in the SSE body: {response.text[:500]}"
    return answers[-1]


async def model(context: Any, params: Any) -> CreateMessageResult:
    """A sampling callback whose "model" answers with the prompt in capitals: what the server got is visible."""
    prompt = params.messages[0].content.text
    return CreateMessageResult(role="assistant", content=TextContent(type="text", text=prompt.upper()), model="m")


async def user(context: Any, params: Any) -> ElicitResult:
    """An elicitation callback whose "user" accepts, naming the question asked."""
    return ElicitResult(action="accept", content={"answer": f"yes to {params.message}"})
