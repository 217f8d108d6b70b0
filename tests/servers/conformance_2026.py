"""The 2026-07-28 fixtures of the conformance server: multi round-trip tools, diagnostics, subscriptions.

The conformance suite 0.2.0 (`--requirements 2026-07-28`) asks the server under test for fixtures the handshake
era never had: tools that answer with an `InputRequiredResult` (SEP-2322, MRTR) and finish when the client
retries with `inputResponses`/`requestState`, diagnostic tools for the stateless rules of SEP-2575 (a missing
client capability, log notifications without a per-request log level, a response stream that must carry no
server request), a `subscriptions/listen` stream and hooks that change the tool and prompt lists.

Every fixture is dual-era, so the same server can stand behind mcpsim in either revision: on a 2026-07-28
request an input is asked for by returning `InputRequiredResult`; on a handshake-era connection the same input
is asked for with a server-to-client request mid-call (the translation mcpsim has to do between the two is
exactly this pair). `requestState` is sealed by the SDK's `RequestStateBoundary` (AES-GCM, process-local key), so
a tampered echo is refused before a handler sees it.
"""

from collections.abc import Awaitable, Callable
from typing import Any

import mcp.types as types
from mcp.server.lowlevel import Server
from mcp.server.request_state import RequestStateBoundary, RequestStateSecurity
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, PromptsListChanged, ToolsListChanged
from mcp.shared.exceptions import MCPError
from mcp.shared.message import ServerMessageMetadata
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import TypeAdapter

Context = Any  # mcp.server.context.ServerRequestContext
Params = types.CallToolRequestParams | types.GetPromptRequestParams
Outcome = types.CallToolResult | types.InputRequiredResult
ToolHandler = Callable[[Context, types.CallToolRequestParams], Awaitable[Outcome]]

bus = InMemorySubscriptionBus()
"""Where the change hooks publish; every open `subscriptions/listen` stream reads from it."""

INPUT_REQUEST: TypeAdapter[types.InputRequest] = TypeAdapter(types.InputRequest)
NO_ARGUMENTS: dict[str, Any] = {"type": "object", "properties": {}}

CAPABILITY_OF = {
    "elicitation/create": types.ClientCapabilities(elicitation=types.ElicitationCapability()),
    "sampling/createMessage": types.ClientCapabilities(sampling=types.SamplingCapability()),
    "roots/list": types.ClientCapabilities(roots=types.RootsCapability()),
}
RESULT_OF: dict[str, type[types.Result]] = {
    "elicitation/create": types.ElicitResult,
    "sampling/createMessage": types.CreateMessageResult,
    "roots/list": types.ListRootsResult,
}
ANSWER_TYPES: dict[str, tuple[type[types.Result], ...]] = {
    **{method: (result,) for method, result in RESULT_OF.items()},
    "sampling/createMessage": (types.CreateMessageResult, types.CreateMessageResultWithTools),
}


def install(server: Server) -> None:
    """Seal `requestState` at the wire boundary (a tampered echo gets -32602 before any handler runs)."""
    server.middleware.append(RequestStateBoundary(RequestStateSecurity.ephemeral(), default_audience=server.name))


def listen_handler() -> ListenHandler:
    return ListenHandler(bus)


def modern(ctx: Context) -> bool:
    return ctx.protocol_version in MODERN_PROTOCOL_VERSIONS


def text(value: str) -> types.TextContent:
    return types.TextContent(type="text", text=value)


def done(value: str) -> types.CallToolResult:
    return types.CallToolResult(content=[text(value)])


def elicit(message: str, field: str, kind: str = "string") -> types.InputRequest:
    schema = {"type": "object", "properties": {field: {"type": kind}}, "required": [field]}
    return INPUT_REQUEST.validate_python(
        {"method": "elicitation/create", "params": {"mode": "form", "message": message, "requestedSchema": schema}}
    )


