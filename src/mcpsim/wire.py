"""What travels between mcpsim, its clients and the production servers: names, numbers and the seed rule.

The bottom layer, beside `mcpsim.errors`: the production servers in `mcpsim.envs` import it (and nothing else of
mcpsim), so the `_meta` key, the initial-state resource, the seed range and the environment variables are spelled
once for the servers, the managed server and the client alike. Standard library only, so importing it costs
nothing (the SDK's protocol-version sets, `mcp_types.version`, cost 0.4 s to import and are imported where needed).
"""

import secrets
from typing import Any

from mcpsim.errors import ConfigError, InvalidSeed

VERSION = "0.1.0"
"""This mcpsim's version (`mcpsim.__version__`): in the `clientInfo` and `serverInfo` it sends, in recordings."""

# -- what a production server reports -----------------------------------------------------------------------------

META_KEY = "mcpsim"
"""Key of `_meta` in every tool result of an mcpsim env: `{"reward", "terminated", "truncated", "step"}`."""
INITIAL_STATE_URI = "game://initial_state"
"""The resource holding the observation before the first move (the client reads it first)."""

# -- seeds --------------------------------------------------------------------------------------------------------

MAX_SEED = 2**63 - 1
"""Seeds are integers in [0, 2**63): what every env's `--seed` and a 64-bit RNG seed accept."""
RANDOM_SEEDS = 2**31
"""A client that gives no seed gets one in [0, 2**31), small enough to type back."""
_MAX_SEED_DIGITS = len(str(MAX_SEED))


def random_seed() -> int:
    return secrets.randbelow(RANDOM_SEEDS)


def parse_seed(raw: Any) -> int | None:
    """A seed from a query string, a JSON body or an environment variable; None for none (`None` or `""`).

    Raises `InvalidSeed` naming the value (cut to 40 characters) for anything but an integer in [0, 2**63).
    """
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        raise InvalidSeed(f"invalid seed {raw!r}: must be an integer")
    if isinstance(raw, str):
        text = raw.strip()
        if not (text.isascii() and text.isdigit()):
            raise InvalidSeed(f"invalid seed {raw[:40]!r}: must be a non-negative integer")
        if len(text.lstrip("0")) > _MAX_SEED_DIGITS:  # before int(): Python refuses to convert 4301+ digits
            raise InvalidSeed(f"invalid seed {text[:40]!r}...: must be an integer in [0, 2**63)")
        raw = int(text)
    if not isinstance(raw, int) or not 0 <= raw <= MAX_SEED:
        shown = repr(raw)[:40] if not isinstance(raw, int) else f"with {raw.bit_length()} bits"
        raise InvalidSeed(f"invalid seed {shown}: must be an integer in [0, 2**63)")
    return raw


# -- environment variables ----------------------------------------------------------------------------------------

SEED_VARIABLE = "MCPSIM_SEED"
"""An instance's seed (also in its `{seed}` argument); `mcpsim serve --stdio` reads it too."""
PORT_VARIABLE = "MCPSIM_PORT"
"""The port leased to an HTTP backend (also its `{port}` argument)."""
CONFIG_VARIABLE = "MCPSIM_CONFIG"
"""An instance's config, as a JSON object."""
INSTANCE_DIR_VARIABLE = "MCPSIM_INSTANCE_DIR"
"""An instance's private, empty directory (also its `{instance_dir}` argument), removed when it ends."""
INSTANCE_VARIABLE = "MCPSIM_INSTANCE_ID"
"""Every instance's id; its descendants inherit it, which is how a subreaper attributes an escaped daemon."""
TOKEN_VARIABLE = "MCPSIM_AUTH_TOKEN"
"""The managed server's token; no child ever inherits it."""
CACHE_VARIABLE = "MCPSIM_CACHE_DIR"
"""Where built environments are kept (default `$XDG_CACHE_HOME/mcpsim`, else `~/.cache/mcpsim`)."""
TRACKING_VARIABLE = "MCPSIM_PROCESS_TRACKING"
"""How escaped descendants are tracked: auto | cgroup | cgroup2 | cgroup1:freezer | cgroup1:pids | subreaper | off."""

