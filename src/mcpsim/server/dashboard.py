"""`/`: the dashboard page, a static file that polls `/api/instances` and `/health` (no build step)."""

from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

STATIC = Path(__file__).parent / "static"


def dashboard_routes() -> list[Route]:
    page = (STATIC / "dashboard.html").read_text()

    async def index(request: Request) -> Response:
        return HTMLResponse(page)

    return [Route("/", index)]
