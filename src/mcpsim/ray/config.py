"""`RayConfig`: where the instances of `mcpsim serve --ray ADDRESS` live, checked when made.

No Ray import here: the command line builds and checks it before the (slow, ~1 s) `import ray`.
"""

import re
from dataclasses import dataclass
from pathlib import Path

from mcpsim.errors import ConfigError

MAX_LOCAL_NODES = 8
"""`local:N`: at most this many nodes on one machine (each Ray node costs ~250 MB and a raylet)."""
LOCAL_PORTS = 300
"""`--ray-port-base B` reserves B .. B+LOCAL_PORTS-1 for a local cluster (`local.py` lays them out)."""
DEFAULT_LEASE = 10.0
"""`--ray-lease` given without SECONDS."""
NAMESPACE = "mcpsim"
"""The Ray namespace of the agents and the KV registry: several fronts of one cluster share it."""


@dataclass(frozen=True)
class RayConfig:
    """Frozen, documented per field; `__post_init__` refuses what cannot work before anything starts."""

    address: str
    """`auto` (the cluster `ray start` made on this machine, or RAY_ADDRESS), `ray://HOST:PORT` (Ray client),
    `HOST:PORT` (a GCS address), or `local[:N]` (start N nodes here, owned and ended by this front)."""
    lease: float | None = None
    """`--ray-lease SECONDS`: instances this front started end this long after the front stops renewing its lease
    (it died). None: they are left to `--idle-timeout`."""
    port_base: int = 0
    """`local:N` only: the ports of the local cluster (GCS, node managers, object managers, worker ports) are laid
    out from here (`LOCAL_PORTS` of them); 0: Ray and the kernel pick free ones."""
    temp_dir: Path | None = None
    """`local:N` only: Ray's session files (default: `RAY_TMPDIR`, else Ray's `/tmp/ray`)."""
    fast_health_checks: bool = True
    """`local:N` only: nodes are declared dead after ~1 s of missed health checks (Ray's default is 15 s)."""

    def __post_init__(self) -> None:
        if self.local_nodes is None and not self.address:
            raise ConfigError("--ray needs an address: auto, ray://HOST:PORT, HOST:PORT or local[:N]")
        if self.address.startswith("local") and self.local_nodes is None:
            raise ConfigError(f"--ray {self.address!r}: write local or local:N with N in 1..{MAX_LOCAL_NODES}")
        if self.lease is not None and not 0.5 <= self.lease <= 3600:
            raise ConfigError(f"--ray-lease {self.lease}: give seconds in 0.5..3600")
        if self.port_base and not 1024 <= self.port_base <= 65535 - LOCAL_PORTS:
            raise ConfigError(f"--ray-port-base {self.port_base}: give a port in 1024..{65535 - LOCAL_PORTS}")

    @property
    def local_nodes(self) -> int | None:
        """N of `local[:N]` (1 for plain `local`), None for any other address."""
        match = re.fullmatch(r"local(?::(\d+))?", self.address)
        if match is None:
            return None
        count = int(match.group(1) or 1)
        return count if 1 <= count <= MAX_LOCAL_NODES else None
