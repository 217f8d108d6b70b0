"""Writing the trajectory file (`format.py`) while episodes run: `Recorder`, shared by a rollout's episodes.

Image bytes are written once per file as a `blob` line (keyed by the sha256 of the bytes) before the first line
that references them; step lines carry `{"type": "image", "mimeType": ..., "blob": <sha256>}` instead of the data.

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
from mcpsim.trajectory.format import BINARY_BLOCKS, FORMAT, Observation, Step, Trajectory, dumps, sha256_of_data
from mcpsim.wire import VERSION

FLUSH_BYTES = 256 * 1024


def header_record(**metadata: Any) -> dict[str, Any]:
    """The header line: the format, this mcpsim's version, the time, and the run's metadata."""
    now = datetime.datetime.now(datetime.UTC)
    return {
        "type": "header",
        "format": FORMAT,
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
            blobs: list[dict[str, Any]] = []
            record["observation"] = self._externalize(step.observation, blobs)
            await self._write([*blobs, record])

    async def episode(self, trajectory: Trajectory) -> None:
        record = trajectory.episode_record()
        async with self._lock:
            blobs: list[dict[str, Any]] = []
            record["initial_observation"] = self._externalize(trajectory.initial_observation, blobs)
            await self._write([*blobs, record], flush=True)
