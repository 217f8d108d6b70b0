"""Reading a trajectory file back into `Trajectory` objects, with errors that name the line.

Strict reading (the default) refuses a file with any problem (truncated last line, invalid JSON, a step whose
image blob is missing, an episode without its episode line) and says which line and why. Lenient reading keeps
every complete episode, marks cut-short ones `complete=False`, and lists the problems, so an interrupted
run's finished episodes are never lost.
"""

import base64
import binascii
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcpsim.client.content import BINARY_BLOCKS, Observation
from mcpsim.client.dataset import Row, parse_row
from mcpsim.client.recording import FORMAT
from mcpsim.client.trajectory import Step, Trajectory
from mcpsim.errors import DatasetError, TrajectoryError
from mcpsim.protocol.jsontext import JsonTextError, parse_json_text

MAX_LISTED_PROBLEMS = 5


@dataclass
class Recording:
    """A trajectory file read back: its header, its episodes (in the run's dataset order), and any problems."""

    path: Path
    header: dict[str, Any]
    trajectories: list[Trajectory]
    problems: list[str] = field(default_factory=list)

    @property
    def dataset(self) -> list[dict[str, Any]]:
        """The rows the run was started from (with their env ids), to start the same episodes again."""
        rows = self.header.get("dataset")
        if isinstance(rows, list) and rows:
            return rows
        return [{"env_id": t.env_id, "seed": t.seed} for t in self.trajectories]

    @property
    def steps(self) -> int:
        return sum(len(t.steps) for t in self.trajectories)


class _Reader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.header: dict[str, Any] | None = None
        self.blobs: dict[str, str] = {}
        self.trajectories: dict[str, Trajectory] = {}
        self.problems: list[str] = []
        self.rows: dict[str, Row] = {}

    def problem(self, lineno: int, text: str) -> None:
        self.problems.append(f"{self.path}:{lineno}: {text}")

    def resolve(self, observation: Any, lineno: int) -> Observation:
        if not isinstance(observation, list):
            self.problem(lineno, "observation is not a list of content blocks")
            return []
        out: Observation = []
        for block in observation:
            if isinstance(block, dict) and block.get("type") in BINARY_BLOCKS and "blob" in block:
                data = self.blobs.get(block["blob"])
                if data is None:
                    self.problem(lineno, f"{block['type']} blob {str(block['blob'])[:16]}... is not defined before use")
                    out.append(block)
                    continue
                resolved = {k: v for k, v in block.items() if k != "blob"}
                resolved["data"] = data
                out.append(resolved)
            else:
                out.append(block)
        return out

    def on_header(self, record: dict[str, Any], lineno: int) -> None:
        if self.header is not None:
            self.problem(lineno, "a second header line (only the first line is a header)")
            return
        fmt = str(record.get("format", ""))
        if fmt.split("/")[0] != FORMAT.split("/")[0] or not fmt.startswith(FORMAT):
            raise TrajectoryError(f"{self.path}: unsupported format {fmt!r} (this mcpsim reads {FORMAT})")
        self.header = record
        for index, raw in enumerate(record.get("dataset") or []):
            try:
                row = parse_row(raw, index)
            except DatasetError:
                continue
            self.rows[row.env_id or row.id] = row

    def on_blob(self, record: dict[str, Any], lineno: int) -> None:
        sha, data = record.get("sha256"), record.get("data")
        if not isinstance(sha, str) or not isinstance(data, str):
            self.problem(lineno, "blob line needs 'sha256' and base64 'data'")
            return
        try:
            digest = hashlib.sha256(base64.b64decode(data, validate=True)).hexdigest()
        except (binascii.Error, ValueError):
            self.problem(lineno, f"blob {sha[:16]}... is not valid base64")
            return
        if digest != sha:
            self.problem(lineno, f"blob {sha[:16]}... does not match its data (sha256 {digest[:16]}...)")
            return
        self.blobs[sha] = data

    def trajectory(self, record: dict[str, Any]) -> Trajectory:
        env_id = str(record["env_id"])
        trajectory = self.trajectories.get(env_id)
        if trajectory is None:
            trajectory = Trajectory(env_id, int(record.get("seed", 0)), row=self.rows.get(env_id), complete=False)
            self.trajectories[env_id] = trajectory
        return trajectory

    def on_step(self, record: dict[str, Any], lineno: int) -> None:
        trajectory = self.trajectory(record)
        if trajectory.complete:
            self.problem(lineno, f"step after the episode line of {trajectory.env_id!r}")
            return
        step = Step.from_record(record)
        expected = len(trajectory.steps) + 1
        if step.step != expected:
            self.problem(lineno, f"{trajectory.env_id!r}: step {step.step} where step {expected} was expected")
        step.observation = self.resolve(step.observation, lineno)
        trajectory.add_step(step)

    def on_episode(self, record: dict[str, Any], lineno: int) -> None:
        trajectory = self.trajectory(record)
        if trajectory.complete:
            self.problem(lineno, f"a second episode line for {trajectory.env_id!r}")
            return
        trajectory.complete = True
        trajectory.total_reward = float(record.get("total_reward", trajectory.total_reward))
        trajectory.terminated = bool(record.get("terminated", trajectory.terminated))
        trajectory.truncated = bool(record.get("truncated", trajectory.truncated))
        trajectory.outcome = str(record.get("outcome", "terminated" if trajectory.terminated else "truncated"))
        trajectory.error = record.get("error")
        trajectory.reward_source = str(record.get("reward_source", "environment"))
        trajectory.usage = dict(record.get("usage") or {})
        trajectory.connect_ms = record.get("connect_ms")
        if record.get("duration_s") is not None:
            trajectory.started_at, trajectory.finished_at = 0.0, float(record["duration_s"])
        trajectory.initial_observation = self.resolve(record.get("initial_observation") or [], lineno)
        if int(record.get("steps", len(trajectory.steps))) != len(trajectory.steps):
            self.problem(
                lineno,
                f"{trajectory.env_id!r}: the episode line says {record.get('steps')} steps, "
                f"the file has {len(trajectory.steps)}",
            )

    def feed(self, line: str, lineno: int, last: bool) -> None:
        try:
            record = parse_json_text(line)
        except JsonTextError as exc:
            if self.header is None:
                raise TrajectoryError(f"{self.path}:{lineno}: the header is not valid JSON ({exc})") from None
            cut = " (the file ends mid-line: the run was probably interrupted)" if last else ""
            self.problem(lineno, f"not valid JSON: {exc}{cut}")
            return
        if not isinstance(record, dict):
            self.problem(lineno, f"expected a JSON object, got {type(record).__name__}")
            return
        kind = record.get("type")
        if self.header is None and kind != "header":
            raise TrajectoryError(
                f"{self.path}:{lineno}: the first line must be the header "
                f"({{'type': 'header', 'format': '{FORMAT}'}}); is this a trajectory file?"
            )
        handler = {"header": self.on_header, "blob": self.on_blob, "step": self.on_step, "episode": self.on_episode}
        if kind not in handler:
            return  # unknown record types are for newer readers
        if kind in ("step", "episode") and "env_id" not in record:
            self.problem(lineno, f"{kind} line without 'env_id'")
            return
        try:
            handler[kind](record, lineno)
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, TrajectoryError):
                raise
            self.problem(lineno, f"malformed {kind} line: {type(exc).__name__}: {exc}")


