"""`PlaybackPolicy(path)`: re-issue the actions of a recorded run, episode by episode (policy replay).

Episodes are matched by env id (the recording's header keeps the dataset with its env ids, so
`make(url, dataset=read_recording(path).dataset)` starts the same episodes). When an episode's recorded
actions run out, the episode ends (`None`), so a replay never invents moves.
"""

from pathlib import Path
from typing import Any

import anyio

from mcpsim.client.policies.base import EpisodeContext, Policy
from mcpsim.errors import PolicyError
from mcpsim.trajectory import Action, Observation, Recording, read_recording


class PlaybackPolicy(Policy):
    name = "playback"

    def __init__(self, path: str | Path | Recording, *, strict: bool = True) -> None:
        self.recording: Recording | None = path if isinstance(path, Recording) else None
        self.path = Path(path.path if isinstance(path, Recording) else path)
        self.strict = strict
        self._actions: dict[str, list[Action]] | None = None
        self._lock = anyio.Lock()

    async def _load(self) -> dict[str, list[Action]]:
        async with self._lock:
            if self._actions is None:
                if self.recording is None:
                    self.recording = await anyio.to_thread.run_sync(
                        lambda: read_recording(self.path, strict=self.strict)
                    )
                self._actions = {t.env_id: t.actions for t in self.recording.trajectories}
            return self._actions

    async def act(self, episode: EpisodeContext, observation: Observation) -> Action | None:
        actions = await self._load()
        recorded = actions.get(episode.env_id)
        if recorded is None:
            known = ", ".join(list(actions)[:5])
            raise PolicyError(f"no recorded episode {episode.env_id!r} in {self.path} (it has: {known})")
        index = episode.step
        if index >= len(recorded):
            return None
        action = recorded[index]
        return Action(action.tool, dict(action.arguments))

    def describe(self) -> dict[str, Any]:
        return {"policy": self.name, "source": str(self.path)}
