"""The MCP conformance "everything server", as a production-style server on the official SDK.

It implements what the official conformance suite (`@modelcontextprotocol/conformance`, server scenarios)
expects of a server: the tools, resources, prompts, logging and completion named in the suite's server
requirements, with the capabilities it must declare. The tests run the suite against this server directly and
through `mcpsim serve`, so whatever the proxy changes on the wire shows up as a difference.

Built on the SDK's low-level `Server` rather than `MCPServer`, because the requirements need what `MCPServer`
cannot express: a tool with a hand-written JSON Schema 2020-12 input schema (`$schema`, `$defs`), elicitation
schemas with `oneOf`/`enumNames`, `listChanged` flags, resource subscriptions and `logging/setLevel`.
The requirements target the 2025-06-18 protocol (handshake era), whose logging, sampling and elicitation APIs
the SDK marks deprecated for 2026-07-28, so those warnings are silenced here on purpose. The fixtures the
2026-07-28 requirements add (multi round-trip tools, stateless diagnostics, `subscriptions/listen`) live in
`conformance_2026.py`; the SDK serves both revisions on every transport (stdio: the client's first request
picks the era of the connection; HTTP: each request's `MCP-Protocol-Version` header picks it).

Run: `python conformance_server.py` (stdio) or `python conformance_server.py --port P` (streamable HTTP at
`http://127.0.0.1:P/mcp`).
"""

import argparse
import base64
import io
import json
import math
import re
import struct
import warnings
import wave
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import conformance_2026 as modern
import mcp.types as types
import uvicorn
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.models import InitializationOptions
from mcp.server.stdio import stdio_server
from mcp.server.subscriptions import ResourceUpdated
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from PIL import Image

warnings.filterwarnings("ignore", category=MCPDeprecationWarning)

