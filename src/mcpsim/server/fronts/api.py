"""`/api/instances`: start, list and end instances over plain HTTP + JSON.

`POST` starts an instance and answers once it is ready with its handle URL (`/envs/<id>/mcp`), so clients
without MCP sessions (and warm-up scripts) can address one instance explicitly. `POST {"seeds": [...]}`
announces seeds to start ahead (202), at most `MAX_SEEDS_PER_ANNOUNCE` per request (else 413) and
`MAX_QUEUED_SEEDS` waiting in all (else 429, nothing queued). With several principals
(`mcpsim.server.principals`) each lists and addresses only its own instances; the admin, all.
"""

from typing import Any

from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcpsim.errors import BadRequest, ClientGone
from mcpsim.pool import Instance, InstancePool
from mcpsim.server.fronts.bodies import parse_json, read_body
from mcpsim.server.fronts.params import parse_config
from mcpsim.server.fronts.starts import start_for_request
from mcpsim.server.principals import owned, principal_of, visible
from mcpsim.wire import parse_seed


def describe(instance: Instance) -> dict[str, Any]:
    return {**instance.describe(), "owner": instance.owner, "url": f"/envs/{instance.id}/mcp", "protocol": instance.era}


def api_routes(pool: InstancePool) -> list[Route]:
    """The routes; their errors are answered by the app's exception handler (`mcpsim.server.edge`)."""

    async def create(request: Request) -> Response:
        body = await read_body(request.receive, pool.config.max_message_bytes, request.scope)
        payload = parse_json(body) if body.strip() else {}
        if not isinstance(payload, dict):
            raise BadRequest('the body must be a JSON object like {"seed": 42, "config": {}}')
        if "seeds" in payload:
            return announce(payload)
        seed, config = parse_seed(payload.get("seed")), parse_config(payload.get("config"))
        protocol = payload.get("protocol")  # "2026-07-28": opened in that era if the server speaks it (pool/eras.py)
        if protocol is not None and protocol not in MODERN_PROTOCOL_VERSIONS:
            raise BadRequest(f"protocol must be one of {', '.join(MODERN_PROTOCOL_VERSIONS)} (or absent)")
        options = {"protocol_version": protocol} if protocol else {}
        owner = principal_of(request.scope).name
        instance = await start_for_request(pool, request.receive, seed, config, owner=owner, **options)
        if instance is None:  # the client left while it started: nobody will use it (already ended)
            raise ClientGone("the client closed the request before its instance was ready")
        return JSONResponse(describe(instance), 201)

    def announce(payload: dict[str, Any]) -> Response:
        """Seeds whose sessions will come: started ahead (bounded by --warm), claimed by matching sessions."""
        seeds = payload["seeds"]
        if not isinstance(seeds, list):
            raise BadRequest("seeds must be a list of integers")
        pool.warm.queue.check(len(seeds))  # TooManySeeds / QueueFull past the queue's limits, before parsing any
        parsed = [parse_seed(seed) for seed in seeds]
        if any(seed is None for seed in parsed):
            raise BadRequest("seeds must not contain empty values")
        protocol = payload.get("protocol")  # "2026-07-28": for 2026 episodes (warm keys carry the era)
        if protocol is not None and protocol not in MODERN_PROTOCOL_VERSIONS:
            raise BadRequest(f"protocol must be one of {', '.join(MODERN_PROTOCOL_VERSIONS)} (or absent)")
        options = {"version": protocol} if protocol else {}
        config = parse_config(payload.get("config"))
        queued = pool.warm.announce([seed for seed in parsed if seed is not None], config, **options)
        return JSONResponse({"announced": len(parsed), "queued": queued, "warm": pool.warm.unclaimed_count}, 202)

    async def listing(request: Request) -> Response:
        instances = visible(principal_of(request.scope), list(pool.instances.values()))
        return JSONResponse([describe(instance) for instance in instances])

    async def one(request: Request) -> Response:
        instance = owned(pool, request.path_params["instance_id"], principal_of(request.scope))
        if request.method == "DELETE":
            await pool.end(instance.id)
        return JSONResponse(describe(instance))

    async def branch(request: Request) -> Response:
        """k copies of a live instance, each its own instance (`mcpsim.pool.branching`)."""
        instance = owned(pool, request.path_params["instance_id"], principal_of(request.scope))
        body = await read_body(request.receive, pool.config.max_message_bytes, request.scope)
        payload = parse_json(body) if body.strip() else {}
        if not isinstance(payload, dict):
            raise BadRequest('the body must be a JSON object like {"count": 4}')
        count = payload.get("count", 1)
        if not isinstance(count, int) or isinstance(count, bool):
            raise BadRequest(f"count must be an integer, not {count!r}")
        method = payload.get("method", "auto")
        if not isinstance(method, str):
            raise BadRequest(f"method must be a string, not {method!r}")
        copies = await pool.branch(instance.id, count, method)
        fields = ("id", "url", "parent", "branched_at_step")
        listed = [{**{key: describe(copy)[key] for key in fields}, "method": copy.branch_method} for copy in copies]
        return JSONResponse({"instances": listed}, 201)

    return [
        Route("/api/instances/{instance_id}/branch", branch, methods=["POST"]),
        Route("/api/instances", create, methods=["POST"]),
        Route("/api/instances", listing, methods=["GET"]),
        Route("/api/instances/{instance_id}", one, methods=["GET", "DELETE"]),
    ]
