"""Per-turn records of `mcpsim.trajectory/2`: what an LLM policy saw and produced at each model call.

A `Turn` is one chat completion request and its answer. It holds only the messages that are new since the
previous turn (the conversation grows by appending, so storing deltas keeps a file linear in its length):
`messages` = everything appended since the last turn, ending with the assistant reply. The request of turn k is
therefore `concat(turn.messages for turns < k) + turn_k.messages[:-1]`; `Trajectory.messages` is the whole
conversation. Image parts are stored as `{"type": "image_url", "image_url": {"blob": sha256, "mimeType"}}`
(the same blob ids as observations, so an image is in the file once).

Token data (from endpoints that give it, e.g. vLLM with `return_token_ids`), per turn:
- `token_ids`, `logprobs` (one per completion token), `top_logprobs` (per token, `[[token, logprob], ...]`);
- `prompt_ids`: the prompt tokens that are new in this turn: when this turn's prompt starts with the previous
  turn's prompt + completion (what a chat template does for an appended conversation), only the rest
  (the environment's tool results and the template's glue); otherwise the whole prompt and `prompt_reset`;
- `mask`: one entry per token of `prompt_ids + token_ids`: 0 for environment/template tokens, 1 for
  model-generated tokens (what a policy-gradient loss trains on).
So the episode's token sequence is `concat(prompt_ids + token_ids)` over turns, with `concat(mask)` beside it.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Message = dict[str, Any]
DATA_URL_PREFIX = "data:"


@dataclass
class Turn:
    """One model call of an episode: the new messages, the raw completion and, when available, token data."""

    turn: int
    step: int
    """The step this call chose an action for (steps taken before it + 1)."""
    messages: list[Message]
    completion: dict[str, Any] = field(default_factory=dict)
    """The choice as the endpoint returned it: `content`, `tool_calls`, `finish_reason` (and any reasoning)."""
    token_ids: list[int] | None = None
    logprobs: list[float] | None = None
    top_logprobs: list[list[list[Any]]] | None = None
    prompt_ids: list[int] | None = None
    prompt_reset: bool = False
    mask: list[int] | None = None
    prompt_tokens: int | None = None
    """The length of the whole prompt of this call, in tokens (when the endpoint returned its ids)."""

    def to_record(self, env_id: str, seed: int, externalize: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
        """The `turn` line; `externalize(data_url)` turns an image data URL into its blob reference."""
        record: dict[str, Any] = {
            "type": "turn",
            "env_id": env_id,
            "seed": seed,
            "turn": self.turn,
            "step": self.step,
            "messages": map_image_urls(self.messages, lambda url: externalize(url) if is_data_url(url) else None),
            "completion": self.completion,
        }
        for key in ("token_ids", "logprobs", "top_logprobs", "prompt_ids", "mask", "prompt_tokens"):
            value = getattr(self, key)
            if value is not None:
                record[key] = value
        if self.prompt_reset:
            record["prompt_reset"] = True
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any], resolve: Callable[[dict[str, Any]], str | None]) -> "Turn":
        """A turn line read back; `resolve(reference)` gives the data URL of a blob reference (None: missing)."""
        messages = record.get("messages")
        if not isinstance(messages, list):
            raise ValueError("'messages' must be a list of chat messages")
        return cls(
            turn=int(record["turn"]),
            step=int(record.get("step", 0)),
            messages=map_image_urls(messages, lambda ref: resolve(ref) if isinstance(ref, dict) else None),
            completion=dict(record.get("completion") or {}),
            token_ids=record.get("token_ids"),
            logprobs=record.get("logprobs"),
            top_logprobs=record.get("top_logprobs"),
            prompt_ids=record.get("prompt_ids"),
            prompt_reset=bool(record.get("prompt_reset")),
            mask=record.get("mask"),
            prompt_tokens=record.get("prompt_tokens"),
        )


def is_data_url(url: Any) -> bool:
    return isinstance(url, str) and url.startswith(DATA_URL_PREFIX)


def map_image_urls(messages: Sequence[Message], swap: Callable[[Any], Any]) -> list[Message]:
    """A copy of `messages` where each `image_url` part's `image_url` (its url, or a blob reference dict) is
    replaced by `swap(value)` when that returns something: a plain url string becomes `{"url": ...}`."""
    out: list[Message] = []
    for message in messages:
        content = message.get("content")
        if not isinstance(content, list):
            out.append(message)
            continue
        parts = []
        for part in content:
            image = part.get("image_url") if isinstance(part, dict) and part.get("type") == "image_url" else None
            if isinstance(image, dict):
                value = image.get("url") if "url" in image else image
                swapped = swap(value)
                if swapped is not None:
                    part = {**part, "image_url": {"url": swapped} if isinstance(swapped, str) else swapped}
            parts.append(part)
        out.append({**message, "content": parts})
    return out


def token_delta(previous: tuple[list[int], list[int]] | None, prompt_ids: list[int]) -> tuple[list[int], bool]:
    """(the new prompt tokens of this turn, whether the prompt restarted): the prompt minus the previous turn's
    prompt + completion when it starts with them, else the whole prompt (a template that re-renders history)."""
    if previous is None:
        return list(prompt_ids), False
    before = previous[0] + previous[1]
    if len(prompt_ids) >= len(before) and prompt_ids[: len(before)] == before:
        return prompt_ids[len(before) :], False
    return list(prompt_ids), True


def episode_tokens(turns: Sequence[Turn]) -> tuple[list[int], list[int], list[float | None]] | None:
    """The episode as one token sequence: (ids, mask, logprob per token, None for environment tokens), or None
    when a turn lacks token ids or the prompt restarted (no single sequence then)."""
    ids: list[int] = []
    mask: list[int] = []
    logprobs: list[float | None] = []
    for turn in turns:
        if turn.token_ids is None or turn.prompt_ids is None or turn.prompt_reset:
            return None
        ids += turn.prompt_ids + turn.token_ids
        mask += [0] * len(turn.prompt_ids) + [1] * len(turn.token_ids)
        lps = turn.logprobs if turn.logprobs is not None else [None] * len(turn.token_ids)
        logprobs += [None] * len(turn.prompt_ids) + list(lps)
    return ids, mask, logprobs
