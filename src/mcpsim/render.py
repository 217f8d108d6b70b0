"""`mcpsim render`: turn one episode of a recorded trajectory (JSONL, `mcpsim.trajectory/1`) into a GIF or PNGs.

A step's frame is the image its observation held (stored once in the file as a `blob` line and referenced by
sha256), or, for text-only envs, the observation's text drawn on a plain background. A caption strip under each
frame names the step, the action and the reward, so a GIF can be read without the file next to it.
"""

import base64
import binascii
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from mcpsim.errors import JsonTextError, TrajectoryError
from mcpsim.protocol.jsontext import parse_json_text

FORMAT = "mcpsim.trajectory/1"
BACKGROUND = (250, 250, 248)
INK = (20, 20, 20)


@dataclass
class Step:
    step: int
    action: dict[str, Any]
    observation: list[dict[str, Any]]
    reward: float | None
    terminated: bool
    truncated: bool


@dataclass
class Trajectory:
    header: dict[str, Any]
    blobs: dict[str, bytes] = field(default_factory=dict)
    steps: dict[str, list[Step]] = field(default_factory=dict)
    """Steps per env_id, in file order."""
    seeds: dict[str, Any] = field(default_factory=dict)


def _lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise TrajectoryError(f"cannot read {path}: {exc.strerror or exc}") from None
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = parse_json_text(line)
            except JsonTextError as exc:
                raise TrajectoryError(f"{path}:{number}: not JSON ({exc})") from None
            if not isinstance(record, dict):
                raise TrajectoryError(f"{path}:{number}: a line must be a JSON object")
            yield number, record


def read_trajectory(path: Path) -> Trajectory:
    """Parse the file, checking the header, every blob's hash, and that every image a step uses is in the file."""
    records = _lines(path)
    first = next(records, None)
    if first is None or first[1].get("type") != "header" or first[1].get("format") != FORMAT:
        raise TrajectoryError(f'{path}: the first line must be a header with "format": "{FORMAT}"')
    trajectory = Trajectory(header=first[1])
    for number, record in records:
        kind = record.get("type")
        if kind == "blob":
            trajectory.blobs[str(record.get("sha256"))] = _blob_bytes(path, number, record)
        elif kind == "step":
            env_id = str(record.get("env_id"))
            observation = record.get("observation") or []
            for block in observation:
                if block.get("type") == "image" and block.get("blob") not in trajectory.blobs:
                    raise TrajectoryError(f"{path}:{number}: image blob {block.get('blob')!r} is not in the file above")
            trajectory.seeds.setdefault(env_id, record.get("seed"))
            trajectory.steps.setdefault(env_id, []).append(
                Step(
                    step=int(record.get("step", len(trajectory.steps.get(env_id, [])) + 1)),
                    action=record.get("action") or {},
                    observation=observation,
                    reward=record.get("reward"),
                    terminated=bool(record.get("terminated")),
                    truncated=bool(record.get("truncated")),
                )
            )
    return trajectory


