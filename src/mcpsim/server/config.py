"""`ServeConfig`: what `mcpsim serve` (or a program embedding the managed server) is told, checked when made."""

from dataclasses import dataclass

from mcpsim.errors import ConfigError
from mcpsim.pool import PoolConfig
from mcpsim.server.auth import required_token
from mcpsim.server.principals import Credentials


@dataclass(frozen=True)
class ServeConfig:
    """Frozen; refuses (`AuthConfigError`) to serve beyond loopback without a token, before anything starts."""

    pool: PoolConfig
    """What instances run and the pool's limits."""
    host: str = "127.0.0.1"
    """Address to bind (`--host`); anything but loopback needs a token."""
    port: int = 9000
    """Port to bind (`--port`); 0 picks a free one (`running` yields the URL)."""
    json_response: bool = False
    """Answer `/mcp` and `/envs/{id}/mcp` requests with JSON bodies instead of SSE streams (`--json-response`)."""
    fast_io: bool = False
    """uvloop and httptools for the front when installed (`--fast-io`, extra `fast`; `fastio.py`)."""
    auth_token: str | None = None
    """One token every client must carry (but on `/health`); its holder is the admin."""
    credentials: Credentials | None = None
    """Several principals' tokens (`--auth-token-file`); when set, `auth_token` is not used. After
    construction, the tokens requests must carry: `auth_token` folded in, None when none is needed."""

    orphan_timeout: float = 60.0
    """Seconds after which an instance started by a handle-less 2026-07-28 request, whose handle was never used
    again, ends (`--orphan-timeout`)."""

    def __post_init__(self) -> None:
        if not self.orphan_timeout > 0:
            raise ConfigError("--orphan-timeout must be positive")
        object.__setattr__(self, "credentials", required_token(self.host, self.credentials or self.auth_token))
