"""MCP content blocks as plain JSON dicts (`trajectory.format.Observation`): from the SDK's models, and as text.

Observations stay in the MCP wire shape (`{"type": "text", "text": ...}`, `{"type": "image", "data": <base64>,
"mimeType": ...}`) so nothing is lost between a server and a policy, and a recording can be read without the
SDK. A recording swaps an image's `data` for the sha256 of its bytes (`"blob"`), written once per file.
"""

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

from mcpsim.trajectory.format import BINARY_BLOCKS, Observation


def block_dict(block: BaseModel) -> dict[str, Any]:
    """An SDK content block as its JSON wire form (camelCase keys, no nulls)."""
    return block.model_dump(mode="json", by_alias=True, exclude_none=True)


def blocks_from_content(content: Iterable[BaseModel]) -> Observation:
    return [block_dict(block) for block in content]


def blocks_from_resource(contents: Iterable[BaseModel]) -> Observation:
    """Resource contents (`resources/read`) as content blocks: text stays text, an image blob becomes an image."""
    blocks: Observation = []
    for item in contents:
        raw = block_dict(item)
        mime = raw.get("mimeType") or ""
        if "text" in raw:
            blocks.append({"type": "text", "text": raw["text"]})
        elif "blob" in raw and mime.startswith(("image/", "audio/")):
            blocks.append({"type": mime.split("/", 1)[0], "data": raw["blob"], "mimeType": mime})
        else:
            blocks.append({"type": "resource", "resource": raw})
    return blocks


def text_of(observation: Observation, *, image_note: bool = True) -> str:
    """The text a text-only reader sees: text blocks joined, other blocks as short placeholders."""
    parts: list[str] = []
    for block in observation:
        kind = block.get("type")
        if kind == "text":
            parts.append(block.get("text", ""))
        elif kind in BINARY_BLOCKS:
            if image_note:
                parts.append(f"[{kind} omitted: {block.get('mimeType', 'unknown type')}]")
        elif kind == "resource":
            resource = block.get("resource", {})
            parts.append(resource.get("text") or f"[resource {resource.get('uri', '')}]")
        elif kind == "resource_link":
            parts.append(f"[resource link {block.get('uri', '')}]")
        else:
            parts.append(f"[{kind} content]")
    return "\n".join(parts)


def images_of(observation: Observation) -> list[dict[str, Any]]:
    return [block for block in observation if block.get("type") == "image" and block.get("data")]


def data_url(block: dict[str, Any]) -> str:
    return f"data:{block.get('mimeType', 'image/png')};base64,{block['data']}"