def sample(prompt: str, max_tokens: int) -> types.InputRequest:
    message = {"role": "user", "content": {"type": "text", "text": prompt}}
    return INPUT_REQUEST.validate_python(
        {"method": "sampling/createMessage", "params": {"messages": [message], "maxTokens": max_tokens}}
    )


ROOTS: types.InputRequest = INPUT_REQUEST.validate_python({"method": "roots/list", "params": {}})


def missing_capability(methods: list[str]) -> MCPError:
    required: dict[str, Any] = {}
    for method in methods:
        required.update(CAPABILITY_OF[method].model_dump(by_alias=True, mode="json", exclude_none=True))
    data = types.MissingRequiredClientCapabilityErrorData.model_validate({"requiredCapabilities": required})
    return MCPError(
        types.MISSING_REQUIRED_CLIENT_CAPABILITY,
        f"this request needs the client capabilities {sorted(required)}, which the request did not declare",
        data=data.model_dump(by_alias=True, mode="json", exclude_none=True),
    )


def declared(ctx: Context, request: types.InputRequest) -> bool:
    return ctx.session.check_client_capability(CAPABILITY_OF[request.method])


async def gather(
    ctx: Context, params: Params, asks: dict[str, types.InputRequest], state: str | None = None
) -> dict[str, types.InputResponse] | types.InputRequiredResult:
    """The answers to `asks`, or the `InputRequiredResult` that asks for the ones still missing.

    2026-07-28: answers come from the retry's `inputResponses` (extra keys ignored, missing ones asked again);
    handshake era: each input is a server-to-client request on this call's stream, answered at once.
    """
    undeclared = [request.method for request in asks.values() if not declared(ctx, request)]
    if undeclared:
        raise missing_capability(undeclared)
    if not modern(ctx):
        metadata = ServerMessageMetadata(related_request_id=ctx.request_id)
        return {
            key: await ctx.session.send_request(request, RESULT_OF[request.method], metadata=metadata)
            for key, request in asks.items()
        }
    answers = params.input_responses or {}
    wanted = {
        key: request for key, request in asks.items() if not isinstance(answers.get(key), ANSWER_TYPES[request.method])
    }
    if wanted:
        return types.InputRequiredResult(input_requests=wanted, request_state=state)
    return {key: answers[key] for key in asks}


def field(answer: types.InputResponse, name: str) -> str:
    content = answer.content if isinstance(answer, types.ElicitResult) else None
    return str((content or {}).get(name, ""))


def sampled(answer: types.InputResponse) -> str:
    content = getattr(answer, "content", None)
    return content.text if isinstance(content, types.TextContent) else str(content)


def root_uris(answer: types.InputResponse) -> str:
    return ", ".join(str(root.uri) for root in getattr(answer, "roots", []))


def state_of(ctx: Context, params: Params) -> str | None:
    """The plaintext `requestState` the boundary unsealed (None on the first round and on the handshake era)."""
    return params.request_state if modern(ctx) else None


# -- tools ----------------------------------------------------------------------------------------------------

TOOLS: dict[str, tuple[types.Tool, ToolHandler]] = {}


def tool(name: str, description: str, input_schema: dict[str, Any] | None = None):
    def register(handler: ToolHandler) -> ToolHandler:
        TOOLS[name] = (
            types.Tool(name=name, description=description, input_schema=input_schema or NO_ARGUMENTS),
            handler,
        )
        return handler

    return register


@tool("test_input_required_result_elicitation", "Asks for the user's name (elicitation), then greets")
async def mrtr_elicitation(ctx: Context, params: types.CallToolRequestParams) -> Outcome:
    answers = await gather(ctx, params, {"user_name": elicit("What is your name?", "name")})
    if isinstance(answers, types.InputRequiredResult):
        return answers
    return done(f"Hello, {field(answers['user_name'], 'name')}!")


