"""What one instance has been doing, for the dashboard: calls, errors, the last tool, the latest frame.

`InstanceStats` is the multiplexer's observer for one instance. It keeps a few numbers and a *reference* to the
latest image block a tool returned (nothing is decoded or copied on the hot path; the image is decoded only
when someone asks for it), then forwards every event to the pool-wide observer (the Prometheus metrics).
A request answered with an error is reported through `on_error`, which the instance turns into a log line
with its correlation ids and an entry in the pool's recent errors.

The method and tool name come from the client, so nothing here keeps or forwards them as sent: the pool-wide
observer gets bounded labels (`pool/labels.py`: spec methods, tools a backend declared, else `other`), and the
last tool, log lines and error entries get the name cut to `MAX_NAME` characters. The declared tools are
learned here, from every `tools/list` result the instance's server sends.
"""

import logging
import time
from collections.abc import Callable
from typing import Any

from mcp.types import JSONRPCError, JSONRPCResponse, RequestId

from mcpsim.pool.labels import DeclaredTools, method_label, shorten
from mcpsim.protocol.channels import MuxObserver

MAX_ERROR_TEXT = 500


class InstanceStats:
    """A `MuxObserver` for one instance that keeps its per-instance numbers and forwards to `forward`."""

    def __init__(
        self,
        forward: MuxObserver | None,
        log: logging.LoggerAdapter,
        on_error: Callable[[dict[str, Any]], None],
        tools: DeclaredTools | None = None,
    ) -> None:
        self.forward = forward
        self.tools = tools if tools is not None else DeclaredTools()
        """The tool names declared so far (shared by the pool's instances): what a tool label may be."""
        self.log = log
        self.on_error = on_error
        self.requests = 0
        self.calls = 0
        self.errors = 0
        self.last_tool: str | None = None
        self.last_call_at: float | None = None
        self.last_image: dict[str, Any] | None = None
        """The latest MCP image content block (`{"type": "image", "data": <base64>, "mimeType": ...}`)."""
        self.image_seq = 0
        """Bumped whenever `last_image` changes, so a page refetches the frame only when it is new."""

    def on_request(self, method: str, tool: str | None) -> None:
        self.requests += 1
        if self.forward is not None:
            self.forward.on_request(method_label(method), self._tool_label(method, tool))

    def on_response(
        self,
        method: str,
        tool: str | None,
        seconds: float,
        is_error: bool,
        *,
        request_id: RequestId | None = None,
        reply: JSONRPCResponse | JSONRPCError | None = None,
    ) -> None:
        if method == "tools/list" and isinstance(reply, JSONRPCResponse):
            self.tools.learn(reply.result)
        labels = method_label(method), self._tool_label(method, tool)
        method, tool = shorten(method), shorten(tool) if tool is not None else None
        if method == "tools/call":
            self.calls += 1
            self.last_tool = tool
            self.last_call_at = time.time()
            if isinstance(reply, JSONRPCResponse):
                self._keep_image(reply.result)
        if self.log.isEnabledFor(logging.DEBUG):
            self.log.debug(
                "%s%s answered in %.1f ms",
                method,
                f" {tool}" if tool else "",
                seconds * 1000,
                extra={"event": "request.done", "request_id": request_id, "method": method, "tool": tool},
            )
        if is_error:
            self.errors += 1
            self._report_error(method, tool, request_id, reply)
        if self.forward is not None:
            self.forward.on_response(*labels, seconds, is_error, request_id=request_id, reply=reply)

    def _tool_label(self, method: str, tool: str | None) -> str | None:
        return self.tools.label(tool) if method == "tools/call" else None

    def _keep_image(self, result: dict[str, Any]) -> None:
        content = result.get("content")
        if not isinstance(content, list):
            return
        for block in reversed(content):
            if isinstance(block, dict) and block.get("type") == "image" and isinstance(block.get("data"), str):
                self.last_image = block
                self.image_seq += 1
                return

    def _report_error(
        self,
        method: str,
        tool: str | None,
        request_id: RequestId | None,
        reply: JSONRPCResponse | JSONRPCError | None,
    ) -> None:
        message = error_text(reply)
        # A JSON-RPC error is news (INFO); an isError tool result is often an agent's invalid move (DEBUG).
        level = logging.INFO if isinstance(reply, JSONRPCError) else logging.DEBUG
        if self.log.isEnabledFor(level):
            self.log.log(
                level,
                "%s%s failed: %s",
                method,
                f" {tool}" if tool else "",
                message,
                extra={"event": "request.error", "request_id": request_id, "method": method, "tool": tool},
            )
        self.on_error(
            {"event": "request.error", "request_id": request_id, "method": method, "tool": tool, "message": message}
        )

    def describe(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "calls": self.calls,
            "errors": self.errors,
            "last_tool": self.last_tool,
            "last_call_at": self.last_call_at,
            "frame": self.image_seq if self.last_image is not None else None,
        }


def error_text(reply: JSONRPCResponse | JSONRPCError | None) -> str:
    """The readable cause of a failed request: the JSON-RPC error message, or the text of an isError result."""
    if isinstance(reply, JSONRPCError):
        return reply.error.message[:MAX_ERROR_TEXT]
    if isinstance(reply, JSONRPCResponse):
        content = reply.result.get("content")
        for block in content if isinstance(content, list) else []:
            if isinstance(block, dict) and block.get("type") == "text":
                return str(block.get("text", ""))[:MAX_ERROR_TEXT]
    return "error"
