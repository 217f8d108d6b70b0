"""Chat Completions messages from MCP: tool schemas as functions, observations as text and image parts.

Chat Completions accepts images only in `user` messages, and every `tool_calls` assistant message must be
followed directly by one `tool` message per call. So a tool result's text goes in its `tool` message, and its
images (as `data:` URLs) follow in one `user` message after all of that turn's tool messages.
"""

import re
from collections.abc import Sequence
from typing import Any

from mcpsim.client.content import data_url, images_of, text_of
from mcpsim.trajectory import Observation

FUNCTION_NAME = re.compile(r"[^a-zA-Z0-9_-]")
Message = dict[str, Any]


def function_name(tool_name: str, taken: set[str]) -> str:
    """A Chat Completions function name (`^[a-zA-Z0-9_-]{1,64}$`) for an MCP tool name, unique in `taken`."""
    base = FUNCTION_NAME.sub("_", tool_name)[:64] or "tool"
    name, n = base, 1
    while name in taken:
        suffix = f"_{n}"
        name, n = base[: 64 - len(suffix)] + suffix, n + 1
    return name


def tool_specs(tools: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """(function tools for the request, function name -> MCP tool name)."""
    specs: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    for tool in tools:
        name = function_name(tool["name"], set(names))
        names[name] = tool["name"]
        parameters = dict(tool.get("inputSchema") or {"type": "object", "properties": {}})
        parameters.setdefault("type", "object")
        specs.append(
            {
                "type": "function",
                "function": {"name": name, "description": tool.get("description") or "", "parameters": parameters},
            }
        )
    return specs, names


def image_parts(observation: Observation) -> list[dict[str, Any]]:
    return [{"type": "image_url", "image_url": {"url": data_url(block)}} for block in images_of(observation)]


def user_message(text: str, observation: Observation, vision: bool) -> Message:
    """The first user message: the prompt, the initial observation's text, and its images when `vision`."""
    body = "\n\n".join(part for part in (text, text_of(observation, image_note=not vision)) if part)
    images = image_parts(observation) if vision else []
    if not images:
        return {"role": "user", "content": body}
    return {"role": "user", "content": [{"type": "text", "text": body}, *images]}


def tool_message(call_id: str, observation: Observation, vision: bool, is_error: bool) -> Message:
    text = text_of(observation, image_note=not vision)
    if vision and images_of(observation):
        text = f"{text}\n[the image(s) returned by this call follow in the next user message]".strip()
    if is_error:
        text = f"Tool error: {text}"
    return {"role": "tool", "tool_call_id": call_id, "content": text or "(no content)"}


def images_message(tool: str, observation: Observation) -> Message | None:
    images = image_parts(observation)
    if not images:
        return None
    return {"role": "user", "content": [{"type": "text", "text": f"Image(s) returned by {tool}:"}, *images]}


def strip_images(messages: Sequence[Message]) -> list[Message]:
    """The conversation with every image part removed (for endpoints that reject images)."""
    out: list[Message] = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list) and any(p.get("type") == "image_url" for p in content):
            texts = [p.get("text", "") for p in content if p.get("type") == "text"]
            n = sum(1 for p in content if p.get("type") == "image_url")
            out.append({**message, "content": "\n".join([*texts, f"[{n} image(s) omitted]"]).strip()})
        else:
            out.append(message)
    return out


def keep_last_images(messages: Sequence[Message], limit: int) -> list[Message]:
    """The conversation with only the `limit` most recent image parts (older ones become a text note), so a
    long visual episode does not resend every frame with every request."""
    total = sum(1 for m in messages if isinstance(m.get("content"), list) for p in m["content"] if _is_image(p))
    drop = max(total - limit, 0)
    if drop == 0:
        return list(messages)
    out: list[Message] = []
    for message in messages:
        content = message.get("content")
        if drop and isinstance(content, list) and any(_is_image(p) for p in content):
            parts: list[dict[str, Any]] = []
            for part in content:
                if drop and _is_image(part):
                    drop -= 1
                    parts.append({"type": "text", "text": "[earlier image omitted]"})
                else:
                    parts.append(part)
            out.append({**message, "content": parts})
        else:
            out.append(message)
    return out


def _is_image(part: Any) -> bool:
    return isinstance(part, dict) and part.get("type") == "image_url"


def has_images(messages: Sequence[Message]) -> bool:
    return any(
        isinstance(m.get("content"), list) and any(p.get("type") == "image_url" for p in m["content"]) for m in messages
    )
