"""Helpers for the rollout client tests: a FrozenLake solver over the observation text, standalone servers."""

import contextlib
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import httpx

from helpers.http import HTTP

MOVES = {"LEFT": (0, -1), "DOWN": (1, 0), "RIGHT": (0, 1), "UP": (-1, 0)}


def lake_grid(text: str) -> list[str] | None:
    """The map rows of a FrozenLake observation ('@' marks the player), or None if the text has no map."""
    rows = [line for line in text.splitlines() if line and set(line) <= set("SFHG@")]
    return rows or None


def solve(text: str) -> str | None:
    """The first move of a shortest path from '@' to 'G' avoiding holes, from the observation text."""
    grid = lake_grid(text)
    if grid is None:
        return None
    size = len(grid)
    start = next((r, c) for r in range(size) for c in range(size) if grid[r][c] == "@")
    first: dict[tuple[int, int], str | None] = {start: None}
    queue = deque([start])
    while queue:
        r, c = queue.popleft()
        if grid[r][c] == "G":
            return first[(r, c)]
        for move, (dr, dc) in MOVES.items():
            nr, nc = r + dr, c + dc
            if 0 <= nr < size and 0 <= nc < size and (nr, nc) not in first and grid[nr][nc] != "H":
                first[(nr, nc)] = first[(r, c)] or move
                queue.append((nr, nc))
    return None


def wait_healthy(url: str, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            HTTP.post(url, timeout=1, json={})
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"server at {url} did not come up")


@contextlib.contextmanager
def standalone(argv: list[str], port: int, log: Path) -> Iterator[str]:
    """Run one production server over streamable HTTP on `port`; yields its MCP URL; stops it after."""
    with log.open("wb") as sink:
        process = subprocess.Popen([sys.executable, *argv, "--port", str(port)], stdout=sink, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}/mcp"
        try:
            wait_healthy(url, process)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
