"""`ScriptedPolicy`: fixed actions, per-episode scripts, or any function of (episode, observation)."""

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mcpsim.client.policies.base import EpisodeContext, Policy
from mcpsim.trajectory import Action, Observation

ActionLike = Action | Mapping[str, Any] | tuple[str, dict[str, Any]] | None
Script = Sequence[ActionLike]


class ScriptedPolicy(Policy):
    """Play `actions` in order (then end the episode), or ask a function.

    `actions` may be one script for every episode, a mapping from env id (or seed) to a script, or a callable
    `fn(episode, observation) -> action | None`, sync or async. Items are `Action`s, `{"tool", "arguments"}` dicts
    or `(tool, arguments)` tuples.
    """

    name = "scripted"

    def __init__(self, actions: Script | Mapping[Any, Script] | Callable[..., Any]) -> None:
        self.actions = actions

    def _script(self, episode: EpisodeContext) -> Script:
        if isinstance(self.actions, Mapping):
            for key in (episode.env_id, episode.seed, str(episode.seed)):
                if key in self.actions:
                    return self.actions[key]
            return []
        return self.actions  # type: ignore[return-value]

    async def act(self, episode: EpisodeContext, observation: Observation) -> Action | None:
        if callable(self.actions) and not isinstance(self.actions, Sequence | Mapping):
            value = self.actions(episode, observation)
            if inspect.isawaitable(value):
                value = await value
            return Action.coerce(value)
        script = self._script(episode)
        index = episode.step
        return Action.coerce(script[index]) if index < len(script) else None
