"""A rich progress bar for rollouts on a terminal, and a silent stand-in everywhere else."""

import contextlib
import sys
from collections.abc import Iterator
from typing import Protocol


class RolloutProgress(Protocol):
    def step(self) -> None: ...
    def episode_done(self, failed: bool) -> None: ...


class Silent:
    """Progress that shows nothing (not a terminal, or `progress=False`)."""

    def step(self) -> None:
        pass

    def episode_done(self, failed: bool) -> None:
        pass


SILENT = Silent()


class _Bar:
    def __init__(self, progress: object, task: object) -> None:
        self._progress = progress
        self._task = task
        self.steps = 0
        self.failed = 0

    def _fields(self) -> dict[str, str]:
        failed = f", {self.failed} failed" if self.failed else ""
        return {"detail": f"{self.steps} steps{failed}"}

    def step(self) -> None:
        self.steps += 1
        self._progress.update(self._task, **self._fields())  # type: ignore[attr-defined]

    def episode_done(self, failed: bool) -> None:
        self.failed += int(failed)
        self._progress.update(self._task, advance=1, **self._fields())  # type: ignore[attr-defined]


@contextlib.contextmanager
def rollout_progress(total: int, enabled: bool | None = None) -> Iterator[RolloutProgress]:
    """Episodes done out of `total` and steps so far, on stderr; `enabled=None` shows it only on a terminal."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield SILENT
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("rollout"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("episodes, {task.fields[detail]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    )
    with progress:
        task = progress.add_task("rollout", total=total, detail="0 steps")
        yield _Bar(progress, task)
