"""Episodes of a trajectory file that may still be growing, as raw records: what the viewer (`mcpsim view`) shows.

Steps of environments that run concurrently interleave; they are grouped by `env_id`, and an `episode` line
closes that environment's current episode, so an environment that runs again later starts a new one. A `branch`
line starts a copy of an episode with its parent's first steps (`docs/trajectory.md`). Blobs are
kept as base64 (the viewer checks one when it serves it). A last line still being written (no newline yet, not
JSON) is left for the next read; any other malformed line is an error naming its line (`FILE:LINE: ...`), as are
lines nested too deeply or holding over-long numbers. The scan and the header and blob checks are
`reader.py`'s.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcpsim.errors import TrajectoryError
from mcpsim.trajectory.reader import blob_problem, check_header, scan


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
class EpisodeFile:
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


def read_episodes(path: Path) -> EpisodeFile:
    """Parse the file (blocking: call it in a worker thread)."""
    episodes: EpisodeFile | None = None
    open_episodes: dict[str, Episode] = {}
    for line in scan(path):
        where = f"{path}:{line.number}"
        if line.json_error is not None:
            if not line.terminated:  # the last line has no newline yet: a writer is still at it
                break
            raise TrajectoryError(f"{where}: not valid JSON: {line.json_error}")
        if line.record is None:
            raise TrajectoryError(f"{where}: not a JSON object (a {line.other_type})")
        if episodes is None:
            check_header(line.record, where)
            episodes = EpisodeFile(header=line.record, episodes=[], blobs={})
            continue
        _add(episodes, open_episodes, line.record, where)
    if episodes is None:
        raise TrajectoryError(f"{path}: the header line is not complete yet")
    return episodes


def _add(episodes: EpisodeFile, open_episodes: dict[str, Episode], record: dict[str, Any], where: str) -> None:
    kind = record.get("type")
    if kind == "blob":
        problem = blob_problem(record, verify=False)
        if problem is not None:
            raise TrajectoryError(f"{where}: {problem}")
        episodes.blobs[record["sha256"]] = (str(record.get("mimeType") or "application/octet-stream"), record["data"])
    elif kind == "step":
        env_id = str(record.get("env_id"))
        episode = open_episodes.get(env_id)
        if episode is None:
            episode = open_episodes[env_id] = Episode(env_id, record.get("seed"))
            episodes.episodes.append(episode)
        episode.steps.append(record)
    elif kind == "branch":  # a copy of an episode starts: its first `step` steps are its parent's, shown as its own
        env_id, parent = str(record.get("env_id")), open_episodes.get(str(record.get("parent")))
        step = record.get("step")
        prefix = parent.steps[:step] if parent is not None and isinstance(step, int) and step >= 0 else []
        episode = open_episodes[env_id] = Episode(env_id, record.get("seed"), list(prefix))
        episodes.episodes.append(episode)
    elif kind == "episode":
        env_id = str(record.get("env_id"))
        episode = open_episodes.pop(env_id, None)
        if episode is None:  # an episode with no step lines (ended at once)
            episode = Episode(env_id, record.get("seed"))
            episodes.episodes.append(episode)
        episode.summary = record
        if episode.seed is None:
            episode.seed = record.get("seed")
    else:
        episodes.ignored_lines += 1  # a record type of a later format revision (or a second header): a count
