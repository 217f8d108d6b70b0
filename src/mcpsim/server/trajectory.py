"""Reading a trajectory file (`mcpsim.trajectory/1` JSONL) into episodes, for the viewer.

The format: a header line, then step lines of environments that may interleave (episodes run concurrently),
`blob` lines holding image bytes once (steps refer to them by sha256), and one `episode` line per finished
episode. Steps are grouped by `env_id`; an `episode` line closes that environment's current episode, so an
environment that runs again later starts a new one. A line still being written (no newline yet, not JSON) is
left for the next read; any other malformed line is an error naming its line number (`FILE:LINE: ...`).
Lines nested too deeply or holding over-long numbers are such errors too (`mcpsim.protocol.jsontext`).
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcpsim.errors import JsonTextError, TrajectoryError
from mcpsim.protocol.jsontext import parse_json_text

FORMAT = "mcpsim.trajectory/1"


@dataclass
class Episode:
    env_id: str
    seed: Any = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] | None = None

    def describe(self, index: int) -> dict[str, Any]:
        rewards = [step.get("reward") for step in self.steps if isinstance(step.get("reward"), int | float)]
        return {
            "index": index,
            "env_id": self.env_id,
            "seed": self.seed,
            "steps": self.steps,
            "summary": self.summary,
            "step_count": len(self.steps),
            "total_reward": (self.summary or {}).get("total_reward", sum(rewards) if rewards else None),
            "finished": self.summary is not None,
        }


@dataclass
class Trajectory:
    header: dict[str, Any]
    episodes: list[Episode]
    blobs: dict[str, tuple[str, str]]
    """sha256 hex -> (mimeType, base64 data)."""
    ignored_lines: int = 0

    def describe(self, path: Path) -> dict[str, Any]:
        return {
            "file": str(path),
            "header": self.header,
            "episodes": [episode.describe(index) for index, episode in enumerate(self.episodes)],
            "blobs": sorted(self.blobs),
            "ignored_lines": self.ignored_lines,
        }


def load(path: Path) -> Trajectory:
    """Parse the file (blocking: call it in a worker thread)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TrajectoryError(f"{path}: cannot read the file: {exc.strerror or exc}") from None
    lines = raw.split(b"\n")
    if not raw.strip():
        raise TrajectoryError(f"{path}: the file is empty, not an {FORMAT} trajectory")
    trajectory: Trajectory | None = None
    open_episodes: dict[str, Episode] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = parse_json_text(line)
        except JsonTextError as exc:
            if number == len(lines):  # the last line has no newline yet: a writer is still at it
                break
            raise TrajectoryError(f"{path}:{number}: not valid JSON: {exc}") from None
        if not isinstance(record, dict):
            raise TrajectoryError(f"{path}:{number}: not a JSON object")
        if trajectory is None:
            if record.get("type") != "header" or record.get("format") != FORMAT:
                raise TrajectoryError(
                    f'{path}:{number}: not a trajectory header: expected {{"type": "header", '
                    f'"format": "{FORMAT}", ...}}'
                )
            trajectory = Trajectory(header=record, episodes=[], blobs={})
            continue
        _add(trajectory, open_episodes, record, number, path)
    if trajectory is None:
        raise TrajectoryError(f"{path}: the header line is not complete yet")
    return trajectory


def _add(
    trajectory: Trajectory, open_episodes: dict[str, Episode], record: dict[str, Any], number: int, path: Path
) -> None:
    kind = record.get("type")
    if kind == "blob":
        sha, data = record.get("sha256"), record.get("data")
        if not isinstance(sha, str) or not isinstance(data, str):
            raise TrajectoryError(f"{path}:{number}: a blob needs string fields sha256 and data")
        trajectory.blobs[sha] = (str(record.get("mimeType") or "application/octet-stream"), data)
    elif kind == "step":
        env_id = str(record.get("env_id"))
        episode = open_episodes.get(env_id)
        if episode is None:
            episode = open_episodes[env_id] = Episode(env_id, record.get("seed"))
            trajectory.episodes.append(episode)
        episode.steps.append(record)
    elif kind == "episode":
        env_id = str(record.get("env_id"))
        episode = open_episodes.pop(env_id, None)
        if episode is None:  # an episode with no step lines (ended at once)
            episode = Episode(env_id, record.get("seed"))
            trajectory.episodes.append(episode)
        episode.summary = record
        if episode.seed is None:
            episode.seed = record.get("seed")
    else:
        trajectory.ignored_lines += 1  # a record type of a later format revision: shown as a count
