"""The dashboard and the trajectory viewer in a real headless Chromium (Debian's, driven by Playwright).

`make test` installs Debian's `chromium` when it is missing; these tests skip (saying why) only when it is
still not there. Screenshots go to test-artifacts/.
"""

import hashlib
import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from helpers.http import HTTP
from helpers.mcp_client import answer_of
from helpers.procs import running
from helpers.serve import ARTIFACTS, server_script
from mcpsim.proc import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAINTER = f"python {server_script('painter.py')}"
HEADERS = {"accept": "application/json, text/event-stream"}

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="/usr/bin/chromium is missing and `make test` could not install it (apt-get)"
)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser) -> Iterator:
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def call_tool(handle: str, tool: str, arguments: dict) -> dict:
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}
    response = HTTP.post(handle, json=message, headers=HEADERS, timeout=30)
    assert response.status_code == 200, response.text
    return answer_of(response)


def test_dashboard_lists_live_instances_and_ends_one(serve_factory, page):
    serve = serve_factory("--server", PAINTER)
    first = HTTP.post(f"{serve.url}/api/instances", json={"seed": 1}, timeout=30).json()
    second = HTTP.post(f"{serve.url}/api/instances", json={"seed": 2}, timeout=30).json()
    call_tool(serve.url + second["url"], "paint", {"shade": 200})

    page.goto(f"{serve.url}/")
    page.wait_for_function("document.querySelectorAll('#instances tr[data-id]').length === 2")
    rows = {row.get_attribute("data-id"): row for row in page.query_selector_all("#instances tr[data-id]")}
    assert set(rows) == {first["id"], second["id"]}
    assert page.inner_text("#status") == "ok" and page.inner_text("#live") == "2 / 256"
    cells = rows[second["id"]].query_selector_all("td:not(.node-col)")  # the Ray node column is hidden here
    assert not page.is_visible("#instance-table th.node-col")
    texts = [cell.inner_text() for cell in cells]
    assert texts[1] == "\u2013"  # no parent (an en dash): not a branch
    assert texts[2] == "2" and texts[3] == str(second["pid"]) and texts[4] == "stdio" and texts[5] == "ready"
    assert texts[7] == "1" and texts[8] == "paint"  # calls, last tool
    # the latest frame of the instance that painted, as a loaded thumbnail (64x48 PNG from the painter)
    thumbnail = f"#instances tr[data-id='{second['id']}'] img.frame"
    page.wait_for_function(
        f'(() => {{ const i = document.querySelector("{thumbnail}"); '
        "return i && i.complete && i.naturalWidth === 64 && i.naturalHeight === 48; })()"
    )
    assert not rows[first["id"]].query_selector("img.frame")
    # live: an instance started after the page loaded shows up by itself
    third = HTTP.post(f"{serve.url}/api/instances", json={"seed": 3}, timeout=30).json()
    page.wait_for_selector(f"#instances tr[data-id='{third['id']}']", timeout=5_000)
    HTTP.delete(f"{serve.url}/api/instances/{third['id']}", timeout=30)
    page.wait_for_selector(f"#instances tr[data-id='{third['id']}']", state="detached", timeout=5_000)
    page.wait_for_function("document.querySelector('#call-chart circle') !== null")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

    page.click(f"#instances tr[data-id='{first['id']}'] button.end")
    page.wait_for_selector(f"#instances tr[data-id='{first['id']}']", state="detached", timeout=5_000)
    assert [item["id"] for item in serve.get("/api/instances").json()] == [second["id"]]
    assert not running(first["pid"])
    assert page.query_selector(f"#instances tr[data-id='{second['id']}']")


def test_dashboard_with_a_token_opens_from_a_token_link(serve_factory, page):
    serve = serve_factory("--server", PAINTER, "--auth-token", "tok-123")
    response = page.goto(f"{serve.url}/")
    assert response.status == 401 and "Token required" in page.inner_text("body")
    page.goto(f"{serve.url}/?token=tok-123")
    assert page.url == f"{serve.url}/"  # the token left the address bar; a cookie carries it
    page.wait_for_function("document.querySelector('#status').textContent === 'ok'")


