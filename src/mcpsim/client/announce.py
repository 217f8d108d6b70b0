"""Tell a managed server which seeds are coming, so their instances start while earlier episodes play.

Each episode, when it starts, announces the episode `lookahead` places further down the list
(`POST /api/instances {"seeds": [...], "config": ...}`); the server starts those instances in the background
and the episode that arrives later claims its instance ready-made. At most `lookahead` unclaimed instances are
announced ahead at any time, and the server's `--warm N` bounds it further. A server without the endpoint (a
plain production server) answers 404/405 once and announcing stops for the rest of the rollout.

Announcements name the era the episode will speak (`"protocol": "2026-07-28"` unless the episode is
`protocol="legacy"`), since a warm instance is opened for one era and only an episode of that era claims it. A
rollout with `protocol="auto"` announces 2026-07-28: against mcpsim (the only server with announcements) auto
speaks it.
"""

import logging
from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

import httpx2
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from mcpsim.client.env import Environment

logger = logging.getLogger(__name__)
MODERN = MODERN_PROTOCOL_VERSIONS[-1]


def api_url(url: str) -> str | None:
    """`http://host:port/api/instances` for a managed server's `/mcp` URL; None for other URLs."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.path.rstrip("/").endswith("/mcp"):
        return None
    base = parts.path.rstrip("/")[: -len("/mcp")]
    return urlunsplit((parts.scheme, parts.netloc, f"{base}/api/instances", "", ""))


class Announcer:
    def __init__(self, envs: Sequence[Environment], lookahead: int, http: httpx2.AsyncClient) -> None:
        self.envs = envs
        self.lookahead = lookahead
        self.http = http
        self.enabled = lookahead > 0
        self.announced = 0

    async def episode_started(self, index: int) -> None:
        """Episode `index` has begun: announce the one `lookahead` places ahead (if any)."""
        ahead = index + self.lookahead
        if not self.enabled or ahead >= len(self.envs):
            return
        env = self.envs[ahead]
        target = api_url(env.url)
        if target is None:
            self.enabled = False
            return
        payload: dict[str, object] = {"seeds": [env.seed], "config": dict(env.row.config or {})}
        if env.protocol != "legacy":
            payload["protocol"] = MODERN
        try:
            response = await self.http.post(target, json=payload, timeout=10.0)
        except httpx2.HTTPError as exc:
            logger.debug("announcing seeds failed (%r); not announcing any more", exc)
            self.enabled = False
            return
        if response.status_code != 202:
            logger.debug("the server does not take announcements (HTTP %s); not announcing", response.status_code)
            self.enabled = False
            return
        self.announced += 1
