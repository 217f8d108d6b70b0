"""Token data the way vLLM's OpenAI-compatible server returns it, for `FakeOpenAI(brain, flavor="vllm")`.

vLLM (>= 0.10.2) answers `return_token_ids: true` with `prompt_token_ids` on the response and `token_ids` on each
choice; `logprobs: true` with `choices[i].logprobs.content = [{token, logprob, bytes, top_logprobs}]`, each
token written `"token_id:<id>"` under `return_tokens_as_token_ids: true`. It checks `top_logprobs` against its
`--max-logprobs` (20) and that `top_logprobs` comes with `logprobs`, with a 400 otherwise; fields it does not
know it ignores (logging a warning). `flavor="vllm-0.9"` is a vLLM from before `return_token_ids` (0.10.2): it
ignores that field, so token ids come only as `token_id:<id>` logprob tokens. The hosted API (`flavor="openai"`)
instead refuses the vLLM fields with `Unrecognized request argument supplied: ...`.

The model here is a tokenizer and a chat template of our own that behave like real ones where the client
depends on it: words, spaces and punctuation are tokens (ids given in order of first sight, stable for the
server's life), and the template renders an appended conversation as an extension of the previous prompt plus
completion, so a multi-turn episode is one token sequence.
"""

import json
import re
import threading
from typing import Any

TOKEN = re.compile(r"\w+|\s|[^\w\s]")
VLLM_FIELDS = ("return_token_ids", "return_tokens_as_token_ids")
MAX_LOGPROBS = 20


class Tokenizer:
    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}
        self.words: list[str] = []
        self._lock = threading.Lock()

    def encode(self, text: str) -> list[int]:
        ids = []
        with self._lock:
            for piece in TOKEN.findall(text):
                if piece not in self.vocab:
                    self.vocab[piece] = len(self.words)
                    self.words.append(piece)
                ids.append(self.vocab[piece])
        return ids

    def decode(self, ids: list[int]) -> str:
        return "".join(self.words[i] for i in ids)


def content_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "".join(p.get("text", "") if p.get("type") == "text" else "<image>" for p in content)
    return content or ""


def assistant_body(content: str | None, calls: list[dict[str, Any]]) -> str:
    """What the model generates for a message: its text, then each tool call (Hermes-style markup), then end."""
    rendered = "".join(
        f"<tool_call>{json.dumps({'name': c['function']['name'], 'arguments': c['function']['arguments']})}</tool_call>"
        for c in calls
    )
    return f"{content or ''}{rendered}<|end|>"


def render_prompt(messages: list[dict[str, Any]]) -> str:
    """The chat template: every message, then the generation prompt."""
    out = []
    for message in messages:
        role = message["role"]
        if role == "assistant":
            out.append(f"<|assistant|>\n{assistant_body(message.get('content'), message.get('tool_calls') or [])}\n")
        else:
            out.append(f"<|{role}|>\n{content_text(message)}<|end|>\n")
    return "".join(out) + "<|assistant|>\n"


def check_flags(body: dict[str, Any], flavor: str) -> str | None:
    """Why this server refuses the request's logprob / token id fields (a 400), or None."""
    if flavor == "openai":
        unknown = [name for name in VLLM_FIELDS if name in body]
        if unknown:
            return f"Unrecognized request argument supplied: {unknown[0]}"
    logprobs, top = body.get("logprobs"), body.get("top_logprobs")
    for name in ("logprobs", *VLLM_FIELDS):
        if name in body and not isinstance(body[name], bool):
            return f"1 validation error: {name}: Input should be a valid boolean"
    if top is not None:
        if isinstance(top, bool) or not isinstance(top, int):
            return "1 validation error: top_logprobs: Input should be a valid integer"
        if top < 0:
            return "`top_logprobs` must be a positive value."
        if top > MAX_LOGPROBS:
            return f"Requested sample logprobs of {top}, which is greater than max allowed: {MAX_LOGPROBS}"
        if not logprobs:
            return "when using `top_logprobs`, `logprobs` must be set to true."
    return None


def logprob_of(token_id: int, rank: int = 0) -> float:
    return round(-0.05 - 0.1 * ((token_id * 7 + rank * 3) % 10) - rank, 4)


def token_fields(
    tokenizer: Tokenizer, body: dict[str, Any], message: dict[str, Any], flavor: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(fields for the choice, fields for the response) carrying the token data the request asked for."""
    completion_ids = tokenizer.encode(assistant_body(message.get("content"), message.get("tool_calls") or []))
    choice: dict[str, Any] = {}
    response: dict[str, Any] = {}
    as_ids = flavor.startswith("vllm") and body.get("return_tokens_as_token_ids") is True
    if body.get("logprobs"):
        top = body.get("top_logprobs") or 0
        items = []
        for token_id in completion_ids:
            text = f"token_id:{token_id}" if as_ids else tokenizer.words[token_id]
            tops = [
                {
                    "token": f"token_id:{(token_id + rank) % len(tokenizer.words)}" if as_ids else text,
                    "logprob": logprob_of(token_id, rank),
                    "bytes": list(text.encode()),
                }
                for rank in range(top)
            ]
            item = {"token": text, "logprob": logprob_of(token_id), "bytes": list(text.encode()), "top_logprobs": tops}
            items.append(item)
        choice["logprobs"] = {"content": items, "refusal": None}
    if flavor == "vllm" and body.get("return_token_ids") is True:
        choice["token_ids"] = completion_ids
        response["prompt_token_ids"] = tokenizer.encode(render_prompt(body["messages"]))
    return choice, response
