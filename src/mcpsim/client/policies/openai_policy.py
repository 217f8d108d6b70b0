"""`OpenAIPolicy`: an LLM acting through native tool calling on any OpenAI-compatible endpoint.

One `AsyncOpenAI` client (one connection pool) serves every episode; each episode has its own conversation in
`episode.memory`. The SDK retries 408/409/429/5xx and connection errors with exponential backoff (honouring
`Retry-After`), up to `max_retries`; each step records the tokens and the retries it took.

`max_images=K` keeps only the K most recent images in each request (long visual episodes).

Vision: `vision=True` sends MCP images as `image_url` parts with `data:` URLs, `False` sends text only (images
become a short placeholder), `"auto"` (default) sends images and, if the endpoint rejects them with a 400 that
mentions images, drops them for the rest of the run and says so in `describe()`.

Training data: every model call is kept as a `Turn` on the trajectory (the new messages, the raw completion),
so a recording (`mcpsim.trajectory/2`) rebuilds each prompt without the server. `logprobs=True`,
`top_logprobs=N` and `token_ids=True` (vLLM/SGLang-style servers) add the completion's token ids, logprobs and a
generated-token mask (`token_data.py`); off by default, as hosted APIs refuse the token id flags.
"""

import json
import logging
import os
from collections import deque
from typing import Any, Literal

from mcpsim.client.policies.base import EpisodeContext, Policy
from mcpsim.client.policies.chat_messages import (
    Message,
    has_images,
    images_message,
    keep_last_images,
    strip_images,
    tool_message,
    tool_specs,
    user_message,
)
from mcpsim.client.policies.token_data import (
    check_options,
    fill_turn,
    raw_completion,
    refuses_token_data,
    request_fields,
)
from mcpsim.errors import ConfigError, InvalidAction, PolicyError
from mcpsim.trajectory import Action, Observation
from mcpsim.trajectory.turns import Turn

logger = logging.getLogger(__name__)

Vision = bool | Literal["auto"]
DEFAULT_SYSTEM_PROMPT = "You act in an environment through its tools. Call one tool per turn until the task is done."
NUDGE = "Please continue by calling one of the tools."
FIREWORKS_BASE_URL = "https://api.fireworks.ai/inference/v1"


def _usage(completion: Any, retries: int) -> dict[str, int]:
    usage = {"requests": 1, "retries": retries}
    reported = getattr(completion, "usage", None)
    if reported is not None:
        for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
            value = getattr(reported, key, None)
            if isinstance(value, int):
                usage[key] = value
    return usage