@tool("test_input_required_result_sampling", "Asks the client's model for the capital of France")
async def mrtr_sampling(ctx: Context, params: types.CallToolRequestParams) -> Outcome:
    answers = await gather(ctx, params, {"capital_question": sample("What is the capital of France?", 100)})
    if isinstance(answers, types.InputRequiredResult):
        return answers
    return done(f"LLM response: {sampled(answers['capital_question'])}")


@tool("test_input_required_result_list_roots", "Asks for the client's roots and names them")
async def mrtr_roots(ctx: Context, params: types.CallToolRequestParams) -> Outcome:
    answers = await gather(ctx, params, {"client_roots": ROOTS})
    if isinstance(answers, types.InputRequiredResult):
        return answers
    return done(f"Roots: {root_uris(answers['client_roots'])}")


CONFIRM = elicit("Please confirm", "ok", "boolean")


@tool("test_input_required_result_request_state", "Asks for a confirmation and checks its requestState")
async def mrtr_request_state(ctx: Context, params: types.CallToolRequestParams) -> Outcome:
    answers = await gather(ctx, params, {"confirm": CONFIRM}, state="request-state:round-1")
    if isinstance(answers, types.InputRequiredResult):
        return answers
    if modern(ctx) and state_of(ctx, params) != "request-state:round-1":
        raise MCPError(types.INVALID_PARAMS, "requestState is missing or not the one this tool minted")
    return done(f"state-ok: confirmed={field(answers['confirm'], 'ok')}")


@tool("test_input_required_result_tampered_state", "Like the request-state tool; a tampered echo is refused")
async def mrtr_tampered_state(ctx: Context, params: types.CallToolRequestParams) -> Outcome:
    answers = await gather(ctx, params, {"confirm": CONFIRM}, state="tampered-state:round-1")
    if isinstance(answers, types.InputRequiredResult):
        return answers
    return done("state-ok")


@tool("test_input_required_result_multiple_inputs", "Asks for a name, a sampled greeting and the roots at once")
async def mrtr_multiple(ctx: Context, params: types.CallToolRequestParams) -> Outcome:
    asks = {
        "user_name": elicit("What is your name?", "name"),
        "greeting": sample("Generate a greeting", 50),
        "client_roots": ROOTS,
    }
    answers = await gather(ctx, params, asks, state="multiple-inputs:round-1")
    if isinstance(answers, types.InputRequiredResult):
        return answers
    name, greeting = field(answers["user_name"], "name"), sampled(answers["greeting"])
    return done(f"{greeting}, {name}! Roots: {root_uris(answers['client_roots'])}")


@tool("test_input_required_result_multi_round", "Asks two questions in two rounds; the state carries the first")
async def mrtr_multi_round(ctx: Context, params: types.CallToolRequestParams) -> Outcome:
    if not modern(ctx):
        first = await gather(ctx, params, {"step1": elicit("Step 1: What is your name?", "name")})
        second = await gather(ctx, params, {"step2": elicit("Step 2: What is your favorite color?", "color")})
        assert not isinstance(first, types.InputRequiredResult) and not isinstance(second, types.InputRequiredResult)
        return done(f"{field(first['step1'], 'name')} likes {field(second['step2'], 'color')}")
    state = state_of(ctx, params) or ""
    if state.startswith("multi-round:2:"):
        step2 = await gather(ctx, params, {"step2": elicit("Step 2: What is your favorite color?", "color")}, state)
        if isinstance(step2, types.InputRequiredResult):
            return step2
        return done(f"{state.removeprefix('multi-round:2:')} likes {field(step2['step2'], 'color')}")
    step1 = await gather(ctx, params, {"step1": elicit("Step 1: What is your name?", "name")}, "multi-round:1")
    if isinstance(step1, types.InputRequiredResult):
        return step1
    name = field(step1["step1"], "name")  # from now on the name travels in the (sealed) state
    request = elicit("Step 2: What is your favorite color?", "color")
    return types.InputRequiredResult(input_requests={"step2": request}, request_state=f"multi-round:2:{name}")