# -- JSON-RPC error codes mcpsim answers with ---------------------------------------------------------------------
# In the implementation-defined band -32000..-32019 that the MCP spec leaves to servers, above the SDK's own
# -32000/-32001, so a client can tell "the proxy could not serve this" from a server's answer.

BACKEND_UNAVAILABLE = -32010
"""The instance's server process exited or its connection closed."""
BACKEND_START_FAILED = -32011
"""The instance could not be started or did not become ready."""
CAPACITY_EXHAUSTED = -32012
"""`--max-instances` reached or no free port in `--port-range`."""
BACKEND_TIMEOUT = -32013
"""The instance did not answer a request in time."""
NO_BACK_CHANNEL = -32014
"""The server sent a request, but no connected client can answer it."""
MESSAGE_TOO_LARGE = -32015
"""A message was larger than `--max-message-bytes` (the server's answer, or the client's request on stdio)."""
INTERNAL_FAILURE = -32016
"""mcpsim failed unexpectedly while serving this request (a bug: the log has its traceback)."""

# The 2026-07-28 revision reserves -32020..-32099 and asks new implementations to keep out of -32768..-32000,
# so the handle errors of the modern front have codes of their own, in -31010..-31014.

HANDLE_UNKNOWN = -31010
"""No episode has this handle (or it is another principal's: the same answer)."""
HANDLE_ENDED = -31011
"""The handle's instance has ended; `data.reason` says how."""
HANDLE_CONFLICT = -31012
"""The URL's handle and `_meta["mcpsim/handle"]` disagree."""
HANDLE_CAPACITY = -31014
"""A handle-less request needed a fresh instance and `--max-instances` was reached (HTTP 503)."""

HANDLE_META_KEY = "mcpsim/handle"
"""`_meta` key naming an episode's handle: on every 2026-07-28 result of an episode, and on requests to it."""
URL_META_KEY = "mcpsim/url"
"""`_meta` key of a 2026-07-28 result: the absolute `/envs/<handle>/mcp` URL of its episode."""
CLIENT_PROTOCOLS = ("auto", "2026-07-28", "legacy")
"""What `make(..., protocol=)` and `--protocol` accept: the SDK client's modes (auto, its modern revisions, the
handshake). Here, not read from the SDK, so that building the command line imports no SDK (every `mcpsim serve`
start paid ~0.15 s of CPU for the client side); a test keeps it equal to the SDK's own list."""

# -- sizes --------------------------------------------------------------------------------------------------------

DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
"""Largest JSON-RPC message mcpsim accepts from a client or a server (`--max-message-bytes`)."""
DEFAULT_MAX_IN_FLIGHT = 64
"""`serve --stdio` (a 2026-07-28 client on a handshake-era server): requests served at once (`--max-in-flight`)."""
MAX_IN_FLIGHT_LIMIT = 4096
"""Largest `--max-in-flight` accepted."""


def check_max_in_flight(value: int) -> int:
    """`value` if it is a usable `--max-in-flight`; else a `ConfigError` naming the allowed range."""
    if not 1 <= value <= MAX_IN_FLIGHT_LIMIT:
        raise ConfigError(f"--max-in-flight must be between 1 and {MAX_IN_FLIGHT_LIMIT}, not {value}")
    return value


KEEPALIVE_EXPIRY_S = 4.0
"""How long mcpsim's HTTP clients (the rollout client, the pool's backend client, the Ray relay) keep an idle
connection: less than the 5 s after which uvicorn (the SDK's servers, most Python ones) closes one. When the server
closes an idle connection first, a request sent on it at that moment is lost (`ReadError('')`, seen in about 2 of
1024 rollout episodes); when the client closes it first, nothing is in flight on it."""
FRONT_KEEP_ALIVE_S = 20
"""How long mcpsim's fronts keep an idle client connection (uvicorn's default: 5 s): longer than any client's
keep-alive (httpx: 5 s, `KEEPALIVE_EXPIRY_S`), so the client is the side that closes idle connections."""
MAX_VERSION_LENGTH = 64
"""Longest `protocolVersion` passed on; a longer one is no version, and the server's latest is offered."""
