"""Reading trajectory files for the viewer, and `mcpsim view` over real HTTP: grouping, blobs, live re-reads,
and clear errors for files that are no trajectory."""

import base64
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from mcpsim.pool.ports import free_port
from mcpsim.server.trajectory import TrajectoryError, load

HEADER = {"type": "header", "format": "mcpsim.trajectory/1", "model": "test"}
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nnot-a-real-png").decode()


def step(env_id: str, n: int, reward: float = 0.0, **extra) -> dict:
    return {
        "type": "step", "env_id": env_id, "seed": 1, "step": n,
        "action": {"tool": "move", "arguments": {"action": "LEFT"}},
        "observation": [{"type": "text", "text": f"{env_id} {n}"}],
        "reward": reward, "terminated": False, "truncated": False, "latency_ms": 1.0, **extra,
    }  # fmt: skip


def write(path: Path, lines: list, tail: str = "") -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines) + tail)
    return path


def test_steps_are_grouped_by_environment_and_episode(tmp_path):
    path = write(
        tmp_path / "run.jsonl",
        [
            HEADER,
            {"type": "blob", "sha256": "ab" * 32, "mimeType": "image/png", "data": PNG},
            step("a", 1, 0.5),
            step("b", 1),
            step("a", 2, 1.0),
            {"type": "episode", "env_id": "a", "seed": 1, "total_reward": 1.5, "steps": 2, "terminated": True},
            step("a", 1),  # the same environment again: a new episode
            {"type": "future_kind", "x": 1},
        ],
        tail='{"type": "step", "env_id": "b", "st',  # a line still being written
    )
    trajectory = load(path)
    described = trajectory.describe(path)
    assert [(e["env_id"], e["step_count"], e["finished"]) for e in described["episodes"]] == [
        ("a", 2, True),
        ("b", 1, False),
        ("a", 1, False),
    ]
    assert described["episodes"][0]["total_reward"] == 1.5 and described["episodes"][1]["total_reward"] == 0.0
    assert described["blobs"] == ["ab" * 32] and described["ignored_lines"] == 1
    assert trajectory.blobs["ab" * 32] == ("image/png", PNG)


@pytest.mark.parametrize(
    ("lines", "needle"),
    [
        ([], "the file is empty"),
        ([step("a", 1)], "line 1 is not a trajectory header"),
        ([{"type": "header", "format": "other/2"}], "line 1 is not a trajectory header"),
        ([HEADER, "{nope", step("a", 1)], "line 2 is not valid JSON"),
        ([HEADER, "[1, 2]"], "line 2 is not a JSON object"),
        ([HEADER, {"type": "blob", "sha256": "x"}], "line 2: a blob needs string fields sha256 and data"),
    ],
)
def test_files_that_are_no_trajectory_are_refused_naming_the_line(tmp_path, lines, needle):
    path = write(tmp_path / "bad.jsonl", lines)
    with pytest.raises(TrajectoryError, match=needle):
        load(path)


def test_mcpsim_view_refuses_a_missing_or_bad_file(tmp_path):
    for path, needle in [
        (tmp_path / "missing.jsonl", "cannot read the file"),
        (write(tmp_path / "bad.jsonl", ["not json", HEADER]), "line 1 is not valid JSON"),
    ]:
        done = subprocess.run(
            [sys.executable, "-m", "mcpsim", "view", str(path), "--port", str(free_port())],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2 and needle in done.stderr and str(path) in done.stderr


def test_viewer_serves_blobs_and_follows_a_growing_file(tmp_path):
    path = write(
        tmp_path / "run.jsonl",
        [HEADER, {"type": "blob", "sha256": "cd" * 32, "mimeType": "image/png", "data": PNG}, step("a", 1)],
    )
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "mcpsim", "view", str(path), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                first = httpx.get(f"{url}/api/trajectory", timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and process.poll() is None, "mcpsim view did not come up"
                time.sleep(0.05)
        assert [e["step_count"] for e in first.json()["episodes"]] == [1]
        blob = httpx.get(f"{url}/blobs/{'cd' * 32}")
        assert blob.status_code == 200 and blob.headers["content-type"] == "image/png"
        assert blob.content == base64.b64decode(PNG)
        missing = httpx.get(f"{url}/blobs/{'ef' * 32}")
        assert missing.status_code == 404 and "no blob" in missing.json()["error"]["message"]
        with path.open("a") as handle:  # the run goes on
            handle.write(json.dumps(step("a", 2)) + "\n")
        assert [e["step_count"] for e in httpx.get(f"{url}/api/trajectory").json()["episodes"]] == [2]
        with path.open("a") as handle:  # and breaks: the page gets the reason, the viewer keeps running
            handle.write("garbage\n" + json.dumps(step("a", 3)) + "\n")
        broken = httpx.get(f"{url}/api/trajectory")
        assert broken.status_code == 422 and "line 5 is not valid JSON" in broken.json()["error"]["message"]
        assert httpx.get(f"{url}/").status_code == 200
    finally:
        process.terminate()
        process.wait(10)
