"""`/`: the dashboard, a static page (plain HTML + JS, no build step) that polls `/api/overview` every second.

`/api/overview` is everything the page shows in one answer: health, the instances with their calls, last
tool, CPU and memory, recent spawn and call latencies, recent errors. `/api/instances/{id}/frame` serves the
latest image a tool of that instance returned; the page asks for it only when its sequence number changes,
and only then is the base64 decoded.
"""

import base64
import binascii
import time
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from mcpsim.errors import MalformedReply, NotFound
from mcpsim.pool import InstancePool
from mcpsim.server.fronts.api import describe
from mcpsim.server.ops.endpoints import health
from mcpsim.server.ops.metrics import Metrics
from mcpsim.server.ops.resources import ResourceSampler
from mcpsim.server.principals import Principal, owned, principal_of, visible

STATIC = Path(__file__).parent / "static"
ERRORS_SHOWN = 20
SAFE_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
FRAME_HEADERS = {"cache-control": "no-store", "x-content-type-options": "nosniff"}


def overview(
    pool: InstancePool,
    metrics: Metrics,
    resources: ResourceSampler,
    phase: str,
    sessions_open: int,
    principal: Principal,
) -> dict[str, Any]:
    """What the page shows; a principal other than the admin gets its own instances and their errors only (the
    counts in `health` stay the server's)."""
    instances = []
    for instance in visible(principal, list(pool.instances.values())):
        usage = resources.usage(instance.id)
        instances.append(
            {**describe(instance), "cpu_percent": round(usage.cpu_percent, 1), "rss_bytes": usage.rss_bytes}
        )
    _, health_body = health(pool, phase)
    return {
        "now": time.time(),
        "health": {**health_body, "sessions_open": sessions_open},
        "instances": instances,
        "spawn_latency": [[round(t, 3), round(s, 6)] for t, s in metrics.recent_spawns],
        "call_latency": [[round(t, 3), round(s, 6), tool, err] for t, s, tool, err in metrics.recent_calls],
        "errors": _errors(pool, principal),
        "orphans": resources.orphans,
    }


def _errors(pool: InstancePool, principal: Principal) -> list[dict[str, Any]]:
    """Recent errors, newest first; for a non-admin only those of its own instances (they carry session ids)."""
    errors = [entry for entry in pool.recent_errors if principal.admin or entry.get("owner") == principal.name]
    return errors[-ERRORS_SHOWN:][::-1]


def dashboard_routes(
    pool: InstancePool, metrics: Metrics, resources: ResourceSampler, phase: Any, sessions: Any
) -> list[Route]:
    page = (STATIC / "dashboard.html").read_text()

    async def index(request: Request) -> Response:
        return HTMLResponse(page)

    async def overview_endpoint(request: Request) -> Response:
        await resources.refresh()
        principal = principal_of(request.scope)
        return JSONResponse(overview(pool, metrics, resources, phase(), len(sessions.sessions), principal))

    async def frame(request: Request) -> Response:
        instance = owned(pool, request.path_params["instance_id"], principal_of(request.scope))
        block = instance.stats.last_image
        if block is None:
            raise NotFound(f"instance {instance.id} has returned no image yet")
        try:
            data = base64.b64decode(block["data"], validate=True)
        except (binascii.Error, ValueError):
            raise MalformedReply("the latest image block is not valid base64") from None
        media_type = str(block.get("mimeType"))
        if media_type not in SAFE_IMAGE_TYPES:  # a backend must not get HTML or SVG served on our origin
            media_type = "application/octet-stream"
        return Response(data, media_type=media_type, headers=FRAME_HEADERS)

    return [
        Route("/", index),
        Route("/api/overview", overview_endpoint),
        Route("/api/instances/{instance_id}/frame", frame),
    ]