def _api_message(exc: Any) -> str:
    """The API's own error message (`{"error": {"message": ...}}`), not the SDK's wrapper text."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        if isinstance(inner.get("message"), str):
            return inner["message"]
    return str(getattr(exc, "message", "") or exc)


def _rejects_images(exc: Exception) -> bool:
    import openai

    text = _api_message(exc).lower()
    return isinstance(exc, openai.BadRequestError) and ("image" in text or "vision" in text)


class OpenAIPolicy(Policy):
    """Native tool calling with any OpenAI-compatible chat completions endpoint (OpenAI, Fireworks, vLLM, Ollama)."""

    name = "openai"
    api_key_env = "OPENAI_API_KEY"
    records_conversation = True

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        temperature: float | None = 0.0,
        vision: Vision = "auto",
        *,
        max_retries: int = 6,
        timeout: float = 120.0,
        max_nudges: int = 1,
        max_images: int | None = None,
        tool_choice: str | None = None,
        request_options: dict[str, Any] | None = None,
        logprobs: bool = False,
        top_logprobs: int | None = None,
        token_ids: bool = False,
    ) -> None:
        import openai

        check_options(logprobs, top_logprobs)
        if vision not in (True, False, "auto"):
            raise ConfigError(f"vision must be True, False or 'auto', got {vision!r}")
        if max_retries < 0:
            raise ConfigError("max_retries must be >= 0")
        key = api_key or os.environ.get(self.api_key_env)
        if not key:
            if base_url is None:
                raise ConfigError(f"no API key: pass api_key= or set {self.api_key_env}")
            key = "not-needed"  # local servers (vLLM, Ollama) accept any key
        self.model = model
        self.base_url = base_url
        self.temperature = temperature
        self.vision: Vision = vision
        self.images_rejected = False
        self.max_retries = max_retries
        self.max_nudges = max_nudges
        self.max_images = max_images
        self.tool_choice = tool_choice
        self.request_options = dict(request_options or {})
        self.logprobs = logprobs
        self.top_logprobs = top_logprobs
        self.token_ids = token_ids
        self.client = openai.AsyncOpenAI(api_key=key, base_url=base_url, max_retries=max_retries, timeout=timeout)

    @property
    def sends_images(self) -> bool:
        return self.vision is True or (self.vision == "auto" and not self.images_rejected)

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "policy": self.name,
            "model": self.model,
            "base_url": str(self.client.base_url),
            "temperature": self.temperature,
            "vision": self.vision,
            "max_retries": self.max_retries,
        }
        if self.images_rejected:
            info["images_rejected"] = True
        if self.logprobs or self.token_ids:
            info.update(logprobs=self.logprobs, top_logprobs=self.top_logprobs, token_ids=self.token_ids)
        return info

    def sampling(self) -> dict[str, Any]:
        """What decides the model's answers besides the messages: kept on each trajectory (`sampling`)."""
        params: dict[str, Any] = {"model": self.model, "temperature": self.temperature, **self.request_options}
        for key in ("tool_choice", "max_images", "top_logprobs"):
            if getattr(self, key) is not None:
                params[key] = getattr(self, key)
        if self.logprobs:
            params["logprobs"] = True
        if self.token_ids:
            params["token_ids"] = True
        return params

    async def reset(self, episode: EpisodeContext) -> None:
        specs, names = tool_specs(episode.tools)
        messages: list[Message] = []
        system = episode.row.system_prompt or episode.instructions or DEFAULT_SYSTEM_PROMPT
        messages.append({"role": "system", "content": system})
        prompt = episode.row.user_prompt or "This is the initial observation."
        messages.append(user_message(prompt, episode.initial_observation, self.sends_images))
        episode.memory.update(
            messages=messages,
            specs=specs,
            names=names,
            pending=deque(),
            deferred=[],
            last=None,
            recorded=0,
            tokens=None,
        )
        episode.trajectory.sampling = self.sampling()
        episode.trajectory.tools = specs

    async def act(self, episode: EpisodeContext, observation: Observation) -> Action | None:
        memory = episode.memory
        if "messages" not in memory:
            await self.reset(episode)
        messages: list[Message] = memory["messages"]
        if memory["last"] is not None:
            call_id, tool = memory["last"]
            last_step = episode.trajectory.steps[-1] if episode.trajectory.steps else None
            is_error = bool(last_step and last_step.is_error)
            messages.append(tool_message(call_id, observation, self.sends_images, is_error))
            extra = images_message(tool, observation) if self.sends_images else None
            if extra is not None:
                memory["deferred"].append(extra)
            memory["last"] = None
        if memory["pending"]:
            return self._next_pending(memory)
        messages.extend(memory["deferred"])
        memory["deferred"].clear()
        for _ in range(self.max_nudges + 1):
            reply = await self._complete(episode, messages)
            messages.append(reply)
            if reply.get("tool_calls"):
                memory["pending"].extend(reply["tool_calls"])
                memory["reply_text"] = reply.get("content")
                return self._next_pending(memory)
            messages.append({"role": "user", "content": NUDGE})
        messages.pop()  # the unanswered nudge
        return None

    def _next_pending(self, memory: dict[str, Any]) -> Action:
        call = memory["pending"].popleft()
        function = call.get("function") or {}
        name = str(function.get("name", ""))
        tool = memory["names"].get(name, name)
        raw = function.get("arguments") or "{}"
        try:
            arguments = json.loads(raw) if isinstance(raw, str) else raw
        except json.JSONDecodeError as exc:
            raise InvalidAction(
                f"model {self.model} called {name!r} with arguments that are not valid JSON ({exc.msg}): {raw[:200]}"
            ) from None
        memory["last"] = (call["id"], tool)
        info: dict[str, Any] = {"call_id": call["id"]}
        text = memory.pop("reply_text", None)
        if text:
            info["content"] = text
        return Action(tool, arguments, call_id=call["id"], info=info)

    async def _complete(self, episode: EpisodeContext, messages: list[Message]) -> Message:
        """One chat completion (the SDK retries), as the assistant message to append."""
        import openai

        try:
            return await self._request(episode, messages)
        except openai.BadRequestError as exc:
            if (self.logprobs or self.token_ids) and refuses_token_data(_api_message(exc)):
                raise PolicyError(self._refusal_text(exc), step=episode.step) from exc
            if not (self.vision == "auto" and has_images(messages) and _rejects_images(exc)):
                raise PolicyError(self._error_text(exc), step=episode.step) from exc
            if not self.images_rejected:
                logger.warning("%s rejected images (%s); sending text only from now on", self.model, _api_message(exc))
            self.images_rejected = True
            messages[:] = strip_images(messages)
            try:
                return await self._request(episode, messages)
            except openai.OpenAIError as retry_exc:
                raise PolicyError(self._error_text(retry_exc), step=episode.step) from retry_exc
        except openai.OpenAIError as exc:
            raise PolicyError(self._error_text(exc), step=episode.step) from exc

    async def _request(self, episode: EpisodeContext, messages: list[Message]) -> Message:
        if self.max_images is not None:
            messages = keep_last_images(messages, self.max_images)
        kwargs: dict[str, Any] = {"model": self.model, "messages": messages, **self.request_options}
        kwargs.update(request_fields(self.logprobs, self.top_logprobs, self.token_ids))
        if episode.memory["specs"]:
            kwargs["tools"] = episode.memory["specs"]
            if self.tool_choice is not None:
                kwargs["tool_choice"] = self.tool_choice
        if self.temperature is not None:
            kwargs["temperature"] = self.temperature
        raw = await self.client.chat.completions.with_raw_response.create(**kwargs)
        completion = raw.parse()
        episode.add_usage(_usage(completion, raw.retries_taken))
        if not completion.choices:
            raise PolicyError(f"model {self.model} returned no choices", step=episode.step)
        message = completion.choices[0].message
        reply: Message = {"role": "assistant"}
        if message.content:
            reply["content"] = message.content
        calls = []
        for n, call in enumerate(message.tool_calls or []):
            function = getattr(call, "function", None)
            if function is None:
                continue
            call_id = call.id or f"call_{episode.step}_{n}"
            spec = {"name": function.name, "arguments": function.arguments}
            calls.append({"id": call_id, "type": "function", "function": spec})
        if calls:
            reply["tool_calls"] = calls
        elif "content" not in reply:
            reply["content"] = ""
        self._record_turn(episode, completion, reply)
        return reply

    def _record_turn(self, episode: EpisodeContext, completion: Any, reply: Message) -> None:
        """Keep this call on the trajectory: the messages new since the last turn, then the reply."""
        memory = episode.memory
        messages: list[Message] = memory["messages"]
        turn = Turn(
            turn=len(episode.trajectory.turns) + 1,
            step=episode.step + 1,
            messages=[*messages[memory["recorded"] :], reply],
            completion=raw_completion(completion.choices[0]),
        )
        memory["recorded"] = len(messages) + 1  # the reply is appended next
        if self.logprobs or self.token_ids:
            memory["tokens"] = fill_turn(turn, completion, memory["tokens"])
            missing = [
                name
                for name, wanted, got in (
                    ("logprobs", self.logprobs, turn.logprobs),
                    ("token ids", self.token_ids, turn.token_ids),
                )
                if wanted and got is None
            ]
            if missing:
                raise PolicyError(
                    f"model {self.model} at {self.client.base_url} returned no {' and no '.join(missing)} although "
                    "asked (token ids need a vLLM >= 0.10.2 or SGLang server; turn token_ids/logprobs off otherwise)",
                    step=episode.step + 1,
                )
        episode.trajectory.turns.append(turn)

    def _refusal_text(self, exc: Exception) -> str:
        asked = ", ".join(
            name
            for name, on in (
                ("logprobs", self.logprobs),
                ("top_logprobs", self.top_logprobs is not None),
                ("token_ids", self.token_ids),
            )
            if on
        )
        return (
            f"model {self.model} at {self.client.base_url} refused the token data asked for ({asked}): "
            f"{_api_message(exc)} (token ids need a vLLM or SGLang server; hosted APIs offer logprobs at most)"
        )

    def _error_text(self, exc: Exception) -> str:
        import openai

        where = f"model {self.model} at {self.client.base_url}"
        if isinstance(exc, openai.APIStatusError):
            retried = exc.status_code in (408, 409, 429) or exc.status_code >= 500
            after = f" after {self.max_retries} retries" if retried and self.max_retries else ""
            return f"{where}: HTTP {exc.status_code}{after}: {_api_message(exc)}"
        if isinstance(exc, openai.APITimeoutError):
            return f"{where}: request timed out after {self.max_retries} retries"
        if isinstance(exc, openai.APIConnectionError):
            return f"{where}: cannot connect ({exc.__cause__ or exc}) after {self.max_retries} retries"
        return f"{where}: {type(exc).__name__}: {exc}"

    async def aclose(self) -> None:
        await self.client.close()


class FireworksPolicy(OpenAIPolicy):
    """`OpenAIPolicy` on Fireworks' OpenAI-compatible endpoint, with the key from `FIREWORKS_API_KEY`."""

    name = "fireworks"
    api_key_env = "FIREWORKS_API_KEY"

    def __init__(self, model: str, base_url: str | None = FIREWORKS_BASE_URL, **kwargs: Any) -> None:
        if not (kwargs.get("api_key") or os.environ.get(self.api_key_env)):
            raise ConfigError(f"no Fireworks API key: pass api_key= or set {self.api_key_env}")
        super().__init__(model, base_url, **kwargs)
