"""Token-level data of a chat completion: what `OpenAIPolicy(logprobs=, token_ids=)` asks for and reads back.

Requests (documented flags):
- `logprobs=True` and `top_logprobs=N` (OpenAI's Chat Completions; vLLM and SGLang accept them too);
- for vLLM/SGLang-style servers (`token_ids=True`), in the request body beside the OpenAI fields:
  `return_token_ids` (vLLM >= 0.10.2: `prompt_token_ids` on the response, `token_ids` on each choice) and, with
  logprobs, `return_tokens_as_token_ids` (each logprob's `token` is `"token_id:<id>"`; older vLLMs give ids only
  this way).
Hosted APIs refuse these extras with a 400 (`Unrecognized request argument`), so they are off by default.
"""

from typing import Any

from mcpsim.errors import ConfigError
from mcpsim.trajectory.turns import Turn, token_delta

TOKEN_ID_PREFIX = "token_id:"
MAX_TOP_LOGPROBS = 20
"""OpenAI's documented maximum of `top_logprobs` (vLLM's default `--max-logprobs` too)."""
REFUSAL_WORDS = ("logprob", "token_id", "return_token", "unrecognized request argument", "extra_forbidden")


def check_options(logprobs: bool, top_logprobs: int | None) -> None:
    """Raise `ConfigError` for a combination no endpoint accepts (top_logprobs needs logprobs, 0..20)."""
    if top_logprobs is not None:
        if isinstance(top_logprobs, bool) or not isinstance(top_logprobs, int):
            raise ConfigError(f"top_logprobs must be an integer, got {top_logprobs!r}")
        if not 0 <= top_logprobs <= MAX_TOP_LOGPROBS:
            raise ConfigError(f"top_logprobs must be between 0 and {MAX_TOP_LOGPROBS}, got {top_logprobs}")
        if not logprobs:
            raise ConfigError("top_logprobs needs logprobs=True")


def request_fields(logprobs: bool, top_logprobs: int | None, token_ids: bool) -> dict[str, Any]:
    """The keyword arguments to add to `chat.completions.create` (the vLLM flags go in `extra_body`)."""
    fields: dict[str, Any] = {}
    if logprobs:
        fields["logprobs"] = True
        if top_logprobs is not None:
            fields["top_logprobs"] = top_logprobs
    if token_ids:
        extra: dict[str, Any] = {"return_token_ids": True}
        if logprobs:
            extra["return_tokens_as_token_ids"] = True
        fields["extra_body"] = extra
    return fields


def refuses_token_data(message: str) -> bool:
    """Whether a 400's message is about the logprob / token id fields (the endpoint does not offer them)."""
    text = message.lower()
    return any(word in text for word in REFUSAL_WORDS)


def _extra(model: Any, name: str) -> Any:
    value = getattr(model, name, None)
    if value is None:
        value = (getattr(model, "model_extra", None) or {}).get(name)
    return value


def _token_id(token: str) -> int | None:
    if token.startswith(TOKEN_ID_PREFIX):
        try:
            return int(token[len(TOKEN_ID_PREFIX) :])
        except ValueError:
            return None
    return None


def fill_turn(
    turn: Turn, completion: Any, previous: tuple[list[int], list[int]] | None
) -> tuple[list[int], list[int]] | None:
    """Put the completion's token data on `turn`; returns (whole prompt ids, completion ids) for the next turn's
    delta, or None when the endpoint gave no prompt ids."""
    choice = completion.choices[0]
    content = getattr(getattr(choice, "logprobs", None), "content", None)
    if content is not None:
        turn.logprobs = [float(item.logprob) for item in content]
        tops = [list(getattr(item, "top_logprobs", None) or []) for item in content]
        if any(tops):
            turn.top_logprobs = [[[top.token, float(top.logprob)] for top in per] for per in tops]
    ids = _extra(choice, "token_ids")
    if ids is None and content is not None:
        parsed = [_token_id(str(item.token)) for item in content]
        if parsed and all(p is not None for p in parsed):
            ids = parsed
    if ids is not None:
        turn.token_ids = [int(i) for i in ids]
    prompt = _extra(completion, "prompt_token_ids")
    if turn.token_ids is None:
        return None
    if prompt is None:
        turn.mask = [1] * len(turn.token_ids)
        return None
    prompt = [int(i) for i in prompt]
    turn.prompt_tokens = len(prompt)
    turn.prompt_ids, turn.prompt_reset = token_delta(previous, prompt)
    turn.mask = [0] * len(turn.prompt_ids) + [1] * len(turn.token_ids)
    return prompt, turn.token_ids


def raw_completion(choice: Any) -> dict[str, Any]:
    """The choice's message as the endpoint returned it (content, tool calls, any reasoning) and its finish."""
    message = choice.message.model_dump(mode="json", exclude_none=True)
    message.pop("role", None)
    return {**message, "finish_reason": choice.finish_reason}
