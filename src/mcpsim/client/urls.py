"""Where an episode's server is: an HTTP URL with its seed and config in the query string, or `stdio:COMMAND`.

Kept apart from `env.py` (which opens the sessions) because the gym runner, the rollout CLI and `make()` check
and build these addresses without opening anything.
"""

import json
import shlex
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from mcp import StdioServerParameters

from mcpsim.errors import ConfigError
from mcpsim.wire import CONFIG_VARIABLE, SEED_VARIABLE

STDIO_PREFIX = "stdio:"


def session_url(url: str, seed: int, config: Mapping[str, Any] | None = None) -> str:
    """`url` with `seed` (and `config` as compact JSON) in its query string, replacing any already there."""
    parts = urlsplit(url)
    path = parts.path if parts.path not in ("", "/") else "/mcp"
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in ("seed", "config")]
    query.append(("seed", str(seed)))
    if config:
        query.append(("config", json.dumps(dict(config), separators=(",", ":"), sort_keys=True)))
    return urlunsplit((parts.scheme, parts.netloc, path, urlencode(query, quote_via=quote), parts.fragment))


def check_url(url: str) -> str:
    if url.startswith(STDIO_PREFIX):
        stdio_command(url, 0, None)  # parses, or raises naming the problem
        return url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"an environment URL must be http(s)://host:port/mcp, .../sse or stdio:COMMAND, got {url!r}")
    return url


def stdio_command(url: str, seed: int, config: Mapping[str, Any] | None) -> StdioServerParameters:
    """`stdio:COMMAND` launches a stdio server per episode: `{seed}` in the command is replaced, and the seed and
    config also reach it as `MCPSIM_SEED`/`MCPSIM_CONFIG` (as the managed server passes them); no shell."""
    try:
        argv = shlex.split(url[len(STDIO_PREFIX) :])
    except ValueError as exc:
        raise ConfigError(f"{url!r}: cannot parse the stdio command: {exc}") from None
    if not argv:
        raise ConfigError(
            f"{url!r}: stdio: needs a command, e.g. stdio:python -m mcpsim.envs.frozen_lake --seed {{seed}}"
        )
    argv = [token.replace("{seed}", str(seed)) for token in argv]
    env = {SEED_VARIABLE: str(seed)}
    if config:
        env[CONFIG_VARIABLE] = json.dumps(dict(config))
    return StdioServerParameters(command=argv[0], args=argv[1:], env=env)
