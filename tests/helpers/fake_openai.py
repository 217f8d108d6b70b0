"""A local OpenAI-compatible chat completions server for tests: real HTTP, real `openai` SDK on the other end.

It behaves like the hosted API where the client depends on it: `POST /v1/chat/completions` with bearer auth,
native tool calling (`tool_calls` with JSON-string arguments, `finish_reason`), `usage`, error bodies
`{"error": {...}}` with 400/401/429/5xx and `retry-after-ms`. It also *checks* each request as the real API
does (function tool schemas, every tool call answered right after its assistant message, images only in user
messages) and more (every image part is a decodable PNG); a violation is answered with a 400 and kept in
`problems`, so a test can assert there were none.

The test supplies the model as a `brain(request) -> {"content": str} | {"tool_calls": [(name, args), ...]}`.

`flavor="vllm"` makes it answer like vLLM's server: token ids and logprobs as vLLM returns them, its checks of
the request flags (`fake_vllm.py`); the default `"openai"` refuses vLLM's flags as the hosted API does, and
returns logprobs (no token ids) when asked.
"""

import base64
import binascii
import io
import json
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

import uvicorn
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from helpers.fake_vllm import Tokenizer, check_flags, token_fields
from mcpsim.proc import free_port

Brain = Callable[[dict[str, Any]], dict[str, Any]]
FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
API_KEY = "sk-test-local"