@tool("test_input_required_result_capabilities", "Asks only for the inputs whose capabilities the request declared")
async def mrtr_capabilities(ctx: Context, params: types.CallToolRequestParams) -> Outcome:
    asks = {"user_name": elicit("What is your name?", "name"), "capital_question": sample("Capital of France?", 50)}
    usable = {key: request for key, request in asks.items() if declared(ctx, request)}
    if not usable:
        raise missing_capability([request.method for request in asks.values()])
    answers = await gather(ctx, params, usable)
    if isinstance(answers, types.InputRequiredResult):
        return answers
    return done(f"answered: {', '.join(sorted(answers))}")


@tool("test_missing_capability", "Needs the client's sampling capability; without it: -32021")
async def needs_sampling(ctx: Context, params: types.CallToolRequestParams) -> Outcome:
    answers = await gather(ctx, params, {"capital_question": sample("What is the capital of France?", 100)})
    if isinstance(answers, types.InputRequiredResult):
        return answers
    return done(f"LLM response: {sampled(answers['capital_question'])}")


@tool("test_streaming_elicitation", "Reports progress, then asks for input as a result, never as a server request")
async def streaming_elicitation(ctx: Context, params: types.CallToolRequestParams) -> Outcome:
    await ctx.session.report_progress(0, 1, "asking")  # a no-op without a progress token
    answers = await gather(ctx, params, {"user_name": elicit("What is your name?", "name")})
    if isinstance(answers, types.InputRequiredResult):
        return answers
    return done(f"Hello, {field(answers['user_name'], 'name')}!")


@tool("test_logging_tool", "Logs three messages (sent only when the request opted in with a log level)")
async def logging_tool(ctx: Context, params: types.CallToolRequestParams) -> Outcome:
    for message in ("Tool execution started", "Tool processing data", "Tool execution completed"):
        await ctx.session.send_log_message("info", message, logger="conformance", related_request_id=ctx.request_id)
    return done("Tool with logging executed successfully")


@tool("test_trigger_tool_change", "Announces a change of the tool list (listen streams, or list_changed)")
async def trigger_tool_change(ctx: Context, params: types.CallToolRequestParams) -> Outcome:
    if modern(ctx):
        await bus.publish(ToolsListChanged())
    else:
        await ctx.session.send_tool_list_changed()
    return done("tool list change announced")


@tool("test_trigger_prompt_change", "Announces a change of the prompt list (listen streams, or list_changed)")
async def trigger_prompt_change(ctx: Context, params: types.CallToolRequestParams) -> Outcome:
    if modern(ctx):
        await bus.publish(PromptsListChanged())
    else:
        await ctx.session.send_prompt_list_changed()
    return done("prompt list change announced")


HEADER_SCHEMA = {
    "type": "object",
    "properties": {
        "region": {"type": "string", "description": "Mirrored as Mcp-Param-Region", "x-mcp-header": "Region"},
        "query": {"type": "string"},
    },
    "required": ["region"],
}


@tool("test_custom_header", "Echoes its region, which clients mirror into the Mcp-Param-Region header", HEADER_SCHEMA)
async def custom_header(ctx: Context, params: types.CallToolRequestParams) -> Outcome:
    return done(f"region: {(params.arguments or {}).get('region')}")


# -- prompts --------------------------------------------------------------------------------------------------

MRTR_PROMPT = types.Prompt(name="test_input_required_result_prompt", description="A prompt that asks for context first")


async def mrtr_prompt(
    ctx: Context, params: types.GetPromptRequestParams
) -> types.GetPromptResult | types.InputRequiredResult:
    asks = {"user_context": elicit("What context should the prompt use?", "context")}
    answers = await gather(ctx, params, asks)
    if isinstance(answers, types.InputRequiredResult):
        return answers
    message = types.PromptMessage(
        role="user", content=text(f"Use this context: {field(answers['user_context'], 'context')}")
    )
    return types.GetPromptResult(description=MRTR_PROMPT.description, messages=[message])
