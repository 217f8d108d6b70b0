"""LunarLander: PNG frames of the expected size, 100 headless steps, text-only mode, and the end of a flight."""

import base64
import io

from PIL import Image

from helpers.envs import env_client, texts
from mcpsim.envs.lunar_lander import FRAME_SIZE

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def decode_png(data: str) -> Image.Image:
    raw = base64.b64decode(data)
    assert raw.startswith(PNG_SIGNATURE)
    image = Image.open(io.BytesIO(raw))
    image.load()  # decodes every chunk: a truncated or corrupt file raises here
    return image


async def test_hundred_steps_headless_each_with_a_valid_png_frame():
    # a display that does not exist: drawing must not try to open it
    frames = set()
    async with env_client("lunar_lander", 11, extra_env={"DISPLAY": ":97"}) as client:
        for step in range(100):
            action = ("FIRE_MAIN", "NOTHING", "FIRE_LEFT", "FIRE_RIGHT")[step % 4]
            result = await client.call_tool("lander_action", {"action": action})
            if result.is_error:
                break
            kinds = [block.type for block in result.content]
            assert kinds == ["text", "image"]
            image_block = result.content[1]
            assert image_block.mime_type == "image/png"
            image = decode_png(image_block.data)
            assert image.format == "PNG" and image.size == FRAME_SIZE and image.mode == "RGB"
            frames.add(image_block.data)
            text = texts(result)
            for needle in ("Position: x=", "Velocity: vx=", "Angle:", "Legs touching the ground:"):
                assert needle in text
            assert result.meta["mcpsim"]["step"] == step + 1
            if result.meta["mcpsim"]["terminated"]:
                break
    assert len(frames) >= 50, "the frame must change as the lander moves"


async def test_initial_frame_resource_and_text_only_config():
    async with env_client("lunar_lander", 2) as client:
        frame = await client.read_resource("game://initial_frame")
        (content,) = frame.contents
        assert content.mime_type == "image/png"
        assert decode_png(content.blob).size == FRAME_SIZE
    async with env_client("lunar_lander", 2, '{"images": false}') as client:
        result = await client.call_tool("lander_action", {"action": "NOTHING"})
        assert [block.type for block in result.content] == ["text"]


async def test_free_fall_ends_in_a_crash_with_the_crash_penalty():
    async with env_client("lunar_lander", 3, '{"images": false}') as client:
        for _ in range(1000):
            result = await client.call_tool("lander_action", {"action": "NOTHING"})
            meta = result.meta["mcpsim"]
            if meta["terminated"]:
                break
        assert meta["terminated"] and not meta["truncated"]
        assert meta["reward"] == -100.0 and meta["step"] < 400
        after = await client.call_tool("lander_action", {"action": "NOTHING"})
        assert after.is_error and "terminated at step" in texts(after)