def read_recording(path: str | Path, *, strict: bool = True) -> Recording:
    """Read a trajectory file (blocking: use `anyio.to_thread.run_sync` from async code)."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise TrajectoryError(f"cannot read {source}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise TrajectoryError(f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if not text.strip():
        raise TrajectoryError(f"{source} is empty")
    reader = _Reader(source)
    lines = text.split("\n")
    ends_cleanly = text.endswith("\n")
    count = len(lines) - 1 if ends_cleanly else len(lines)
    for index in range(count):
        line = lines[index]
        if line.strip():
            reader.feed(line, index + 1, last=index == count - 1 and not ends_cleanly)
    if reader.header is None:
        raise TrajectoryError(f"{source}: no header line")
    for trajectory in reader.trajectories.values():
        if not trajectory.complete:
            reader.problems.append(
                f"{source}: episode {trajectory.env_id!r} has {len(trajectory.steps)} steps but no episode line "
                "(the file was cut short)"
            )
    if strict and reader.problems:
        first, rest = reader.problems[0], reader.problems[1:]
        more = f" (and {len(rest)} more problem(s), listed below)" if rest else ""
        listed = "".join(f"\n  {p}" for p in rest[: MAX_LISTED_PROBLEMS - 1])
        raise TrajectoryError(
            f"{first}{more}; read it with strict=False (--lenient) to keep the complete episodes{listed}"
        )
    order = {env_id: index for index, env_id in enumerate(reader.rows)}
    trajectories = sorted(reader.trajectories.values(), key=lambda t: order.get(t.env_id, len(order)))
    return Recording(source, reader.header, trajectories, reader.problems)
