"""`mcpsim render`: GIF and PNG frames from a trajectory file in the shared format, written here directly."""

import base64
import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from mcpsim import cli
from mcpsim.envs.frozen_lake import SPEC as LAKE
from mcpsim.envs.gym_server import Episode
from mcpsim.envs.lunar_lander import FRAME_SIZE
from mcpsim.envs.lunar_lander import SPEC as LANDER


def write_trajectory(path: Path, steps: int = 12) -> dict[str, bytes]:
    """Two episodes played in this process, their lines interleaved as concurrent rollouts write them."""
    lines = [{"type": "header", "format": "mcpsim.trajectory/1", "policy": "scripted"}]
    episodes = {"lander-1": Episode(LANDER, 1), "lake-2": Episode(LAKE, 2)}
    tools = {"lander-1": ("lander_action", ["FIRE_MAIN", "FIRE_LEFT", "NOTHING"]), "lake-2": ("lake_move", ["RIGHT"])}
    blobs: dict[str, bytes] = {}
    for i in range(steps):
        for env_id, episode in episodes.items():
            tool, actions = tools[env_id]
            result = episode.step_result(actions[i % len(actions)])
            observation = []
            for block in result.content:
                if block.type == "image":
                    raw = base64.b64decode(block.data)
                    digest = hashlib.sha256(raw).hexdigest()
                    if digest not in blobs:
                        blobs[digest] = raw
                        lines.append({"type": "blob", "sha256": digest, "mimeType": "image/png", "data": block.data})
                    observation.append({"type": "image", "mimeType": "image/png", "blob": digest})
                else:
                    observation.append(block.model_dump(mode="json", by_alias=True, exclude_none=True))
            meta = result.meta["mcpsim"]
            lines.append({"type": "step", "env_id": env_id, "seed": episode.seed, "step": i + 1,
                          "action": {"tool": tool, "arguments": {"action": actions[i % len(actions)]}},
                          "observation": observation, "reward": meta["reward"], "terminated": meta["terminated"],
                          "truncated": meta["truncated"], "latency_ms": 1.0})  # fmt: skip
    for env_id, episode in episodes.items():
        lines.append({"type": "episode", "env_id": env_id, "seed": episode.seed, "total_reward": episode.total_reward,
                      "steps": episode.step_count, "terminated": episode.terminated})  # fmt: skip
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return blobs


def mcpsim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mcpsim", *args], capture_output=True, text=True, timeout=120)


def test_gif_of_the_episode_with_images(tmp_path):
    trajectory = tmp_path / "run.jsonl"
    write_trajectory(trajectory)
    done = mcpsim("render", str(trajectory), "--out", str(tmp_path / "landing.gif"))
    assert done.returncode == 0, done.stderr
    assert "12 frames of lander-1 (seed 1)" in done.stdout
    with Image.open(tmp_path / "landing.gif") as gif:
        assert gif.format == "GIF" and gif.n_frames == 12 and gif.is_animated
        assert gif.size == (FRAME_SIZE[0], FRAME_SIZE[1] + 24)  # the frame and its caption strip


def test_png_frames_hold_the_recorded_pixels(tmp_path):
    trajectory = tmp_path / "run.jsonl"
    blobs = write_trajectory(trajectory, steps=6)
    done = mcpsim("render", str(trajectory), "--out", str(tmp_path / "frames"), "--every", "2")
    assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in (tmp_path / "frames").glob("*.png"))
    assert names == ["frame_00001.png", "frame_00003.png", "frame_00005.png", "frame_00006.png"]  # + the last one
    step_one = json.loads(
        next(line for line in trajectory.read_text().splitlines() if '"step": 1,' in line and "lander-1" in line)
    )
    original = Image.open(io.BytesIO(blobs[step_one["observation"][1]["blob"]])).convert("RGB")
    rendered = Image.open(tmp_path / "frames" / "frame_00001.png").convert("RGB")
    assert rendered.crop((0, 0, *FRAME_SIZE)).tobytes() == original.tobytes()


def test_text_only_episode_is_drawn_as_text_and_scaled(tmp_path):
    trajectory = tmp_path / "run.jsonl"
    write_trajectory(trajectory, steps=3)
    out = tmp_path / "lake.gif"
    done = mcpsim("render", str(trajectory), "--out", str(out), "--env-id", "lake-2", "--scale", "0.5", "--no-caption")
    assert done.returncode == 0, done.stderr
    with Image.open(out) as gif:
        assert gif.n_frames == 3 and gif.size == (424, 72)  # 6 lines of text, half size
        gif.seek(0)
        assert len(gif.convert("RGB").getcolors(maxcolors=1 << 16) or []) > 2, "the text must be drawn"


def test_bad_files_are_refused_naming_the_cause(tmp_path, capsys):
    trajectory = tmp_path / "run.jsonl"
    write_trajectory(trajectory, steps=2)
    lines = trajectory.read_text().splitlines()
    no_blobs = tmp_path / "no_blobs.jsonl"
    no_blobs.write_text("\n".join(line for line in lines if '"type": "blob"' not in line) + "\n")
    cases = [
        (no_blobs, [], "is not in the file above"),
        (tmp_path / "missing.jsonl", [], "cannot read"),
        (trajectory, ["--env-id", "nope"], "the file has: lander-1, lake-2"),
        (trajectory, ["--out", str(tmp_path / "x.mp4")], "use a .gif file or a directory"),
    ]
    headerless = tmp_path / "headerless.jsonl"
    headerless.write_text("\n".join(lines[1:]) + "\n")
    cases.append((headerless, [], 'must be a header with "format": "mcpsim.trajectory/1"'))
    tampered = tmp_path / "tampered.jsonl"
    blob_line = next(i for i, line in enumerate(lines) if '"type": "blob"' in line)
    record = json.loads(lines[blob_line])
    record["data"] = base64.b64encode(b"not the image").decode()
    tampered.write_text("\n".join([*lines[:blob_line], json.dumps(record), *lines[blob_line + 1 :]]) + "\n")
    cases.append((tampered, [], "does not match its sha256"))
    for path, extra, needle in cases:
        args = extra if "--out" in extra else [*extra, "--out", str(tmp_path / "o.gif")]
        with pytest.raises(SystemExit) as exit_info:  # the CLI in this process: a subprocess each is slow
            cli.main(["render", str(path), *args])
        stderr = capsys.readouterr().err
        assert exit_info.value.code == 2 and needle in stderr, (path.name, stderr)
        assert "Traceback" not in stderr


def test_deep_or_huge_lines_are_refused_naming_the_line(tmp_path, capsys):
    """json.loads let a RecursionError (deep nesting) escape as a traceback."""
    header = json.dumps({"type": "header", "format": "mcpsim.trajectory/1"})
    for name, line, needle in [
        ("deep.jsonl", '{"type": "step", "x": ' + "[" * 50_000 + "]" * 50_000 + "}", "nested more than 200"),
        ("huge.jsonl", '{"type": "step", "reward": ' + "9" * 4400 + "}", "a number too large"),
    ]:
        path = tmp_path / name
        path.write_text(f"{header}\n{line}\n")
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["render", str(path), "--out", str(tmp_path / "o.gif")])
        stderr = capsys.readouterr().err
        assert exit_info.value.code == 2 and f"{path}:2: not JSON ({needle}" in stderr, stderr
        assert "Traceback" not in stderr
