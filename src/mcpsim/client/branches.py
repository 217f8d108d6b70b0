"""`await env_session.branch(k)`: k copies of a live episode, each an open `EnvSession` on its own instance.

The managed server makes the copies (`POST /api/instances/{id}/branch`: a live fork or a checked replay, see
`docs/branching.md`); here they are found by the session's handle (2026-07-28) or MCP session id, opened on
their `/envs/<id>/mcp` handles, and tied to the parent session's life: when it closes, each copy's session
closes and its instance is ended (`DELETE`), so a search that forgets a branch leaks nothing.
"""

import contextlib
import dataclasses
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx2

from mcpsim.errors import EnvError

if TYPE_CHECKING:
    from mcpsim.client.env import EnvSession


def server_origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def open_branches(session: "EnvSession", stack: contextlib.AsyncExitStack, count: int) -> list["EnvSession"]:
    origin = server_origin(session.env.url)
    async with httpx2.AsyncClient(timeout=session.env.timeout) as http:
        try:
            source = (
                session.branch_info["id"]
                if session.branch_info
                else session.handle or await _instance_of(http, origin, session)  # a 2026 handle is the instance id
            )
            response = await http.post(f"{origin}/api/instances/{source}/branch", json={"count": count})
        except httpx2.HTTPError as exc:
            raise EnvError(f"cannot branch the episode: {exc!r}") from exc
    body: Any = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
    if response.status_code != 201:
        message = body.get("error", {}).get("message") if isinstance(body, dict) else None
        raise EnvError(f"the server refused the branch ({response.status_code}): {message or response.text[:300]}")
    copies = []
    for item in body["instances"]:
        stack.push_async_callback(_end_instance, origin, item["id"], session.env.timeout)
        env = dataclasses.replace(session.env, url=origin + item["url"])
        copy = await stack.enter_async_context(env.connect())
        copy.branch_info = item
        copy._stack = stack  # its own copies join the root's stack too: contexts must close in the order opened
        copies.append(copy)
    return copies


async def end_branch(session: "EnvSession") -> None:
    """End a copy's instance at once (`EnvSession.close_branch`); the DELETE at the root's close is then a no-op."""
    assert session.branch_info is not None
    if session.branch_info.get("ended"):
        return
    session.branch_info["ended"] = True
    await _end_instance(server_origin(session.env.url), session.branch_info["id"], session.env.timeout)


async def _instance_of(http: httpx2.AsyncClient, origin: str, session: "EnvSession") -> str:
    """The instance serving the session, found by its MCP session id (a copy knows its own from the branch)."""
    listed = (await http.get(f"{origin}/api/instances")).json()
    source = next((item for item in listed if item.get("session_id") == session.session_id), None)
    if source is None:
        raise EnvError(f"the server lists no instance for session {session.session_id} (it ended?)")
    return str(source["id"])


async def _end_instance(origin: str, instance_id: str, seconds: float) -> None:
    with contextlib.suppress(httpx2.HTTPError):
        async with httpx2.AsyncClient(timeout=seconds) as http:
            await http.delete(f"{origin}/api/instances/{instance_id}")
