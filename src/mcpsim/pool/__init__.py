"""The instance pool: starting, listing and ending instances of a production server, within limits.

- `config.py`: `PoolConfig`, frozen and checked when made. `command.py`: `ServerCommand`, `parse_command`,
  `for_env` (what an instance runs).
- `pool.py`: `InstancePool`, the async context manager that owns every instance; `PoolObserver` (metrics).
- `instance.py`: `Instance` (process, connection, handshake, end); `spec.py`: `InstanceSpec`, `State`.
- `connection.py`: one persistent MCP connection to an instance's server, stdio or HTTP/SSE.
- `warm.py` + `seed_queue.py`: instances started ahead of their sessions, for announced seeds.
- `stats.py` + `labels.py`: what an instance has been doing, with bounded names for metric labels.

Callers import the names below from `mcpsim.pool` (imported on first use, `mcpsim.faces`, so the command line
reads `SHIPPED_ENVS` without importing the pool); the modules are the pool's own business.
"""

from typing import TYPE_CHECKING

from mcpsim.faces import lazy_names

if TYPE_CHECKING:
    from mcpsim.pool.command import SHIPPED_ENVS, TRANSPORTS, ServerCommand, Transport, for_env, parse_command
    from mcpsim.pool.config import PoolConfig
    from mcpsim.pool.instance import Instance
    from mcpsim.pool.observer import PoolObserver
    from mcpsim.pool.pool import InstancePool
    from mcpsim.pool.seed_queue import MAX_QUEUED_SEEDS, MAX_SEEDS_PER_ANNOUNCE
    from mcpsim.pool.spec import State

__all__ = [  # noqa: RUF022
    "Instance",
    "InstancePool",
    "MAX_QUEUED_SEEDS",
    "MAX_SEEDS_PER_ANNOUNCE",
    "PoolConfig",
    "PoolObserver",
    "SHIPPED_ENVS",
    "ServerCommand",
    "State",
    "TRANSPORTS",
    "Transport",
    "for_env",
    "parse_command",
]

__getattr__ = lazy_names(
    __name__,
    {
        "SHIPPED_ENVS": "command",
        "TRANSPORTS": "command",
        "ServerCommand": "command",
        "Transport": "command",
        "for_env": "command",
        "parse_command": "command",
        "PoolConfig": "config",
        "Instance": "instance",
        "State": "spec",
        "InstancePool": "pool",
        "PoolObserver": "observer",
        "MAX_QUEUED_SEEDS": "seed_queue",
        "MAX_SEEDS_PER_ANNOUNCE": "seed_queue",
    },
)
