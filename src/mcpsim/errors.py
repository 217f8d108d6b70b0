"""Every error mcpsim raises on purpose, in one tree; the message of each is written for the user.

```
MCPSimError                     root: the CLI prints these in one line; anything else is a bug (a traceback)
├── ConfigError (ValueError)    a flag, argument, file or config object cannot be used; raised before anything runs
│   ├── CommandError            the server command cannot be understood or found
│   ├── AuthConfigError         serving beyond loopback without a token
│   ├── TokenFileError          an --auth-token-file that cannot be used
│   └── SandboxUnavailable      --sandbox asked for, but bwrap or the namespaces it needs are missing here
├── RequestError                a client's request refused before it reaches an instance
│   ├── BadRequest              malformed: a missing header, a first request that is not initialize
│   │   ├── ParseError          the body is not JSON
│   │   ├── InvalidParams       a seed or config that cannot be used
│   │   │   └── InvalidSeed     not an integer in [0, 2**63)
│   │   ├── MethodNotServed     a method this endpoint does not serve (`server/discover` on /mcp)
│   │   └── ProtocolRejection   a 2026-07-28 request the SDK's envelope ladder refuses (its code and data)
│   ├── HandleError             a 2026-07-28 request whose episode handle cannot be used
│   │   ├── UnknownHandle       no such handle, or another principal's (the same answer)
│   │   ├── HandleEnded         the handle's instance has ended
│   │   └── HandleConflict      the URL and `_meta["mcpsim/handle"]` name different handles
│   ├── NotFound                no such session, handle, frame or blob
│   ├── NotReady                the instance exists but cannot take requests yet
│   ├── TooLarge                a body over its documented limit
│   │   └── ConfigTooLarge      a config over MAX_CONFIG_BYTES
│   ├── UnsupportedMediaType    a body that is not application/json
│   ├── Misdirected             a Host that is not this loopback server's (DNS rebinding)
│   ├── CrossOrigin             an Origin that is not this server's
│   └── ClientGone              the client left before its answer was ready
├── PoolError                   an instance the pool cannot provide
│   ├── CapacityError           --max-instances reached: retrying later can succeed
│   │   ├── PortsExhausted      every port of --port-range is taken
│   │   └── NoFreshInstance     the same, met by a handle-less 2026-07-28 request (its own code)
│   ├── ShuttingDown            the server is stopping
│   ├── StartError              the server command failed to start or to answer initialize
│   │   ├── BuildError          an isolated environment could not be built
│   │   └── LimitExceeded       a sandboxed instance hit one of its limits (memory, pids, CPU time, file size)
│   ├── InstanceGone            the instance ended or never existed
│   ├── TooManySeeds            one announcement carries too many seeds
│   ├── QueueFull               too many announced seeds are waiting
│   └── BranchError             an instance that cannot be branched (not ready, history too long)
│       └── NotDeterministic    replaying its calls on a fresh instance gave another result
├── LiveForkRefused             a live fork the server cannot make now (the pool branches by replay)
├── BackendError                a server answered mcpsim's own request with a JSON-RPC error
├── ControlPlaneUnreachable     a /control/* request could not reach its instance's server
├── MalformedReply              a server's answer mcpsim cannot use (a frame that is not base64)
├── MessageTooLarge             a message over --max-message-bytes was dropped (handed on as a value)
├── CgroupError (OSError)       a control group cannot be created, joined or removed
├── JsonTextError (ValueError)  untrusted JSON text that is not read (bad syntax, too deep, huge numbers)
├── EpisodeOver                 a shipped env asked to step after its episode ended (its tool answers isError)
├── TrajectoryError (ValueError) a trajectory file that cannot be read; the message names file:line
├── RecordingError (OSError)    a trajectory file that cannot be written
└── ClientError                 the rollout client
    ├── DatasetError (ValueError) a dataset row or file that cannot be used
    └── EpisodeError            ends one episode; recorded on its trajectory as {"type": kind, "message", "step"}
        ├── ConnectError        the MCP session could not be opened
        ├── EnvError            the environment failed during the episode
        ├── PolicyError         the policy raised or produced no action
        └── InvalidAction       an unknown tool or arguments its schema rejects
```

No class here knows HTTP: the managed server maps them to a status, a JSON-RPC code and a body in one place,
`mcpsim.server.edge`. Foreign errors (an `OSError` from exec, an httpx error, a JSON error) are translated into
this tree where they happen, so a caller only ever catches `MCPSimError` (or one of its branches).
Standard library only: the production servers in `mcpsim.envs` and the watchdog may import it.
"""

from typing import Any


class MCPSimError(Exception):
    """Root of every error mcpsim raises on purpose; its message names the cause for the user."""


# -- start-up -----------------------------------------------------------------------------------------------------


class ConfigError(MCPSimError, ValueError):
    """A flag, argument, file or config object that cannot be used; raised before anything runs.

    A `ValueError` too, so library callers that validate arguments with `except ValueError` keep working."""


