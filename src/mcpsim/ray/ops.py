"""`/health`, `/metrics`, `GET /api/instances`, `/api/overview` and the dashboard of a `--ray` front: every
node's answers gathered at once, each instance and each sample tagged with its node id.

- `/health`: the nodes' counts summed, `limits.max_instances` the cluster's total, and `nodes`: one entry per
  live node (id, URL, status, live, max, `environment`: `ready` once its fork template or isolated environment
  is built) plus the nodes this front saw go (`lost`). 503 when no node is live.
- `/metrics`: each node's Prometheus text with a `node="<id>"` label on every sample, families kept together,
  plus `mcpsim_ray_nodes` (live nodes as this front sees them).
- `/api/instances`, `/api/overview`: the nodes' lists with a `node` field (the dashboard's node column).
A node that does not answer within `GATHER_TIMEOUT` is left out of that answer (named in `unanswered`).
"""

import time
from collections.abc import Callable
from typing import Any

import anyio
import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcpsim.ray.cluster import Node, Nodes

GATHER_TIMEOUT = 3.0


async def gather(nodes: Nodes, client: httpx.AsyncClient, path: str) -> tuple[dict[str, httpx.Response], list[str]]:
    """`GET path` on every live node at once: (node key -> answer, keys that did not answer)."""
    answers: dict[str, httpx.Response] = {}
    missing: list[str] = []

    async def one(node: Node) -> None:
        try:
            answers[node.key] = await client.get(
                f"{node.url}{path}", headers={"authorization": f"Bearer {node.token}"}, timeout=GATHER_TIMEOUT
            )
        except httpx.HTTPError:
            missing.append(node.key)

    async with anyio.create_task_group() as tasks:
        for node in list(nodes.nodes.values()):
            tasks.start_soon(one, node)
    return answers, missing


def health_body(nodes: Nodes, started_at: float) -> tuple[int, dict[str, Any]]:
    live = list(nodes.nodes.values())
    counts: dict[str, int] = {}
    for node in live:
        for state, count in node.health.get("instances", {}).items():
            counts[state] = counts.get(state, 0) + int(count)
    statuses = {node.health.get("status", "unknown") for node in live}
    status = "down" if not live else "ok" if statuses == {"ok"} else "degraded"
    body = {
        "status": status,
        "uptime_s": round(time.time() - started_at, 3),
        "instances": counts or {"live": 0},
        "limits": {"max_instances": sum(node.max_instances for node in live), "per_node": True},
        "ray": {"address": nodes.ray.address, "front": nodes.front_id, "lease_s": nodes.ray.lease},
        "nodes": [
            {
                "node": node.node_id,
                "url": node.url,
                "status": node.health.get("status", "unknown"),
                "live": node.live,
                "max_instances": node.max_instances,
                "environment": node.health.get("environment", {}).get("state"),
            }
            for node in live
        ],
        "lost": list(nodes.gone.values())[-20:],
    }
    return (200 if live else 503), body


def relabel(text: str, node_id: str) -> dict[str, list[str]]:
    """One node's exposition, family -> lines, with `node="..."` on every sample."""
    families: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            current = line.split()[2]
            families.setdefault(current, [])
            if not any(existing.startswith(line[:7] + current + " ") for existing in families[current]):
                families[current].append(line)
            continue
        if not line or line.startswith("#"):
            continue
        name, brace, rest = line.partition("{")
        if brace:
            sample = f'{name}{{node="{node_id}",{rest}'
        else:
            name, _, value = line.partition(" ")
            sample = f'{name}{{node="{node_id}"}} {value}'
        families.setdefault(current or name, []).append(sample)
    return families


def merge_metrics(texts: dict[str, str], live_nodes: int) -> str:
    merged: dict[str, list[str]] = {}
    for node_id, text in texts.items():
        for family, lines in relabel(text, node_id).items():
            target = merged.setdefault(family, [])
            target.extend(line for line in lines if not (line.startswith("# ") and line in target))
    out = ["# HELP mcpsim_ray_nodes Live Ray nodes with an mcpsim agent, as this front sees them",
           "# TYPE mcpsim_ray_nodes gauge", f"mcpsim_ray_nodes {live_nodes}"]  # fmt: skip
    for lines in merged.values():
        out.extend(sorted(lines, key=lambda line: not line.startswith("# ")))
    return "\n".join(out) + "\n"


def ops_routes(nodes: Nodes, started_at: float) -> list[Route]:
    client = httpx.AsyncClient()

    def tagged(answers: dict[str, httpx.Response], pick: Callable[[Any], list[Any]]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for key, reply in answers.items():
            node_id = key.partition(".")[0]
            if reply.status_code == 200:
                out.extend({**item, "node": node_id} for item in pick(reply.json()))
        return out

    async def health(request: Request) -> Response:
        status, body = health_body(nodes, started_at)
        return JSONResponse(body, status)

    async def metrics(request: Request) -> Response:
        answers, _ = await gather(nodes, client, "/metrics")
        texts = {key.partition(".")[0]: reply.text for key, reply in answers.items() if reply.status_code == 200}
        return Response(merge_metrics(texts, len(nodes.nodes)), media_type="text/plain; version=0.0.4")

    async def instances(request: Request) -> Response:
        answers, missing = await gather(nodes, client, "/api/instances")
        headers = {"x-mcpsim-unanswered": ",".join(missing)} if missing else None
        return JSONResponse(tagged(answers, lambda body: body), headers=headers)

    async def overview(request: Request) -> Response:
        answers, missing = await gather(nodes, client, "/api/overview")
        bodies = [reply.json() for reply in answers.values() if reply.status_code == 200]
        _, health_now = health_body(nodes, started_at)
        return JSONResponse({
            "now": time.time(),
            "health": {
                **(bodies[0]["health"] if bodies else {}),  # a node's fields the page shows (fork server, ports)
                **health_now,
                "sessions_open": sum(b["health"].get("sessions_open", 0) for b in bodies),
                "recent_spawn_failures": [f for b in bodies for f in b["health"].get("recent_spawn_failures", [])],
            },
            "instances": tagged(answers, lambda body: body["instances"]),
            "spawn_latency": sorted(p for b in bodies for p in b["spawn_latency"]),
            "call_latency": sorted(p for b in bodies for p in b["call_latency"]),
            "errors": [e for b in bodies for e in b["errors"]][:20],
            "orphans": [o for b in bodies for o in b["orphans"]],
            "unanswered": missing,
        })  # fmt: skip

    return [
        Route("/health", health),
        Route("/metrics", metrics),
        Route("/api/instances", instances, methods=["GET"]),
        Route("/api/overview", overview),
    ]