def lunar_lander_episode(tmp_path: Path, steps: int = 8) -> tuple[Path, list[dict]]:
    """Play LunarLander for a few steps and record it in the trajectory format, interleaved with a text env."""
    gymnasium = pytest.importorskip("gymnasium")
    pytest.importorskip("Box2D", reason="LunarLander needs the vision extra (gymnasium[box2d])")
    from PIL import Image

    env = gymnasium.make("LunarLander-v3", render_mode="rgb_array")
    env.reset(seed=11)
    names = ["NOTHING", "FIRE_LEFT", "FIRE_MAIN", "FIRE_RIGHT"]
    header = {"type": "header", "format": "mcpsim.trajectory/1", "run": "browser-test", "policy": "scripted"}
    lines: list[dict] = [header]
    frames: list[dict] = []
    total = 0.0
    for step in range(1, steps + 1):
        action = [2, 2, 1, 3, 0, 2, 1, 3][(step - 1) % 8]
        _, reward, terminated, truncated, _ = env.step(action)
        truncated = truncated or step == steps
        buffer = io.BytesIO()
        Image.fromarray(env.render()).resize((150, 100)).save(buffer, format="PNG")
        png = buffer.getvalue()
        sha = hashlib.sha256(png).hexdigest()
        if sha not in {frame["sha"] for frame in frames}:
            lines.append({"type": "blob", "sha256": sha, "mimeType": "image/png", "data": _b64(png)})
        frames.append({"sha": sha, "png": png, "reward": float(reward), "action": names[action]})
        total += float(reward)
        lines.append({
            "type": "step", "env_id": "lunar-0", "seed": 11, "step": step,
            "action": {"tool": "lander_action", "arguments": {"action": names[action]}},
            "observation": [
                {"type": "text", "text": f"altitude step {step}"},
                {"type": "image", "mimeType": "image/png", "blob": sha},
            ],
            "reward": float(reward), "terminated": bool(terminated), "truncated": bool(truncated),
            "latency_ms": 3.5 + step,
        })  # fmt: skip
        if step <= 3:  # another environment's steps interleave
            lines.append({
                "type": "step", "env_id": "lake-0", "seed": 4, "step": step,
                "action": {"tool": "lake_move", "arguments": {"action": "RIGHT"}},
                "observation": [{"type": "text", "text": f"lake map after {step} moves"}],
                "reward": 1.0 if step == 3 else 0.0, "terminated": step == 3, "truncated": False, "latency_ms": 1.0,
            })  # fmt: skip
        if terminated:
            break
    env.close()
    lake_end = {"type": "episode", "env_id": "lake-0", "seed": 4, "total_reward": 1.0, "steps": 3, "terminated": True}
    lines.append(lake_end)
    lines.append({
        "type": "episode", "env_id": "lunar-0", "seed": 11, "total_reward": total, "steps": len(frames),
        "terminated": False, "truncated": True,
    })  # fmt: skip
    path = tmp_path / "lunar.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path, frames


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


@pytest.fixture
def viewer(tmp_path: Path) -> Iterator:
    path, frames = lunar_lander_episode(tmp_path)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "mcpsim", "view", str(path), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if HTTP.get(f"{url}/api/trajectory", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"mcpsim view did not come up: {process.stdout.read().decode()}")
        time.sleep(0.05)
    yield url, frames
    process.terminate()
    process.wait(10)


def test_viewer_steps_through_a_lunar_lander_episode_with_its_frames(viewer, page):
    url, frames = viewer
    page.goto(f"{url}/")
    page.wait_for_function("document.querySelectorAll('#episodes li').length === 2")
    assert "2 episodes" in page.inner_text("#counts")
    page.click("#episodes li:has-text('lunar-0')")
    assert page.inner_text("#episode-title") == "lunar-0 · seed 11"

    def shown_frame() -> str:
        page.wait_for_function(
            "(() => { const i = document.querySelector('#observation img'); "
            "return i && i.complete && i.naturalWidth === 150 && i.naturalHeight === 100; })()"
        )
        return page.get_attribute("#observation img", "data-blob")

    assert page.inner_text("#step-label") == f"step 1 / {len(frames)}"
    assert shown_frame() == frames[0]["sha"]
    assert page.is_disabled("#prev") and not page.is_disabled("#next")
    page.click("#next")
    assert page.inner_text("#step-label") == f"step 2 / {len(frames)}"
    assert shown_frame() == frames[1]["sha"]
    assert page.inner_text("#action") == f'lander_action({{"action":"{frames[1]["action"]}"}})'
    assert float(page.inner_text("#reward")) == pytest.approx(frames[1]["reward"], abs=1e-3)
    expected_return = frames[0]["reward"] + frames[1]["reward"]
    assert float(page.inner_text("#return")) == pytest.approx(expected_return, abs=2e-3)
    assert "altitude step 2" in page.inner_text("#observation")
    page.keyboard.press("ArrowRight")
    assert page.inner_text("#step-label") == f"step 3 / {len(frames)}" and shown_frame() == frames[2]["sha"]
    page.keyboard.press("End")
    assert page.inner_text("#step-label") == f"step {len(frames)} / {len(frames)}"
    assert shown_frame() == frames[-1]["sha"] and "truncated" in page.inner_text("#flags")
    assert page.is_disabled("#next")
    # the image the page shows is the frame that was recorded, byte for byte
    src = page.get_attribute("#observation img", "src")
    assert page.request.get(f"{url}/{src}").body() == frames[-1]["png"]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "viewer.png"), full_page=True)

    page.click("#episodes li:has-text('lake-0')")
    assert page.inner_text("#step-label") == "step 1 / 3"
    assert "lake map after 1 moves" in page.inner_text("#observation")
    assert page.query_selector("#observation img") is None


def test_dashboard_shows_a_fork_server_fallback_and_its_reason(serve_factory, page):
    # `env python ...` cannot be forked (mcpsim cannot see what a wrapper runs): instances spawn, and the page says so
    serve = serve_factory("--server", f"env {sys.executable} {server_script('painter.py')}", "--fork-server")
    page.goto(f"{serve.url}/")
    page.wait_for_function("document.querySelector('#fork-server').textContent === 'plain spawn'")
    assert "does not run Python code" in page.inner_text("#fork-reason")