class ClusterUnreachable(ConfigError):
    """`--ray ADDRESS`: the Ray cluster cannot be reached, or its agents cannot be started; raised before serving."""


class CommandError(ConfigError):
    """The server command cannot be understood or found; raised at start-up, before any instance exists."""


class AuthConfigError(ConfigError):
    """The server was asked to serve beyond loopback without a token."""


class SandboxUnavailable(ConfigError):
    """`--sandbox standard|strict` was asked for but cannot be built on this machine (no `bwrap`, user or network
    namespaces refused): the server refuses to start rather than run instances without it."""


class TokenFileError(ConfigError):
    """An `--auth-token-file` that cannot be used; the message names the file (and the line)."""


# -- requests -----------------------------------------------------------------------------------------------------


class RequestError(MCPSimError):
    """A client's request refused before it reaches an instance."""


class BadRequest(RequestError):
    """A malformed request: a missing header, a first request that is not `initialize`, a disconnect mid-body."""


class ParseError(BadRequest):
    """The request body is not JSON."""


class InvalidParams(BadRequest):
    """A seed or config that cannot be used."""


class InvalidSeed(InvalidParams, ValueError):
    """Not a seed: seeds are integers in [0, 2**63) (`mcpsim.wire.parse_seed`)."""


class MethodNotServed(BadRequest):
    """A method this endpoint does not serve (`server/discover` on `/mcp`, where every session is an instance)."""


class ProtocolRejection(BadRequest):
    """A 2026-07-28 request refused by the envelope ladder or the version gate: `code` and `data` are the spec's
    (-32602 missing envelope, -32020 header mismatch, -32022 unsupported version, -32601 removed method)."""

    def __init__(self, message: str, code: int, data: Any = None) -> None:
        super().__init__(message)
        self.code, self.data = code, data


