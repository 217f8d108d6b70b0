"""`mcpsim render`: one episode of a trajectory file as a GIF or numbered PNG frames.

A step's frame is the image its observation held (stored once in the file as a `blob` line), or, for text-only
envs, the observation's text drawn on a plain background. A caption strip under each frame names the step, the
action and the reward, so a GIF can be read without the file next to it. A damaged file (a line that is not
JSON, a blob that is missing or does not match its hash) is refused, naming the line; an episode cut short or
counted wrong is rendered as it is.
"""

import base64
import io
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from mcpsim.errors import ConfigError, TrajectoryError
from mcpsim.trajectory.format import Step
from mcpsim.trajectory.reader import Recording, assemble, scan

BACKGROUND = (250, 250, 248)
INK = (20, 20, 20)


def read_for_render(path: Path) -> Recording:
    """The file, refused if damaged (`Recording.damage`); a line that is not JSON is `FILE:LINE: not JSON (why)`."""
    lines = scan(path)
    for line in lines:
        if line.json_error is not None:
            raise TrajectoryError(f"{path}:{line.number}: not JSON ({line.json_error})")
    recording = assemble(path, lines, strict=False)
    if recording.damage:
        raise TrajectoryError(recording.damage[0])
    return recording


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
    arguments = step.action.arguments if isinstance(step.action.arguments, dict) else {}
    action = " ".join(str(v) for v in arguments.values()) or step.action.tool
    reward = f"   reward {step.reward:+.2f}"
    end = "   terminated" if step.terminated else "   truncated" if step.truncated else ""
    strip = 24
    out = Image.new("RGB", (image.width, image.height + strip), BACKGROUND)
    out.paste(image, (0, 0))
    ImageDraw.Draw(out).text(
        (8, image.height + 4), f"step {step.step}   {action}{reward}{end}", fill=INK, font=_font(14)
    )
    return out


def frame(step: Step, caption: bool = True) -> Image.Image:
    images = [b for b in step.observation if b.get("type") == "image" and isinstance(b.get("data"), str)]
    if images:
        with Image.open(io.BytesIO(base64.b64decode(images[0]["data"]))) as source:
            image = source.convert("RGB")
    else:
        text = "\n".join(str(b.get("text", "")) for b in step.observation if b.get("type") == "text")
        image = _text_frame(text)
    return _caption(image, step) if caption else image


def pick_episode(recording: Recording, env_id: str | None) -> tuple[str, int, list[Step]]:
    """(env id, seed, steps) of the chosen episode: `env_id`, else the first with images, else the first."""
    played = [t for t in recording.trajectories if t.steps]
    if not played:
        raise TrajectoryError(f"{recording.path}: the trajectory has no steps")
    if env_id is None:
        with_images = [t for t in played if any(_has_image(s) for s in t.steps)]
        env_id = (with_images or played)[0].env_id
    chosen = next((t for t in played if t.env_id == env_id), None)
    if chosen is None:
        raise TrajectoryError(f"no steps for env_id {env_id!r}; the file has: {', '.join(t.env_id for t in played)}")
    return chosen.env_id, chosen.seed, chosen.steps


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
        raise ConfigError("nothing to write: give a .gif output and/or a frames directory")
    if every < 1 or not 0 < scale <= 4 or not 0 < fps <= 100:
        raise ConfigError("--every must be >= 1, --scale in (0, 4], --fps in (0, 100]")
    chosen, seed, steps = pick_episode(read_for_render(path), env_id)
    selected = steps[::every]
    if steps[-1] is not selected[-1]:
        selected.append(steps[-1])  # always show how the episode ended
    images = [frame(step, caption) for step in selected]
    if scale != 1.0:
        images = [im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale)))) for im in images]
    size = (max(im.width for im in images), max(im.height for im in images))
    images = [_fit(im, size) for im in images]
    written: list[str] = []
    try:
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
    except OSError as exc:
        raise ConfigError(f"cannot write {exc.filename or gif or frames_dir}: {exc.strerror or exc}") from None
    return {"env_id": chosen, "seed": seed, "frames": len(images), "written": written}


def _fit(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    if image.size == size:
        return image
    canvas = Image.new("RGB", size, BACKGROUND)
    canvas.paste(image, (0, 0))
    return canvas
