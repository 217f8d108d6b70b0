"""`mcpsim view FILE`: a page to step through the episodes of a trajectory file.

`/` is a static page; `/api/trajectory` is the parsed file (episodes with their steps; images as blob ids),
re-read whenever the file changed, so a run still being recorded can be watched; `/blobs/{sha256}` serves one
image. Parsing happens in a worker thread. The same token rule as `mcpsim serve` applies.
"""

import base64
import binascii
import logging
from pathlib import Path
from typing import Any

import anyio
import pydantic_core
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from mcpsim.errors import NotFound, TrajectoryError
from mcpsim.server.auth import AccessGuard, is_loopback, required_token
from mcpsim.server.edge import exception_handlers
from mcpsim.server.ops.dashboard import FRAME_HEADERS, SAFE_IMAGE_TYPES
from mcpsim.server.principals import Credentials
from mcpsim.trajectory import EpisodeFile, read_episodes

logger = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
JSON = "application/json"


class TrajectorySource:
    """The file and its last parse; re-parsed when its size or modification time changed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._trajectory: EpisodeFile | None = None
        self._lock = anyio.Lock()

    async def get(self) -> EpisodeFile:
        async with self._lock:
            try:
                stat = await anyio.Path(self.path).stat()
            except OSError as exc:
                raise TrajectoryError(f"{self.path}: cannot read the file: {exc.strerror or exc}") from None
            stamp = (stat.st_mtime_ns, stat.st_size)
            if self._trajectory is None or stamp != self._stamp:
                self._trajectory = await anyio.to_thread.run_sync(read_episodes, self.path)
                self._stamp = stamp
            return self._trajectory


def create_viewer_app(path: Path, host: str = "127.0.0.1", token: Credentials | str | None = None) -> Starlette:
    """Raises `AuthConfigError` for a non-loopback host without a token. Every principal may view the file."""
    credentials = required_token(host, token)
    source = TrajectorySource(path)
    page = (STATIC / "viewer.html").read_text()

    async def index(request: Request) -> Response:
        return HTMLResponse(page)

    async def trajectory(request: Request) -> Response:
        loaded = await source.get()
        # NaN and infinite rewards are valid in a recording (Python writes them) but not in JSON: sent as strings
        return Response(pydantic_core.to_json(loaded.describe(path), inf_nan_mode="strings"), media_type=JSON)

    async def blob(request: Request) -> Response:
        sha = request.path_params["sha"]
        loaded = await source.get()
        if sha not in loaded.blobs:
            raise NotFound(f"no blob {sha[:64]!r} in {path.name}")
        mime, data = loaded.blobs[sha]
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise TrajectoryError(f"blob {sha} is not valid base64") from None
        return Response(
            raw, media_type=mime if mime in SAFE_IMAGE_TYPES else "application/octet-stream", headers=FRAME_HEADERS
        )

    routes = [Route("/", index), Route("/api/trajectory", trajectory), Route("/blobs/{sha}", blob)]
    return Starlette(
        routes=routes,
        middleware=[Middleware(AccessGuard, credentials=credentials, loopback=is_loopback(host))],
        exception_handlers=exception_handlers(),
    )


def check_file(path: Path) -> dict[str, Any]:
    """Parse once before serving, so a wrong path or a file that is no trajectory fails at the command line."""
    loaded = read_episodes(path)
    return {"episodes": len(loaded.episodes), "blobs": len(loaded.blobs)}


async def view(path: Path, host: str, port: int, token: Credentials | str | None) -> None:
    app = create_viewer_app(path, host, token)
    summary = await anyio.to_thread.run_sync(check_file, path)
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, loop="asyncio", http="h11")
    server = uvicorn.Server(config)
    logger.info(
        "viewing %s (%d episodes) on http://%s:%d/",
        path,
        summary["episodes"],
        host,
        port,
        extra={"event": "view.start"},
    )
    await server.serve()
