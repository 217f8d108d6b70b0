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

from helpers.http import HTTP
from mcpsim.errors import TrajectoryError
from mcpsim.proc import free_port
from mcpsim.trajectory import read_episodes

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
    trajectory = read_episodes(path)
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
        ([step("a", 1)], "bad.jsonl:1: not a trajectory header"),
        ([{"type": "header", "format": "other/2"}], "bad.jsonl:1: not a trajectory header"),
        ([HEADER, "{nope", step("a", 1)], "bad.jsonl:2: not valid JSON"),
        ([HEADER, "[1, 2]"], "bad.jsonl:2: not a JSON object"),
        ([HEADER, {"type": "blob", "sha256": "x"}], "bad.jsonl:2: a blob needs string fields sha256 and data"),
    ],
)
def test_files_that_are_no_trajectory_are_refused_naming_the_line(tmp_path, lines, needle):
    path = write(tmp_path / "bad.jsonl", lines)
    with pytest.raises(TrajectoryError, match=needle):
        read_episodes(path)


def test_mcpsim_view_refuses_a_missing_or_bad_file(tmp_path):
    for path, needle in [
        (tmp_path / "missing.jsonl", "cannot read the file"),
        (write(tmp_path / "bad.jsonl", ["not json", HEADER]), "bad.jsonl:1: not valid JSON"),
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
                first = HTTP.get(f"{url}/api/trajectory", timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and process.poll() is None, "mcpsim view did not come up"
                time.sleep(0.05)
        assert [e["step_count"] for e in first.json()["episodes"]] == [1]
        blob = HTTP.get(f"{url}/blobs/{'cd' * 32}")
        assert blob.status_code == 200 and blob.headers["content-type"] == "image/png"
        assert blob.content == base64.b64decode(PNG)
        missing = HTTP.get(f"{url}/blobs/{'ef' * 32}")
        assert missing.status_code == 404 and "no blob" in missing.json()["error"]["message"]
        with path.open("a") as handle:  # the run goes on
            handle.write(json.dumps(step("a", 2)) + "\n")
        assert [e["step_count"] for e in HTTP.get(f"{url}/api/trajectory").json()["episodes"]] == [2]
        with path.open("a") as handle:  # and breaks: the page gets the reason, the viewer keeps running
            handle.write("garbage\n" + json.dumps(step("a", 3)) + "\n")
        broken = HTTP.get(f"{url}/api/trajectory")
        assert broken.status_code == 422 and "run.jsonl:5: not valid JSON" in broken.json()["error"]["message"]
        assert HTTP.get(f"{url}/").status_code == 200
    finally:
        process.terminate()
        process.wait(10)


DEEP = '{"type": "step", "env_id": "a", "step": 1, "observation": ' + "[" * 100_000 + "]" * 100_000 + "}"
HUGE = '{"type": "step", "env_id": "a", "step": 1, "reward": ' + "7" * 5000 + "}"


@pytest.mark.parametrize(
    ("line", "needle"),
    [(DEEP, "nested more than 200 levels deep"), (HUGE, "a number too large to read, over 4300 digits")],
)
def test_pathological_lines_are_errors_naming_the_line(tmp_path, line, needle):
    """json.loads raised RecursionError (deep) or a bare ValueError (over 4300 digits) past the reader."""
    path = write(tmp_path / "bad.jsonl", [HEADER, step("a", 1), line, step("a", 2)])
    with pytest.raises(TrajectoryError, match=f"bad.jsonl:3: not valid JSON: {needle}"):
        read_episodes(path)
    # the same line still being written (no newline yet) is left for the next read
    cut = write(tmp_path / "cut.jsonl", [HEADER, step("a", 1)], tail=line)
    assert [len(episode.steps) for episode in read_episodes(cut).episodes] == [1]


def test_mcpsim_view_refuses_a_deep_or_huge_line_with_exit_2_naming_it(tmp_path):
    for name, line in [("deep.jsonl", DEEP), ("huge.jsonl", HUGE)]:
        path = write(tmp_path / name, [HEADER, line])
        done = subprocess.run(
            [sys.executable, "-m", "mcpsim", "view", str(path), "--port", str(free_port())],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2, done.stderr
        assert f"{path}:2: not valid JSON" in done.stderr and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_viewer_answers_422_naming_a_pathological_line_of_a_growing_file(tmp_path):
    path = write(tmp_path / "run.jsonl", [HEADER, step("a", 1)])
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "mcpsim", "view", str(path), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/api/trajectory"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                assert HTTP.get(url, timeout=2).status_code == 200
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and process.poll() is None, "mcpsim view did not come up"
                time.sleep(0.05)
        with path.open("a") as handle:  # Python writes NaN and Infinity rewards; JSON has no such numbers
            handle.write('{"type": "step", "env_id": "a", "step": 2, "reward": NaN}\n')
            handle.write('{"type": "step", "env_id": "a", "step": 3, "reward": 1e999}\n')
            handle.write(DEEP[:50_000])  # a pathological line still being written
        grown = HTTP.get(url, timeout=30)
        assert grown.status_code == 200, grown.text[:300]
        assert [s["reward"] for s in grown.json()["episodes"][0]["steps"]] == [0.0, "NaN", "Infinity"]
        with path.open("a") as handle:
            handle.write(DEEP[50_000:] + "\n" + json.dumps(step("a", 4)) + "\n")
        deep = HTTP.get(url, timeout=30)
        assert deep.status_code == 422, deep.text[:300]
        assert "run.jsonl:5: not valid JSON: nested more than 200 levels deep" in deep.json()["error"]["message"]
        path.write_text(json.dumps(HEADER) + "\n" + HUGE + "\n")
        huge = HTTP.get(url, timeout=30)
        assert huge.status_code == 422 and "run.jsonl:2: not valid JSON: a number too large" in huge.text
        assert process.poll() is None
    finally:
        process.terminate()
        process.wait(10)
