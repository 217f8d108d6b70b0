"""Reading a trajectory file back, with errors that name the file and the line.

One scan (`scan`) reads the file's lines with `mcpsim.protocol.jsontext` (bounded depth, no huge integers), and
one set of checks applies to every reader: the header (`check_header`), the blob lines (`blob_problem`) and the
blob references of observations. Two views are built on them:

- `read_recording(path, strict=)`: `Trajectory` objects, as a rollout returned them (replay, audit, report,
  playback, render). Strict reading (the default) refuses a file with any problem (truncated last line, invalid
  JSON, a step whose image blob is missing, an episode without its episode line) and says which line and why.
  Lenient reading keeps every complete episode, marks cut-short ones `complete=False`, and lists the problems,
  so an interrupted run's finished episodes are never lost.
- `episodes.read_episodes(path)`: the raw records grouped into episodes, for the viewer of a file still being
  written.
"""

import base64
import binascii
import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcpsim.errors import DatasetError, JsonTextError, TrajectoryError
from mcpsim.protocol.jsontext import parse_json_text
from mcpsim.trajectory.format import (
    BINARY_BLOCKS,
    FORMAT_V1,
    FORMATS,
    Observation,
    Row,
    Step,
    Trajectory,
    parse_row,
)
from mcpsim.trajectory.turns import Turn

MAX_LISTED_PROBLEMS = 5


# -- the scan and the checks every reader makes -------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """One non-blank line: its record (a JSON object), or why it has none."""

    number: int
    record: dict[str, Any] | None
    json_error: str | None = None
    """Why the line is not JSON (the parser's reason, with the column), if it is not."""
    other_type: str | None = None
    """The JSON type of a line that is JSON but not an object (`list`, `int`, ...)."""
    terminated: bool = True
    """False for a last line without its newline: a writer may still be at it, or the run was interrupted."""


