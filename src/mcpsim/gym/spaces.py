"""Gymnasium spaces for an MCP tool: a `Discrete` action from an enumerated argument, else a `Text` action, and
a `Text` observation (the observation's text blocks; images are noted, not passed).

`ActionCodec.for_tools(tools, tool=None)` picks the tool (the named one, else the only one, else the first with
an enumerated argument) and turns a Gymnasium action into an mcpsim `Action`:
- a tool whose one required argument (or only argument) has an `enum` -> `Discrete(len(enum))`, action i
  calls it with `{arg: enum[i]}` (FrozenLake's `lake_move` -> LEFT, DOWN, RIGHT, UP as 0..3);
- a tool with one string argument -> `Text`, the action is that argument's value;
- any other tool -> `Text`, the action is its arguments as a JSON object.
"""

import json
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gymnasium import spaces

from mcpsim.client.content import text_of
from mcpsim.errors import ConfigError, InvalidAction
from mcpsim.trajectory import Action, Observation

CHARSET = frozenset(string.printable)
"""Characters of the Text spaces; others in an observation are replaced by `?`."""
MAX_OBSERVATION_CHARS = 8192
MAX_ACTION_CHARS = 4096


def observation_space(max_length: int = MAX_OBSERVATION_CHARS) -> spaces.Text:
    return spaces.Text(max_length=max_length, min_length=0, charset="".join(sorted(CHARSET)))


def observation_text(observation: Observation, max_length: int = MAX_OBSERVATION_CHARS) -> str:
    """The observation as one string in the Text space (truncated to `max_length`, foreign characters `?`)."""
    text = text_of(observation)
    return "".join(ch if ch in CHARSET else "?" for ch in text[:max_length])


def _enum_argument(tool: Mapping[str, Any]) -> tuple[str, list[Any]] | None:
    schema = tool.get("inputSchema") or {}
    properties = schema.get("properties") or {}
    required = list(schema.get("required") or [])
    candidates = required if len(required) == 1 else list(properties) if len(properties) == 1 else []
    for name in candidates:
        enum = (properties.get(name) or {}).get("enum")
        if isinstance(enum, list) and enum:
            return name, enum
    return None


@dataclass(frozen=True)
class ActionCodec:
    """How a Gymnasium action becomes a call of `tool`."""

    tool: str
    space: spaces.Space
    argument: str | None = None
    choices: tuple[Any, ...] = ()

    @classmethod
    def for_tools(cls, tools: Sequence[Mapping[str, Any]], tool: str | None = None) -> "ActionCodec":
        names = [str(t.get("name")) for t in tools]
        if not tools:
            raise ConfigError("the server lists no tools: there is no action to take")
        if tool is not None:
            if tool not in names:
                raise ConfigError(f"the server has no tool {tool!r} (it has {', '.join(names)})")
            chosen = tools[names.index(tool)]
        elif len(tools) == 1:
            chosen = tools[0]
        else:
            chosen = next((t for t in tools if _enum_argument(t)), None)
            if chosen is None:
                raise ConfigError(f"the server has several tools ({', '.join(names)}): pick one with tool=")
        name = str(chosen["name"])
        enum = _enum_argument(chosen)
        if enum is not None:
            return cls(name, spaces.Discrete(len(enum[1])), enum[0], tuple(enum[1]))
        properties = (chosen.get("inputSchema") or {}).get("properties") or {}
        text = spaces.Text(max_length=MAX_ACTION_CHARS, min_length=0, charset="".join(sorted(CHARSET)))
        if len(properties) == 1:
            (argument,) = properties
            if (properties[argument] or {}).get("type") == "string":
                return cls(name, text, argument)
        return cls(name, text)

    def action(self, value: Any) -> Action:
        """The tool call of a Gymnasium action (raises `InvalidAction` for one outside the space)."""
        if self.choices:
            try:
                index = int(value)
            except (TypeError, ValueError):
                raise InvalidAction(f"action must be an integer in 0..{len(self.choices) - 1}, got {value!r}") from None
            if not 0 <= index < len(self.choices):
                raise InvalidAction(f"action must be in 0..{len(self.choices) - 1}, got {index}")
            return Action(self.tool, {self.argument: self.choices[index]})
        if not isinstance(value, str):
            raise InvalidAction(f"action must be a string, got {type(value).__name__}")
        if self.argument is not None:
            return Action(self.tool, {self.argument: value})
        try:
            arguments = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as exc:
            raise InvalidAction(f"action must be the tool's arguments as a JSON object: {exc.msg}") from None
        if not isinstance(arguments, dict):
            raise InvalidAction(f"action must be a JSON object, got {type(arguments).__name__}")
        return Action(self.tool, arguments)
