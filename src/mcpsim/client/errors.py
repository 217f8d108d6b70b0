"""Errors of the rollout client, and one place that turns any exception into a readable sentence.

An episode that fails records *why* on its trajectory; the message must name the cause (the URL that refused,
the tool that does not exist, the line of the file that is corrupt) because it is often all a user sees.
"""

from typing import Any


class ClientError(Exception):
    """Base class of the rollout client's errors."""


class DatasetError(ClientError, ValueError):
    """A dataset row or file cannot be used (no seed, not a JSON object, unreadable file)."""


class TrajectoryFileError(ClientError, ValueError):
    """A trajectory file is missing, truncated or corrupt; the message names the file and line."""


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


def leaf_exceptions(exc: BaseException) -> list[BaseException]:
    """The non-group exceptions inside (possibly nested) exception groups, in order."""
    if isinstance(exc, BaseExceptionGroup):
        leaves: list[BaseException] = []
        for inner in exc.exceptions:
            leaves.extend(leaf_exceptions(inner))
        return leaves
    return [exc]


def describe_exception(exc: BaseException) -> str:
    """One line naming the cause: the first real error inside task-group wrappers, with its type."""
    leaves = leaf_exceptions(exc) or [exc]
    first = leaves[0]
    text = str(first).strip().split("\n")[0].strip() or repr(first)  # first line: the cause, not the hints
    name = type(first).__name__
    if isinstance(first, ClientError):
        return text
    return f"{name}: {text}" if name not in text else text