SERVER_NAME = "mcp-conformance-test-server"
LOG_LEVELS: list[types.LoggingLevel] = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"]
Context = Any  # mcp.server.context.ServerRequestContext; kept loose so handlers stay readable


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1), (255, 0, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def _wav() -> bytes:
    """50 ms of a 440 Hz tone, 8 kHz mono 16-bit."""
    rate = 8000
    frames = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate))) for i in range(rate // 20))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)
    return buffer.getvalue()


PNG = _png()
WAV = _wav()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass
class ClientState:
    """What one client connection set: its log level and its resource subscriptions."""

    log_level: types.LoggingLevel = "debug"
    subscriptions: set[str] = field(default_factory=set)


class ConformanceServer(Server):
    """The SDK's low-level server, declaring `listChanged` for tools, resources and prompts.

    The low-level server only declares those flags when its caller passes `NotificationOptions`; the
    streamable-HTTP session manager never does, so the flags are set here, once for every transport.
    """

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        options = notification_options or NotificationOptions(
            prompts_changed=True, resources_changed=True, tools_changed=True
        )
        return super().create_initialization_options(options, experimental_capabilities, extensions)


clients: dict[str | None, ClientState] = {}
watched = {"text": "Watched resource content"}


def client_of(ctx: Context) -> ClientState:
    """The state of the connection a request came on: keyed by its HTTP session id (None on stdio)."""
    request = ctx.request
    headers = getattr(request, "headers", None)
    key = headers.get("mcp-session-id") if headers is not None else None
    return clients.setdefault(key, ClientState())


async def log(ctx: Context, level: types.LoggingLevel, message: str) -> None:
    """Send a log notification on the request's stream, if the client's level lets it through."""
    if LOG_LEVELS.index(level) < LOG_LEVELS.index(client_of(ctx).log_level):
        return
    await ctx.session.send_log_message(level, message, logger=SERVER_NAME, related_request_id=ctx.request_id)


def text(value: str) -> types.TextContent:
    return types.TextContent(type="text", text=value)


def error_result(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[text(message)], is_error=True)


# -- tools ----------------------------------------------------------------------------------------------------

ToolHandler = Callable[[Context, dict[str, Any]], Awaitable[types.CallToolResult]]
TOOLS: dict[str, tuple[types.Tool, ToolHandler]] = {}
NO_ARGUMENTS: dict[str, Any] = {"type": "object", "properties": {}}


def tool(name: str, description: str, input_schema: dict[str, Any] | None = None):
    def register(handler: ToolHandler) -> ToolHandler:
        spec = types.Tool(name=name, description=description, input_schema=input_schema or NO_ARGUMENTS)
        TOOLS[name] = (spec, handler)
        return handler

    return register


@tool("test_simple_text", "Returns a simple text content block")
async def simple_text(ctx: Context, args: dict[str, Any]) -> types.CallToolResult:
    return types.CallToolResult(content=[text("This is a simple text response for testing.")])


@tool("test_image_content", "Returns a 1x1 red PNG image")
async def image_content(ctx: Context, args: dict[str, Any]) -> types.CallToolResult:
    return types.CallToolResult(content=[types.ImageContent(type="image", data=_b64(PNG), mime_type="image/png")])


@tool("test_audio_content", "Returns a short WAV tone")
async def audio_content(ctx: Context, args: dict[str, Any]) -> types.CallToolResult:
    return types.CallToolResult(content=[types.AudioContent(type="audio", data=_b64(WAV), mime_type="audio/wav")])


def embedded(uri: str, mime_type: str, body: str) -> types.EmbeddedResource:
    return types.EmbeddedResource(
        type="resource", resource=types.TextResourceContents(uri=uri, mime_type=mime_type, text=body)
    )


@tool("test_embedded_resource", "Returns an embedded text resource")
async def embedded_resource(ctx: Context, args: dict[str, Any]) -> types.CallToolResult:
    content = embedded("test://embedded-resource", "text/plain", "This is an embedded resource content.")
    return types.CallToolResult(content=[content])


@tool("test_multiple_content_types", "Returns text, an image and an embedded resource")
async def multiple_content_types(ctx: Context, args: dict[str, Any]) -> types.CallToolResult:
    resource = embedded("test://mixed-content-resource", "application/json", json.dumps({"test": "data", "value": 123}))
    image = types.ImageContent(type="image", data=_b64(PNG), mime_type="image/png")
    return types.CallToolResult(content=[text("Multiple content types test:"), image, resource])


@tool("test_tool_with_logging", "Sends three info log notifications while it runs")
async def tool_with_logging(ctx: Context, args: dict[str, Any]) -> types.CallToolResult:
    await log(ctx, "info", "Tool execution started")
    await anyio.sleep(0.05)
    await log(ctx, "info", "Tool processing data")
    await anyio.sleep(0.05)
    await log(ctx, "info", "Tool execution completed")
    return types.CallToolResult(content=[text("Tool with logging executed successfully")])


@tool("test_tool_with_progress", "Reports progress 0, 50 and 100 of 100 when asked for progress")
async def tool_with_progress(ctx: Context, args: dict[str, Any]) -> types.CallToolResult:
    for step, progress in enumerate((0, 50, 100)):
        if step:
            await anyio.sleep(0.05)
        await ctx.session.report_progress(progress, 100, f"{progress}% done")  # a no-op without a progress token
    return types.CallToolResult(content=[text("Tool with progress executed successfully")])


@tool("test_error_handling", "Always fails, as a tool error (isError)")
async def error_handling(ctx: Context, args: dict[str, Any]) -> types.CallToolResult:
    return error_result("This tool intentionally returns an error for testing")


PROMPT_ARGUMENT = {"type": "object", "properties": {"prompt": {"type": "string"}}, "required": ["prompt"]}


@tool("test_sampling", "Asks the client's model (sampling/createMessage) and returns its answer", PROMPT_ARGUMENT)
async def sampling(ctx: Context, args: dict[str, Any]) -> types.CallToolResult:
    if not ctx.session.check_client_capability(types.ClientCapabilities(sampling=types.SamplingCapability())):
        return error_result("The client does not support sampling (no sampling capability declared)")
    message = types.SamplingMessage(role="user", content=text(str(args.get("prompt", ""))))
    result = await ctx.session.create_message([message], max_tokens=100, related_request_id=ctx.request_id)
    answer = result.content.text if isinstance(result.content, types.TextContent) else str(result.content)
    return types.CallToolResult(content=[text(f"LLM response: {answer}")])


async def elicit(ctx: Context, message: str, schema: dict[str, Any]) -> types.ElicitResult | types.CallToolResult:
    if not ctx.session.check_client_capability(types.ClientCapabilities(elicitation=types.ElicitationCapability())):
        return error_result("The client does not support elicitation (no elicitation capability declared)")
    return await ctx.session.elicit_form(message, schema, related_request_id=ctx.request_id)


def elicitation_outcome(prefix: str, result: types.ElicitResult | types.CallToolResult) -> types.CallToolResult:
    if isinstance(result, types.CallToolResult):
        return result
    return types.CallToolResult(
        content=[text(f"{prefix}: action={result.action}, content={json.dumps(result.content)}")]
    )


USER_SCHEMA = {
    "type": "object",
    "properties": {
        "username": {"type": "string", "description": "User's response"},
        "email": {"type": "string", "description": "User's email address"},
    },
    "required": ["username", "email"],
}
MESSAGE_ARGUMENT = {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]}