def scan(path: Path) -> list[Line]:
    """The file's non-blank lines, parsed; raises `TrajectoryError` for a file that cannot be read or is empty."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TrajectoryError(f"{path}: cannot read the file: {exc.strerror or exc}") from None
    if not raw.strip():
        raise TrajectoryError(f"{path}: the file is empty, not an mcpsim trajectory")
    pieces = raw.split(b"\n")
    lines = []
    for number, text in enumerate(pieces, start=1):
        if not text.strip():
            continue
        terminated = number < len(pieces)
        try:
            value = parse_json_text(text)
        except JsonTextError as exc:
            lines.append(Line(number, None, json_error=str(exc), terminated=terminated))
            continue
        if isinstance(value, dict):
            lines.append(Line(number, value, terminated=terminated))
        else:
            lines.append(Line(number, None, other_type=type(value).__name__, terminated=terminated))
    return lines


def check_header(record: dict[str, Any], where: str) -> None:
    """Raise `TrajectoryError` unless `record` is the header of a trajectory this mcpsim reads."""
    if record.get("type") != "header":
        raise TrajectoryError(
            f"{where}: not a trajectory header: the first line must be the header "
            f'(is this a trajectory file? it must be a header with "format": "{FORMAT_V1}" or a later revision)'
        )
    fmt = str(record.get("format", ""))
    if not any(fmt == known or fmt.startswith(known + ".") for known in FORMATS):
        raise TrajectoryError(
            f"{where}: not a trajectory header: unsupported format {fmt!r} (this mcpsim reads {', '.join(FORMATS)})"
        )


def blob_problem(record: dict[str, Any], *, verify: bool = True) -> str | None:
    """Why a `blob` line cannot be used (its fields; with `verify`, its base64 and its hash), or None."""
    sha, data = record.get("sha256"), record.get("data")
    if not isinstance(sha, str) or not isinstance(data, str):
        return "a blob needs string fields sha256 and data"
    if not verify:
        return None
    try:
        digest = hashlib.sha256(base64.b64decode(data, validate=True)).hexdigest()
    except (binascii.Error, ValueError):
        return f"blob {sha[:16]}... is not valid base64"
    if digest != sha:
        return f"blob {sha[:16]}... does not match its sha256 (its data hashes to {digest[:16]}...)"
    return None


def missing_blob(block: dict[str, Any]) -> str:
    return f"{block['type']} blob {str(block['blob'])[:16]}... is not in the file above (blobs come before their use)"


# -- Trajectory objects -------------------------------------------------------------------------------------------


@dataclass
class Recording:
    """A trajectory file read back: its header, its episodes (in the run's dataset order), and any problems."""

    path: Path
    header: dict[str, Any]
    trajectories: list[Trajectory]
    problems: list[str] = field(default_factory=list)
    """Every problem, `FILE:LINE: why`, in file order (empty for a file read strictly)."""
    damage: list[str] = field(default_factory=list)
    """The problems that mean content is lost or corrupt (a line that is no JSON object, a blob that is missing,
    not base64 or not its hash), as opposed to an episode cut short or counted wrong."""

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


class _Assembler:
    """Builds `Trajectory` objects from a scan, collecting problems as `FILE:LINE: ...`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.header: dict[str, Any] | None = None
        self.blobs: dict[str, str] = {}
        self.trajectories: dict[str, Trajectory] = {}
        self.problems: list[str] = []
        self.damage: list[str] = []
        self.rows: dict[str, Row] = {}
        self.parents: dict[str, str] = {}
        """A branch's env id -> the env id it was copied from."""

    def problem(self, lineno: int, text: str, *, damage: bool = False) -> None:
        self.problems.append(f"{self.path}:{lineno}: {text}")
        if damage:
            self.damage.append(self.problems[-1])

    def resolve(self, observation: Any, lineno: int) -> Observation:
        if not isinstance(observation, list):
            self.problem(lineno, "observation is not a list of content blocks")
            return []
        out: Observation = []
        for block in observation:
            if isinstance(block, dict) and block.get("type") in BINARY_BLOCKS and "blob" in block:
                data = self.blobs.get(block["blob"])
                if data is None:
                    self.problem(lineno, missing_blob(block), damage=True)
                    out.append(block)
                    continue
                resolved = {k: v for k, v in block.items() if k != "blob"}
                resolved["data"] = data
                out.append(resolved)
            else:
                out.append(block)
        return out

    def resolve_image_url(self, reference: dict[str, Any], lineno: int) -> str | None:
        """The data URL of a chat image part stored as a blob reference (None leaves the part as stored)."""
        sha = reference.get("blob")
        if not isinstance(sha, str):
            return None
        data = self.blobs.get(sha)
        if data is None:
            self.problem(lineno, missing_blob({"type": "image", "blob": sha}), damage=True)
            return None
        return f"data:{reference.get('mimeType') or 'image/png'};base64,{data}"

    def on_turn(self, record: dict[str, Any], lineno: int) -> None:
        trajectory = self.trajectory(record)
        if trajectory.complete:
            self.problem(lineno, f"turn after the episode line of {trajectory.env_id!r}")
            return
        turn = Turn.from_record(record, lambda ref: self.resolve_image_url(ref, lineno))
        if turn.turn != len(trajectory.turns) + 1:
            self.problem(
                lineno, f"{trajectory.env_id!r}: turn {turn.turn} where turn {len(trajectory.turns) + 1} was expected"
            )
        trajectory.turns.append(turn)

    def on_header(self, record: dict[str, Any], lineno: int) -> None:
        if self.header is not None:
            self.problem(lineno, "a second header line (only the first line is a header)")
            return
        check_header(record, f"{self.path}:{lineno}")
        self.header = record
        for index, raw in enumerate(record.get("dataset") or []):
            try:
                row = parse_row(raw, index)
            except DatasetError:
                continue
            self.rows[row.env_id or row.id] = row

    def on_blob(self, record: dict[str, Any], lineno: int) -> None:
        problem = blob_problem(record)
        if problem is not None:
            self.problem(lineno, problem, damage=True)
            return
        self.blobs[record["sha256"]] = record["data"]

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

    def on_branch(self, record: dict[str, Any], lineno: int) -> None:
        """A copy of an episode starts: its first `step` steps (and their turns) are its parent's, above."""
        env_id, parent_id, step = str(record["env_id"]), str(record.get("parent")), record.get("step")
        parent = self.trajectories.get(parent_id)
        if env_id in self.trajectories:
            self.problem(lineno, f"a branch line for {env_id!r}, which has lines above")
            return
        if parent is None or not isinstance(step, int) or not 0 <= step <= len(parent.steps):
            self.problem(lineno, f"{env_id!r} branches from {parent_id!r} at step {step!r}, which is not above")
            return
        prefix = Trajectory(parent.env_id, parent.seed, parent.row, parent.initial_observation, parent.steps[:step])
        prefix.turns = [turn for turn in parent.turns if turn.step <= step]
        prefix.protocol = parent.protocol
        copy = prefix.branch(env_id, str(record.get("group_id") or f"{parent_id}@{step}"))
        copy.total_reward = sum(s.reward for s in copy.steps if math.isfinite(s.reward))
        copy.complete = False
        self.trajectories[env_id] = copy
        self.parents[env_id] = parent_id

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
        group = record.get("group_id", trajectory.row.id if trajectory.row is not None else None)
        trajectory.group_id = str(group) if group is not None else None
        trajectory.sampling = record.get("sampling") if isinstance(record.get("sampling"), dict) else None
        trajectory.tools = record.get("tools") if isinstance(record.get("tools"), list) else None
        if record.get("parent") is not None:
            trajectory.parent = str(record["parent"])
            step = record.get("branched_at_step")
            trajectory.branched_at_step = step if isinstance(step, int) else trajectory.branched_at_step
        protocol = record.get("protocol")
        trajectory.protocol = protocol if isinstance(protocol, str) else None
        if record.get("duration_s") is not None:
            trajectory.started_at, trajectory.finished_at = 0.0, float(record["duration_s"])
        trajectory.initial_observation = self.resolve(record.get("initial_observation") or [], lineno)
        if int(record.get("steps", len(trajectory.steps))) != len(trajectory.steps):
            self.problem(
                lineno,
                f"{trajectory.env_id!r}: the episode line says {record.get('steps')} steps, "
                f"the file has {len(trajectory.steps)}",
            )

    def feed(self, line: Line) -> None:
        lineno = line.number
        if line.json_error is not None:
            if self.header is None:
                raise TrajectoryError(f"{self.path}:{lineno}: the header is not valid JSON ({line.json_error})")
            cut = "" if line.terminated else " (the file ends mid-line: the run was probably interrupted)"
            self.problem(lineno, f"not valid JSON: {line.json_error}{cut}", damage=line.terminated)
            return
        record = line.record
        if record is None:
            self.problem(lineno, f"not a JSON object (a {line.other_type})", damage=True)
            return
        kind = record.get("type")
        if self.header is None and kind != "header":
            check_header(record, f"{self.path}:{lineno}")
        handler = {
            "header": self.on_header,
            "blob": self.on_blob,
            "step": self.on_step,
            "turn": self.on_turn,
            "episode": self.on_episode,
            "branch": self.on_branch,
        }
        if kind not in handler:
            return  # unknown record types are for newer readers
        if kind in ("step", "turn", "episode", "branch") and "env_id" not in record:
            self.problem(lineno, f"{kind} line without 'env_id'")
            return
        try:
            handler[kind](record, lineno)
        except TrajectoryError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            self.problem(lineno, f"malformed {kind} line: {type(exc).__name__}: {exc}")


def _place(env_id: str, order: dict[str, int], parents: dict[str, str]) -> tuple[int, int]:
    """Dataset order, each branch right after the episode it was copied from (file order among siblings)."""
    root, depth = env_id, 0
    while root in parents and depth < len(parents):
        root, depth = parents[root], depth + 1
    return order.get(root, len(order)), min(depth, 1)


def read_recording(path: str | Path, *, strict: bool = True) -> Recording:
    """Read a trajectory file (blocking: use `anyio.to_thread.run_sync` from async code)."""
    source = Path(path)
    return assemble(source, scan(source), strict=strict)


def assemble(path: Path, lines: list[Line], *, strict: bool = True) -> Recording:
    """The `Recording` of scanned lines (see `read_recording`); raises `TrajectoryError` as it says."""
    assembler = _Assembler(path)
    for line in lines:
        assembler.feed(line)
    if assembler.header is None:
        raise TrajectoryError(f"{path}: no header line")
    for trajectory in assembler.trajectories.values():
        if not trajectory.complete:
            assembler.problems.append(
                f"{path}: episode {trajectory.env_id!r} has {len(trajectory.steps)} steps but no episode line "
                "(the file was cut short)"
            )
    if strict and assembler.problems:
        first, rest = assembler.problems[0], assembler.problems[1:]
        more = f" (and {len(rest)} more problem(s), listed below)" if rest else ""
        listed = "".join(f"\n  {p}" for p in rest[: MAX_LISTED_PROBLEMS - 1])
        raise TrajectoryError(
            f"{first}{more}; read it with strict=False (--lenient) to keep the complete episodes{listed}"
        )
    order = {env_id: index for index, env_id in enumerate(assembler.rows)}
    trajectories = sorted(assembler.trajectories.values(), key=lambda t: _place(t.env_id, order, assembler.parents))
    return Recording(path, assembler.header, trajectories, assembler.problems, assembler.damage)