def _blob_bytes(path: Path, number: int, record: dict[str, Any]) -> bytes:
    try:
        data = base64.b64decode(str(record.get("data", "")), validate=True)
    except binascii.Error as exc:
        raise TrajectoryError(f"{path}:{number}: blob data is not base64 ({exc})") from None
    if hashlib.sha256(data).hexdigest() != record.get("sha256"):
        raise TrajectoryError(f"{path}:{number}: blob data does not match its sha256 {record.get('sha256')!r}")
    return data


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def _text_frame(text: str) -> Image.Image:
    font = _font(16)
    lines = text.splitlines() or [""]
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line_height = 20
    text_width = max(int(probe.textlength(line, font=font)) for line in lines) + 24
    image = Image.new("RGB", (text_width, line_height * len(lines) + 24), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((12, 12 + i * line_height), line, fill=INK, font=font)
    return image


def _caption(image: Image.Image, step: Step) -> Image.Image:
    arguments = step.action.get("arguments") or {}
    action = " ".join(str(v) for v in arguments.values()) or str(step.action.get("tool", ""))
    reward = "" if step.reward is None else f"   reward {step.reward:+.2f}"
    end = "   terminated" if step.terminated else "   truncated" if step.truncated else ""
    strip = 24
    out = Image.new("RGB", (image.width, image.height + strip), BACKGROUND)
    out.paste(image, (0, 0))
    ImageDraw.Draw(out).text(
        (8, image.height + 4), f"step {step.step}   {action}{reward}{end}", fill=INK, font=_font(14)
    )
    return out


def frame(trajectory: Trajectory, step: Step, caption: bool = True) -> Image.Image:
    images = [b for b in step.observation if b.get("type") == "image"]
    if images:
        with Image.open(io.BytesIO(trajectory.blobs[images[0]["blob"]])) as source:
            image = source.convert("RGB")
    else:
        text = "\n".join(str(b.get("text", "")) for b in step.observation if b.get("type") == "text")
        image = _text_frame(text)
    return _caption(image, step) if caption else image


def pick_episode(trajectory: Trajectory, env_id: str | None) -> tuple[str, list[Step]]:
    if not trajectory.steps:
        raise TrajectoryError("the trajectory has no steps")
    if env_id is None:
        with_images = [e for e, steps in trajectory.steps.items() if any(_has_image(s) for s in steps)]
        env_id = (with_images or list(trajectory.steps))[0]
    if env_id not in trajectory.steps:
        raise TrajectoryError(f"no steps for env_id {env_id!r}; the file has: {', '.join(trajectory.steps)}")
    return env_id, trajectory.steps[env_id]


def _has_image(step: Step) -> bool:
    return any(b.get("type") == "image" for b in step.observation)


def render(
    path: Path,
    gif: Path | None = None,
    frames_dir: Path | None = None,
    *,
    env_id: str | None = None,
    fps: float = 10.0,
    every: int = 1,
    scale: float = 1.0,
    caption: bool = True,
) -> dict[str, Any]:
    """Write the chosen episode as a GIF and/or numbered PNG frames; returns what was written."""
    if gif is None and frames_dir is None:
        raise TrajectoryError("nothing to write: give a .gif output and/or a frames directory")
    if every < 1 or not 0 < scale <= 4 or not 0 < fps <= 100:
        raise TrajectoryError("--every must be >= 1, --scale in (0, 4], --fps in (0, 100]")
    trajectory = read_trajectory(path)
    chosen, steps = pick_episode(trajectory, env_id)
    selected = steps[::every]
    if steps[-1] is not selected[-1]:
        selected.append(steps[-1])  # always show how the episode ended
    images = [frame(trajectory, step, caption) for step in selected]
    if scale != 1.0:
        images = [im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale)))) for im in images]
    size = (max(im.width for im in images), max(im.height for im in images))
    images = [_fit(im, size) for im in images]
    written: list[str] = []
    if frames_dir is not None:
        frames_dir.mkdir(parents=True, exist_ok=True)
        for step, image in zip(selected, images, strict=True):
            target = frames_dir / f"frame_{step.step:05d}.png"
            image.save(target, format="PNG", optimize=True)
            written.append(str(target))
    if gif is not None:
        gif.parent.mkdir(parents=True, exist_ok=True)
        durations = [round(1000 / fps)] * len(images)
        durations[-1] = max(durations[-1], 1500)  # linger on the end
        images[0].save(gif, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0,
                       optimize=True)  # fmt: skip
        written.append(str(gif))
    return {"env_id": chosen, "seed": trajectory.seeds.get(chosen), "frames": len(images), "written": written}


def _fit(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    if image.size == size:
        return image
    canvas = Image.new("RGB", size, BACKGROUND)
    canvas.paste(image, (0, 0))
    return canvas