@tool("test_elicitation", "Asks the user for a username and an email (elicitation/create)", MESSAGE_ARGUMENT)
async def elicitation(ctx: Context, args: dict[str, Any]) -> types.CallToolResult:
    return elicitation_outcome("User response", await elicit(ctx, str(args.get("message", "")), USER_SCHEMA))


DEFAULTS_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "description": "User name", "default": "John Doe"},
        "age": {"type": "integer", "description": "User age", "default": 30},
        "score": {"type": "number", "description": "User score", "default": 95.5},
        "status": {
            "type": "string",
            "description": "User status",
            "enum": ["active", "inactive", "pending"],
            "default": "active",
        },
        "verified": {"type": "boolean", "description": "Verification status", "default": True},
    },
    "required": [],
}


@tool("test_elicitation_sep1034_defaults", "Elicits a form whose fields all have defaults (SEP-1034)")
async def elicitation_defaults(ctx: Context, args: dict[str, Any]) -> types.CallToolResult:
    result = await elicit(ctx, "Please review and update the form fields with defaults", DEFAULTS_SCHEMA)
    return elicitation_outcome("Elicitation completed", result)


def _titled(values: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"const": value, "title": title} for value, title in values]


ENUMS_SCHEMA = {
    "type": "object",
    "properties": {
        "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
        "titledSingle": {
            "type": "string",
            "oneOf": _titled([("value1", "First Option"), ("value2", "Second Option"), ("value3", "Third Option")]),
        },
        "legacyEnum": {
            "type": "string",
            "enum": ["opt1", "opt2", "opt3"],
            "enumNames": ["Option One", "Option Two", "Option Three"],
        },
        "untitledMulti": {"type": "array", "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
        "titledMulti": {
            "type": "array",
            "items": {
                "anyOf": _titled([("value1", "First Choice"), ("value2", "Second Choice"), ("value3", "Third Choice")])
            },
        },
    },
    "required": [],
}


@tool("test_elicitation_sep1330_enums", "Elicits a form with every enum variant (SEP-1330)")
async def elicitation_enums(ctx: Context, args: dict[str, Any]) -> types.CallToolResult:
    result = await elicit(ctx, "Please choose from the enum fields", ENUMS_SCHEMA)
    return elicitation_outcome("Elicitation completed", result)


ADDRESS = {
    "$anchor": "addressDef",
    "type": "object",
    "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
}
JSON_SCHEMA_2020_12 = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {"address": ADDRESS},
    "properties": {
        "name": {"type": "string"},
        "address": {"$ref": "#/$defs/address"},
        "contactMethod": {"type": "string", "enum": ["phone", "email"]},
        "phone": {"type": "string"},
        "email": {"type": "string"},
    },
    # SEP-2106: composition and conditional keywords must survive the listing too.
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
}


@tool("json_schema_2020_12_tool", "Tool with JSON Schema 2020-12 features", JSON_SCHEMA_2020_12)
async def json_schema_tool(ctx: Context, args: dict[str, Any]) -> types.CallToolResult:
    return types.CallToolResult(content=[text(f"Received: {json.dumps(args, sort_keys=True)}")])


@tool(
    "update_watched_resource",
    "Changes test://watched-resource and notifies subscribers (notifications/resources/updated)",
    {"type": "object", "properties": {"content": {"type": "string"}}, "required": ["content"]},
)
async def update_watched(ctx: Context, args: dict[str, Any]) -> types.CallToolResult:
    watched["text"] = str(args.get("content", ""))
    if modern.modern(ctx):  # 2026-07-28: subscribers are subscriptions/listen streams
        await modern.bus.publish(ResourceUpdated(uri="test://watched-resource"))
        return types.CallToolResult(content=[text("updated; listen streams notified")])
    notified = "test://watched-resource" in client_of(ctx).subscriptions
    if notified:
        await ctx.session.send_notification(
            types.ResourceUpdatedNotification(
                params=types.ResourceUpdatedNotificationParams(uri="test://watched-resource")
            ),
            related_request_id=ctx.request_id,
        )
    return types.CallToolResult(content=[text(f"updated; subscriber notified: {notified}")])