class HandleError(RequestError):
    """A 2026-07-28 request whose episode handle cannot be used; `data` names the handle and why."""

    def __init__(self, message: str, handle: str | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.data = {"handle": handle, "reason": reason or message}


class UnknownHandle(HandleError):
    """No instance has this handle, or it belongs to another principal (answered alike: no existence oracle)."""


class HandleEnded(HandleError):
    """The handle's instance has ended (DELETE, idle or orphan timeout, the server exited)."""


class HandleConflict(HandleError):
    """`/envs/<h>/mcp` and `_meta["mcpsim/handle"]` name two different handles."""


class NotFound(RequestError):
    """No such session, handle, frame or blob (or one the caller may not see: the same answer)."""


class NotReady(RequestError):
    """The instance exists but cannot take requests in its state."""


class TooLarge(RequestError):
    """A body over its documented limit (`--max-message-bytes`)."""


class ConfigTooLarge(TooLarge):
    """A config over `MAX_CONFIG_BYTES`: the instance's parameters, so answered as invalid parameters."""


class UnsupportedMediaType(RequestError):
    """A body that is not `application/json`."""


class Misdirected(RequestError):
    """A loopback server asked for under a `Host` that is not a loopback name (DNS rebinding)."""


class CrossOrigin(RequestError):
    """A browser request whose `Origin` is not this server's own."""


class TooManyInFlight(RequestError):
    """One client already has `--max-in-flight` requests unanswered (`serve --stdio`, translated): this one is
    refused at once, the others go on; retrying once some are answered can succeed."""


class ClientGone(RequestError):
    """The client closed its request before the answer was ready (nothing is left running for it)."""


# -- the pool -----------------------------------------------------------------------------------------------------


class PoolError(MCPSimError):
    """An instance request the pool cannot satisfy; the message names the cause for the client."""


class CapacityError(PoolError):
    """`--max-instances` reached: retrying later can succeed."""


class PortsExhausted(CapacityError):
    """Every port of `--port-range` is leased or taken by another program."""


class NoFreshInstance(CapacityError):
    """A handle-less 2026-07-28 request needed a fresh instance and `--max-instances` was reached."""


class ShuttingDown(PoolError):
    """The server is stopping: no new instance starts."""


class StartError(PoolError):
    """The server command failed to start or to become ready."""


class BuildError(StartError):
    """An environment could not be built; sessions waiting for it get this, with the installer's output tail."""


class LimitExceeded(StartError):
    """A sandboxed instance was ended by one of its limits; the message names it ("exceeded memory limit 1G").

    Raised when the limit ends a start; a limit hit later ends the session's requests with the same message."""


class InstanceGone(PoolError):
    """The instance exists no more (ended, idled out, or never existed)."""


class NodeGone(InstanceGone):
    """`--ray`: the Ray node (or its agent) that held the instance is gone, and the instance with it; `data`
    names the node so a trainer can tell a lost node from an ended episode."""

    def __init__(self, message: str, node_id: str) -> None:
        super().__init__(message)
        self.data = {"node": node_id}


class ClusterFull(CapacityError):
    """`--ray`: every live node's pool is at `--max-instances` (or no node has an agent): retrying later can
    succeed."""


class TooManySeeds(PoolError):
    """One announcement carries more seeds than `MAX_SEEDS_PER_ANNOUNCE`: split it."""


class QueueFull(PoolError):
    """The announced seeds would pass `MAX_QUEUED_SEEDS`: retry when sessions have taken some."""


class BranchError(PoolError):
    """An instance that cannot be branched: not ready, too many copies asked for, or a history too long to replay."""


class NotDeterministic(BranchError):
    """Replaying an instance's recorded calls on a fresh instance with its seed and config gave a different last
    result: its copies would not be copies, so the branch is refused ("server is not deterministic at step N")."""


class LiveForkRefused(MCPSimError):
    """A forked instance could not copy itself now (busy, threads, sockets, no answer); the pool replays instead."""


# -- messages -----------------------------------------------------------------------------------------------------


class BackendError(MCPSimError):
    """The server answered one of mcpsim's own requests (the initialize handshake) with a JSON-RPC error."""

    def __init__(self, message: str, code: int, data: Any = None) -> None:
        super().__init__(message)
        self.message, self.code, self.data = message, code, data


class ControlPlaneUnreachable(MCPSimError):
    """A `/control/*` request could not be forwarded to its instance's server (refused, timed out, closed)."""


class MalformedReply(MCPSimError):
    """A server's answer that mcpsim cannot use (the dashboard's latest frame is not valid base64)."""


class MessageTooLarge(MCPSimError):
    """A line longer than the limit was dropped; `request_id` is the id it carried, when one could be seen.

    Returned as a value by the framing (not raised), so only the request it answered fails."""

    def __init__(self, size: int, limit: int, request_id: str | int | None) -> None:
        super().__init__(size, limit, request_id)
        self.size, self.limit, self.request_id = size, limit, request_id

    def __str__(self) -> str:
        return f"a message of more than {self.limit} bytes (at least {self.size}) was dropped"


class CgroupError(MCPSimError, OSError):
    """A control group cannot be created, joined or removed (an `OSError` too: it is one, from the kernel)."""


class JsonTextError(MCPSimError, ValueError):
    """Untrusted JSON text that is not read; the message says why and at which column (of a one-line text)."""


class EpisodeOver(MCPSimError):
    """A production server of `mcpsim.envs` was asked for a step after its episode terminated or was truncated;
    the tool answers with an `isError` result saying so (the session goes on)."""


class TrajectoryError(MCPSimError, ValueError):
    """A trajectory file that cannot be read: missing, not a trajectory, cut short or corrupt; names file:line."""


class RecordingError(MCPSimError, OSError):
    """A trajectory file that cannot be written (a missing directory, no permission, a full disk)."""


# -- the rollout client -------------------------------------------------------------------------------------------


class ClientError(MCPSimError):
    """Base class of the rollout client's errors."""


class DatasetError(ClientError, ValueError):
    """A dataset row or file cannot be used (no seed, not a JSON object, unreadable file)."""


class EpisodeError(ClientError):
    """Ends one episode; recorded on its trajectory as `{"type": kind, "message": ...}`."""

    kind = "error"

    def __init__(self, message: str, *, step: int | None = None) -> None:
        super().__init__(message)
        self.step = step

    def record(self) -> dict[str, Any]:
        return {"type": self.kind, "message": str(self), "step": self.step}


class ConnectError(EpisodeError):
    """The MCP session could not be opened (unreachable URL, server refused, handshake failed)."""

    kind = "connect"


class EnvError(EpisodeError):
    """The environment failed during the episode (tool call raised a JSON-RPC error, connection lost)."""

    kind = "environment"


class PolicyError(EpisodeError):
    """The policy raised or could not produce an action (API error after retries, no recorded action)."""

    kind = "policy"


class InvalidAction(EpisodeError):
    """The policy chose a tool the server does not offer, or arguments its input schema rejects."""

    kind = "invalid_action"


# -- reading an error ---------------------------------------------------------------------------------------------


def leaf_exceptions(exc: BaseException) -> list[BaseException]:
    """The non-group exceptions inside (possibly nested) exception groups, in order."""
    if isinstance(exc, BaseExceptionGroup):
        leaves: list[BaseException] = []
        for inner in exc.exceptions:
            leaves.extend(leaf_exceptions(inner))
        return leaves
    return [exc]


def describe_exception(exc: BaseException) -> str:
    """One line naming the cause: the first real error inside task-group wrappers; a foreign one with its type
    (mcpsim's own messages already say what happened)."""
    leaves = leaf_exceptions(exc) or [exc]
    first = leaves[0]
    text = str(first).strip().split("\n")[0].strip() or repr(first)  # first line: the cause, not the hints
    name = type(first).__name__
    if isinstance(first, MCPSimError):
        return text
    return f"{name}: {text}" if name not in text else text
