"""Episodes as dataset rows: the columns of the `hf`, `trl` and `chat` exports, as plain Python.

Parquet needs one schema per column, and chat messages vary (content a string or a list of parts, tool calls or
not), so the `hf` and `trl` rows hold *normalized* messages: `{role, content: str, tool_calls: [{id, type,
function: {name, arguments: str}}], tool_call_id}` with every field present (None when unused) and image parts
as an `[image]` placeholder in the text (the row's `images` counts them). The `chat` export keeps the exact messages,
images as `data:` URLs, in the OpenAI fine-tuning JSONL shape (`{"messages", "tools"}`).

Token columns (present when the rollout recorded them, else None): `token_ids`, `mask`, `logprobs` for the
episode as one sequence (`trajectory.turns.episode_tokens`; logprobs None on environment tokens), and per turn
`turn_token_ids`, `turn_logprobs`, `turn_masks`, `turn_prompt_ids` (always there when a turn had token data,
also when the prompt restarted and no single sequence exists).
"""

import json
from collections.abc import Sequence
from typing import Any

from mcpsim.trajectory import Trajectory
from mcpsim.trajectory.turns import Message, episode_tokens

IMAGE_PLACEHOLDER = "[image]"


def normalized_message(message: Message) -> dict[str, Any]:
    """A chat message with a fixed set of fields (for a Parquet column); image parts become a placeholder."""
    content = message.get("content")
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "image_url":
                texts.append(IMAGE_PLACEHOLDER)
            elif isinstance(part, dict):
                texts.append(str(part.get("text", "")))
        content = "\n".join(texts)
    calls = [
        {
            "id": str(call.get("id", "")),
            "type": str(call.get("type", "function")),
            "function": {
                "name": str((call.get("function") or {}).get("name", "")),
                "arguments": _arguments((call.get("function") or {}).get("arguments")),
            },
        }
        for call in message.get("tool_calls") or []
    ]
    return {
        "role": str(message.get("role", "")),
        "content": content if content is None or isinstance(content, str) else json.dumps(content),
        "tool_calls": calls or None,
        "tool_call_id": message.get("tool_call_id"),
    }


def image_count(messages: Sequence[Message]) -> int:
    return sum(
        1
        for m in messages
        if isinstance(m.get("content"), list)
        for p in m["content"]
        if isinstance(p, dict) and p.get("type") == "image_url"
    )


def _arguments(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value if value is not None else {})


def _turn_column(trajectory: Trajectory, name: str) -> list[Any] | None:
    values = [getattr(turn, name) for turn in trajectory.turns]
    return values if values and any(v is not None for v in values) else None


def episode_row(trajectory: Trajectory, advantage: float, header: dict[str, Any] | None = None) -> dict[str, Any]:
    """The `hf` row of one episode (see the module doc for the columns)."""
    header = header or {}
    tokens = episode_tokens(trajectory.turns) if trajectory.turns else None
    return {
        "episode_id": trajectory.env_id,
        "group_id": trajectory.group_id,
        "row_id": trajectory.row.id if trajectory.row is not None else None,
        "seed": trajectory.seed,
        "model": (trajectory.sampling or {}).get("model", header.get("model")),
        "reward": float(trajectory.total_reward),
        "advantage": float(advantage),
        "success": trajectory.success,
        "outcome": trajectory.outcome,
        "steps": len(trajectory.steps),
        "messages": [normalized_message(m) for m in trajectory.messages],
        "images": image_count(trajectory.messages),
        "tools": json.dumps(trajectory.tools) if trajectory.tools is not None else None,
        "sampling": json.dumps(trajectory.sampling) if trajectory.sampling is not None else None,
        "token_ids": tokens[0] if tokens else None,
        "mask": tokens[1] if tokens else None,
        "logprobs": tokens[2] if tokens else None,
        "turn_token_ids": _turn_column(trajectory, "token_ids"),
        "turn_logprobs": _turn_column(trajectory, "logprobs"),
        "turn_masks": _turn_column(trajectory, "mask"),
        "turn_prompt_ids": _turn_column(trajectory, "prompt_ids"),
    }


def split_prompt(messages: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(prompt, completion): the messages before the first assistant message, and the rest."""
    first = next((i for i, m in enumerate(messages) if m.get("role") == "assistant"), len(messages))
    return list(messages[:first]), list(messages[first:])


def trl_row(row: dict[str, Any]) -> dict[str, Any]:
    """TRL's conversational prompt-completion type (SFTTrainer trains on `completion`; GRPOTrainer samples from
    `prompt` and passes the other columns to reward functions), with the episode's reward and advantage."""
    prompt, completion = split_prompt(row["messages"])
    return {
        "prompt": prompt,
        "completion": completion,
        "reward": row["reward"],
        "advantage": row["advantage"],
        "group_id": row["group_id"],
        "seed": row["seed"],
        "episode_id": row["episode_id"],
    }


def chat_record(trajectory: Trajectory) -> dict[str, Any]:
    """The exact conversation (images as data URLs) and the tools, as OpenAI's fine-tuning JSONL lines are."""
    record: dict[str, Any] = {"messages": trajectory.messages}
    if trajectory.tools is not None:
        record["tools"] = trajectory.tools
    record["metadata"] = {
        "episode_id": trajectory.env_id,
        "group_id": trajectory.group_id,
        "seed": trajectory.seed,
        "reward": trajectory.total_reward,
    }
    return record