def text_of_message(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(part.get("text", "") for part in content if part.get("type") == "text")
    return ""


def image_urls(message: dict[str, Any]) -> list[str]:
    content = message.get("content")
    if not isinstance(content, list):
        return []
    return [part["image_url"]["url"] for part in content if part.get("type") == "image_url"]


def decode_png(url: str) -> Image.Image:
    prefix = "data:image/png;base64,"
    if not url.startswith(prefix):
        raise ValueError(f"image url is not a PNG data URL: {url[:40]}")
    try:
        data = base64.b64decode(url[len(prefix) :], validate=True)
    except binascii.Error as exc:
        raise ValueError(f"image data is not base64: {exc}") from None
    image = Image.open(io.BytesIO(data))
    image.load()
    if image.format != "PNG":
        raise ValueError(f"image is {image.format}, not PNG")
    return image


def check_tools(tools: Any) -> list[str]:
    if tools is None:
        return []
    if not isinstance(tools, list) or not tools:
        return ["'tools' must be a non-empty array"]
    problems = []
    for tool in tools:
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(function, dict):
            problems.append(f"tool {tool!r} is not {{'type': 'function', 'function': {{...}}}}")
            continue
        if not FUNCTION_NAME.match(str(function.get("name", ""))):
            problems.append(f"invalid function name {function.get('name')!r}")
        parameters = function.get("parameters")
        if not isinstance(parameters, dict) or parameters.get("type") != "object":
            problems.append(f"function {function.get('name')!r}: parameters must be a JSON schema object")
    return problems


def check_messages(messages: Any) -> list[str]:
    """Conversation rules of the Chat Completions API, and images that must decode as PNG."""
    if not isinstance(messages, list) or not messages:
        return ["'messages' must be a non-empty array"]
    problems: list[str] = []
    open_calls: set[str] = set()
    for index, message in enumerate(messages):
        role = message.get("role")
        if role not in ("system", "user", "assistant", "tool"):
            problems.append(f"messages[{index}]: invalid role {role!r}")
            continue
        if role == "tool":
            call_id = message.get("tool_call_id")
            if call_id not in open_calls:
                problems.append(
                    f"messages[{index}]: role 'tool' must respond to a preceding message with 'tool_calls' "
                    f"(unknown tool_call_id {call_id!r})"
                )
            open_calls.discard(call_id)
            content = message.get("content")
            if isinstance(content, list) and any(p.get("type") != "text" for p in content):
                problems.append(f"messages[{index}]: image parts are only allowed in messages with role 'user'")
            continue
        if open_calls:
            problems.append(
                f"messages[{index}]: an assistant message with 'tool_calls' must be followed by tool messages "
                f"responding to each 'tool_call_id' (missing: {sorted(open_calls)})"
            )
            open_calls.clear()
        if role == "system" and index != 0:
            problems.append(f"messages[{index}]: system message after the start")
        if role == "assistant":
            for call in message.get("tool_calls") or []:
                open_calls.add(call["id"])
                try:
                    json.loads(call["function"]["arguments"])
                except (KeyError, TypeError, json.JSONDecodeError):
                    problems.append(f"messages[{index}]: tool call arguments must be a JSON string")
            if not message.get("tool_calls") and message.get("content") is None:
                problems.append(f"messages[{index}]: assistant message needs content or tool_calls")
        if role != "user" and image_urls(message):
            problems.append(f"messages[{index}]: image parts are only allowed in messages with role 'user'")
        for url in image_urls(message):
            try:
                decode_png(url)
            except Exception as exc:
                problems.append(f"messages[{index}]: {exc}")
    if open_calls:
        problems.append(f"the conversation ends with unanswered tool calls {sorted(open_calls)}")
    return problems


def error(status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return JSONResponse(body, status_code=status, headers=headers)


class FakeOpenAI:
    """Serve on a free port in a background thread: `with FakeOpenAI(brain) as api: api.base_url ...`."""

    def __init__(self, brain: Brain, flavor: str = "openai") -> None:
        if flavor not in ("openai", "vllm", "vllm-0.9"):
            raise ValueError(f"flavor must be 'openai', 'vllm' or 'vllm-0.9', got {flavor!r}")
        self.brain = brain
        self.flavor = flavor
        self.tokenizer = Tokenizer()
        self.requests: list[dict[str, Any]] = []
        self.arrivals: list[float] = []
        self.problems: list[str] = []
        self.failures: deque[tuple[int, dict[str, str]]] = deque()
        self.reject_images = False
        self.port = free_port()
        self._lock = threading.Lock()
        app = Starlette(routes=[Route("/v1/chat/completions", self.completions, methods=["POST"])])
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def fail_next(self, status: int, times: int = 1, headers: dict[str, str] | None = None) -> None:
        for _ in range(times):
            self.failures.append((status, headers or {}))

    def __enter__(self) -> "FakeOpenAI":
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake OpenAI server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)

    async def completions(self, request: Request) -> JSONResponse:
        arrived = time.monotonic()
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return error(401, "Incorrect API key provided.", "invalid_request_error")
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return error(400, "We could not parse the JSON body of your request.", "invalid_request_error")
        with self._lock:
            self.requests.append(body)
            self.arrivals.append(arrived)
            failure = self.failures.popleft() if self.failures else None
        if failure is not None:
            status, headers = failure
            kind = "rate_limit_error" if status == 429 else "server_error"
            return error(status, f"simulated {status}", kind, headers)
        if not isinstance(body.get("model"), str):
            return error(400, "you must provide a model parameter", "invalid_request_error")
        messages = body.get("messages")
        if self.reject_images and isinstance(messages, list) and any(image_urls(m) for m in messages):
            text = "Invalid content type. image_url is only supported by certain models."
            return error(400, text, "invalid_request_error")
        refused = check_flags(body, self.flavor)
        if refused is not None:
            return error(400, refused, "invalid_request_error" if self.flavor == "openai" else "BadRequestError")
        problems = check_tools(body.get("tools")) + check_messages(messages)
        if problems:
            with self._lock:
                self.problems.extend(problems)
            return error(400, "; ".join(problems), "invalid_request_error")
        decision = self.brain(body)
        return JSONResponse(self._completion(body, decision))

    def _completion(self, body: dict[str, Any], decision: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": decision.get("content"), "refusal": None}
        calls = decision.get("tool_calls") or []
        if calls:
            message["tool_calls"] = [
                {
                    "id": f"call_{uuid.uuid4().hex[:12]}",
                    "type": "function",
                    "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)},
                }
                for name, args in calls
            ]
        prompt_tokens = len(json.dumps(body.get("messages"))) // 4 + 1
        completion_tokens = 5 + 5 * len(calls)
        choice, extra = token_fields(self.tokenizer, body, message, self.flavor)
        response = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:16]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if calls else "stop",
                    "logprobs": None,
                    **choice,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
            **extra,
        }
        return response


def lake_brain(body: dict[str, Any]) -> dict[str, Any]:
    """A model that walks the shortest path on the latest FrozenLake map in the conversation."""
    from helpers.rollouts import solve

    for message in reversed(body["messages"]):
        move = solve(text_of_message(message))
        if move:
            return {"tool_calls": [("lake_move", {"action": move})]}
    return {"content": "I see no map."}


def main() -> None:
    """`PYTHONPATH=tests python -m helpers.fake_openai --flavor vllm --port P`: a FrozenLake-playing model server
    for measurements by hand (key: `sk-test-local`); Ctrl-C ends it."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--flavor", choices=["openai", "vllm"], default="vllm")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    api = FakeOpenAI(lake_brain, flavor=args.flavor)
    app = api._server.config.app
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", lifespan="off")


if __name__ == "__main__":
    main()