async def list_tools(ctx: Context, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
    return types.ListToolsResult(tools=[spec for spec, _ in (*TOOLS.values(), *modern.TOOLS.values())])


async def call_tool(
    ctx: Context, params: types.CallToolRequestParams
) -> types.CallToolResult | types.InputRequiredResult:
    if params.name in modern.TOOLS:
        return await modern.TOOLS[params.name][1](ctx, params)
    entry = TOOLS.get(params.name)
    if entry is None:
        raise MCPError(types.INVALID_PARAMS, f"Unknown tool: {params.name!r}")
    return await entry[1](ctx, params.arguments or {})


# -- resources ------------------------------------------------------------------------------------------------

RESOURCES = [
    types.Resource(
        uri="test://static-text",
        name="Static Text Resource",
        description="A static text resource for testing",
        mime_type="text/plain",
    ),
    types.Resource(
        uri="test://static-binary",
        name="Static Binary Resource",
        description="A static binary resource (image) for testing",
        mime_type="image/png",
    ),
    types.Resource(
        uri="test://watched-resource",
        name="Watched Resource",
        description="A resource that can be subscribed to",
        mime_type="text/plain",
    ),
]
TEMPLATE = types.ResourceTemplate(
    uri_template="test://template/{id}/data",
    name="Resource Template",
    description="A resource template with parameter substitution",
    mime_type="application/json",
)
TEMPLATE_URI = re.compile(r"^test://template/(?P<id>[^/]+)/data$")


async def list_resources(ctx: Context, params: types.PaginatedRequestParams | None) -> types.ListResourcesResult:
    return types.ListResourcesResult(resources=RESOURCES)


async def list_templates(
    ctx: Context, params: types.PaginatedRequestParams | None
) -> types.ListResourceTemplatesResult:
    return types.ListResourceTemplatesResult(resource_templates=[TEMPLATE])


def _text_contents(uri: str, mime_type: str, body: str) -> types.ReadResourceResult:
    return types.ReadResourceResult(contents=[types.TextResourceContents(uri=uri, mime_type=mime_type, text=body)])


async def read_resource(ctx: Context, params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
    uri = str(params.uri)
    if uri == "test://static-text":
        return _text_contents(uri, "text/plain", "This is the content of the static text resource.")
    if uri == "test://static-binary":
        return types.ReadResourceResult(
            contents=[types.BlobResourceContents(uri=uri, mime_type="image/png", blob=_b64(PNG))]
        )
    if uri == "test://watched-resource":
        return _text_contents(uri, "text/plain", watched["text"])
    match = TEMPLATE_URI.match(uri)
    if match:
        item = match["id"]
        body = json.dumps({"id": item, "templateTest": True, "data": f"Data for ID: {item}"}, separators=(",", ":"))
        return _text_contents(uri, "application/json", body)
    raise MCPError(types.INVALID_PARAMS, f"Resource not found: {uri!r}", data={"uri": uri})


async def subscribe(ctx: Context, params: types.SubscribeRequestParams) -> types.EmptyResult:
    client_of(ctx).subscriptions.add(str(params.uri))
    return types.EmptyResult()


async def unsubscribe(ctx: Context, params: types.UnsubscribeRequestParams) -> types.EmptyResult:
    client_of(ctx).subscriptions.discard(str(params.uri))
    return types.EmptyResult()


# -- prompts --------------------------------------------------------------------------------------------------


def _argument(name: str, description: str) -> types.PromptArgument:
    return types.PromptArgument(name=name, description=description, required=True)


PROMPTS = [
    types.Prompt(name="test_simple_prompt", description="A simple prompt without arguments"),
    types.Prompt(
        name="test_prompt_with_arguments",
        description="A prompt with required arguments",
        arguments=[_argument("arg1", "First test argument"), _argument("arg2", "Second test argument")],
    ),
    types.Prompt(
        name="test_prompt_with_embedded_resource",
        description="A prompt that embeds a resource",
        arguments=[_argument("resourceUri", "URI of the resource to embed")],
    ),
    types.Prompt(name="test_prompt_with_image", description="A prompt with an image"),
]


def _user(content: Any) -> types.PromptMessage:
    return types.PromptMessage(role="user", content=content)


async def list_prompts(ctx: Context, params: types.PaginatedRequestParams | None) -> types.ListPromptsResult:
    return types.ListPromptsResult(prompts=[*PROMPTS, modern.MRTR_PROMPT])


async def get_prompt(
    ctx: Context, params: types.GetPromptRequestParams
) -> types.GetPromptResult | types.InputRequiredResult:
    if params.name == modern.MRTR_PROMPT.name:
        return await modern.mrtr_prompt(ctx, params)
    spec = next((prompt for prompt in PROMPTS if prompt.name == params.name), None)
    if spec is None:
        raise MCPError(types.INVALID_PARAMS, f"Unknown prompt: {params.name!r}")
    args = params.arguments or {}
    missing = [a.name for a in spec.arguments or [] if a.required and a.name not in args]
    if missing:
        raise MCPError(types.INVALID_PARAMS, f"Prompt {params.name!r} needs the argument(s) {', '.join(missing)}")
    if params.name == "test_simple_prompt":
        messages = [_user(text("This is a simple prompt for testing."))]
    elif params.name == "test_prompt_with_arguments":
        messages = [_user(text(f"Prompt with arguments: arg1='{args['arg1']}', arg2='{args['arg2']}'"))]
    elif params.name == "test_prompt_with_embedded_resource":
        resource = embedded(args["resourceUri"], "text/plain", "Embedded resource content for testing.")
        messages = [_user(resource), _user(text("Please process the embedded resource above."))]
    else:
        image = types.ImageContent(type="image", data=_b64(PNG), mime_type="image/png")
        messages = [_user(image), _user(text("Please analyze the image above."))]
    return types.GetPromptResult(description=spec.description, messages=messages)


# -- logging and completion -----------------------------------------------------------------------------------


async def set_level(ctx: Context, params: types.SetLevelRequestParams) -> types.EmptyResult:
    client_of(ctx).log_level = params.level
    return types.EmptyResult()


SUGGESTIONS = {
    ("ref/prompt", "test_prompt_with_arguments", "arg1"): ["paris", "park", "party", "test", "testing"],
    ("ref/prompt", "test_prompt_with_arguments", "arg2"): ["alpha", "beta", "gamma"],
    ("ref/resource", "test://template/{id}/data", "id"): ["1", "12", "123", "2", "42"],
}


async def complete(ctx: Context, params: types.CompleteRequestParams) -> types.CompleteResult:
    ref = params.ref
    target = ref.name if isinstance(ref, types.PromptReference) else ref.uri
    options = SUGGESTIONS.get((ref.type, target, params.argument.name), [])
    values = [value for value in options if value.startswith(params.argument.value)]
    return types.CompleteResult(completion=types.Completion(values=values, total=len(values), has_more=False))


def build_server() -> ConformanceServer:
    server = ConformanceServer(
        SERVER_NAME,
        version="1.0.0",
        instructions="MCP conformance test server (everything server requirements)",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_list_resource_templates=list_templates,
        on_read_resource=read_resource,
        on_subscribe_resource=subscribe,
        on_unsubscribe_resource=unsubscribe,
        on_list_prompts=list_prompts,
        on_get_prompt=get_prompt,
        on_completion=complete,
        on_subscriptions_listen=modern.listen_handler(),
    )
    server.add_request_handler("logging/setLevel", types.SetLevelRequestParams, set_level)
    modern.install(server)
    return server


async def serve_stdio(server: ConformanceServer) -> None:
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


async def serve_http(server: ConformanceServer, port: int, json_response: bool) -> None:
    app = server.streamable_http_app(host="127.0.0.1", json_response=json_response, session_idle_timeout=None)
    await uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")).serve()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, help="serve streamable HTTP on this port instead of stdio")
    parser.add_argument("--json-response", action="store_true", help="with --port: answer with JSON, not SSE")
    args = parser.parse_args()
    server = build_server()
    if args.port is None:
        anyio.run(serve_stdio, server)
    else:
        anyio.run(serve_http, server, args.port, args.json_response)


if __name__ == "__main__":
    main()
