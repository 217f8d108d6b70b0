"""Writing the trajectory file (`format.py`) while episodes run: `Recorder`, shared by a rollout's episodes.

Image bytes are written once per file as a `blob` line (keyed by the sha256 of the bytes) before the first line
that references them; step lines carry `{"type": "image", "mimeType": ..., "blob": <sha256>}` instead of the data,
and the chat image parts of turn lines `{"type": "image_url", "image_url": {"blob": <sha256>, "mimeType"}}`.
A policy's turns (`Trajectory.turns`) are written as `turn` lines before the step they chose, each once.

Lines are buffered in memory (in order, under one lock) and written through anyio's thread-backed file at every
episode line or every `FLUSH_BYTES`, so the event loop never blocks on disk, lines never tear, a thread hop is
not paid per step, and an interrupted run keeps its finished episodes.
"""

import contextlib
import datetime
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import anyio

from mcpsim.errors import RecordingError
from mcpsim.trajectory.format import (
    BINARY_BLOCKS,
    FORMAT,
    FORMAT_V1,
    Observation,
    Step,
    Trajectory,
    dumps,
    sha256_of_data,
)
from mcpsim.wire import VERSION

FLUSH_BYTES = 256 * 1024


def header_record(*, conversations: bool = False, **metadata: Any) -> dict[str, Any]:
    """The header line: the format (`/2` when the run records conversations, else `/1`, the shape older readers
    know), this mcpsim's version, the time, and the run's metadata."""
    now = datetime.datetime.now(datetime.UTC)
    return {
        "type": "header",
        "format": FORMAT if conversations else FORMAT_V1,
        "mcpsim_version": VERSION,
        "created_at": now.isoformat(timespec="seconds"),
        **metadata,
    }


class Recorder:
    """Appends records to an open trajectory file; shared by every episode of a rollout."""

    def __init__(self, file: anyio.AsyncFile[str], path: Path) -> None:
        self._file = file
        self.path = path
        self._lock = anyio.Lock()
        self._blobs: set[str] = set()
        self._buffer: list[str] = []
        self._buffered = 0
        self._turns_written: dict[str, int] = {}
        self.lines = 0

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, path: str | Path, header: Mapping[str, Any]) -> AsyncIterator["Recorder"]:
        """Create (truncate) `path` and write the header; a missing directory fails here, before any episode."""
        target = Path(path)
        try:
            file = await anyio.open_file(target, "w", encoding="utf-8")
        except OSError as exc:
            raise RecordingError(f"cannot write the recording {target}: {exc.strerror or exc}") from None
        recorder = cls(file, target)
        try:
            async with recorder._lock:
                await recorder._write([dict(header)], flush=True)
            yield recorder
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    async with recorder._lock:
                        await recorder._flush()
                finally:
                    await file.aclose()

    def _externalize(self, observation: Observation, pending: list[dict[str, Any]]) -> Observation:
        """Swap image/audio data for blob references; queue a blob line for bytes not yet in the file."""
        out: Observation = []
        for block in observation:
            if block.get("type") in BINARY_BLOCKS and isinstance(block.get("data"), str):
                sha = sha256_of_data(block["data"])
                mime = block.get("mimeType", "application/octet-stream")
                if sha not in self._blobs and all(p["sha256"] != sha for p in pending):
                    pending.append({"type": "blob", "sha256": sha, "mimeType": mime, "data": block["data"]})
                stored = {k: v for k, v in block.items() if k != "data"}
                stored["blob"] = sha
                out.append(stored)
            else:
                out.append(block)
        return out

    def _externalize_url(self, url: str, pending: list[dict[str, Any]]) -> dict[str, Any]:
        """A chat image part's data URL as a blob reference (the blob queued if new); other URLs stay URLs."""
        head, sep, data = url.partition(",")
        if not sep or not head.endswith(";base64"):
            return {"url": url}
        mime = head[len("data:") : -len(";base64")] or "application/octet-stream"
        sha = sha256_of_data(data)
        if sha not in self._blobs and all(p["sha256"] != sha for p in pending):
            pending.append({"type": "blob", "sha256": sha, "mimeType": mime, "data": data})
        return {"blob": sha, "mimeType": mime}

    def _turn_records(self, trajectory: Trajectory) -> list[dict[str, Any]]:
        """Turn lines (and their new blobs) of the turns not yet written; the caller holds the lock."""
        done = self._turns_written.get(trajectory.env_id, 0)
        records: list[dict[str, Any]] = []
        for turn in trajectory.turns[done:]:
            blobs: list[dict[str, Any]] = []
            line = turn.to_record(
                trajectory.env_id, trajectory.seed, lambda url, b=blobs: self._externalize_url(url, b)
            )
            records += [*blobs, line]
            self._blobs.update(b["sha256"] for b in blobs)
        self._turns_written[trajectory.env_id] = len(trajectory.turns)
        return records

    async def _write(self, records: list[dict[str, Any]], flush: bool = False) -> None:
        """Queue whole lines; the caller holds the lock (so blob bookkeeping and line order stay one)."""
        text = "".join(dumps(r) for r in records)
        self._buffer.append(text)
        self._buffered += len(text)
        self.lines += len(records)
        self._blobs.update(r["sha256"] for r in records if r.get("type") == "blob")
        if flush or self._buffered >= FLUSH_BYTES:
            await self._flush()

    async def _flush(self) -> None:
        if self._buffer:
            text, self._buffer, self._buffered = "".join(self._buffer), [], 0
            await self._file.write(text)
            await self._file.flush()

    async def step(self, trajectory: Trajectory, step: Step) -> None:
        record = step.to_record(trajectory.env_id, trajectory.seed)
        async with self._lock:
            turns = self._turn_records(trajectory)
            blobs: list[dict[str, Any]] = []
            record["observation"] = self._externalize(step.observation, blobs)
            await self._write([*turns, *blobs, record])

    async def branch(self, copy: Trajectory) -> None:
        """A copy of an episode starts (`Trajectory.branch`): its `branch` line; its prefix's steps and turns are
        its parent's lines, so they are not written again."""
        async with self._lock:
            self._turns_written[copy.env_id] = len(copy.turns)
            await self._write([copy.branch_record()])

    async def episode(self, trajectory: Trajectory) -> None:
        record = trajectory.episode_record()
        async with self._lock:
            turns = self._turn_records(trajectory)
            blobs: list[dict[str, Any]] = []
            record["initial_observation"] = self._externalize(trajectory.initial_observation, blobs)
            await self._write([*turns, *blobs, record], flush=True)
