"""`mcpsim serve --ray ADDRESS`: instances on a Ray cluster, behind stateless fronts (docs/scaling.md).

- `config.py`: `RayConfig` (address, lease, local cluster ports). `local.py`: `LocalCluster` (`local:N`).
- `agent.py`: `NodeAgent`, one detached actor per node, owning `node.py` (that node's own mcpsim, unchanged).
- `cluster.py`: `Nodes`, a front's view: agents, room, placement, lost nodes, leases.
- `registry.py`: `Registry`, session id / handle -> node in Ray's GCS key-value store.
- `relay.py`: `Relay`, a request over HTTP to a node's mcpsim. `front.py`: `RayFront`, the routing.
- `ops.py`: `/health`, `/metrics`, `/api/instances`, `/api/overview` gathered from every node. `run.py`: `serve_ray`.

Ray is imported only when a function needs it (`import ray` costs ~1 s).
"""

from typing import TYPE_CHECKING

from mcpsim.faces import lazy_names

if TYPE_CHECKING:
    from mcpsim.ray.config import RayConfig
    from mcpsim.ray.local import LocalCluster, ray_environment
    from mcpsim.ray.run import serve_ray

__all__ = ["LocalCluster", "RayConfig", "ray_environment", "serve_ray"]

__getattr__ = lazy_names(
    __name__,
    {"RayConfig": "config", "LocalCluster": "local", "ray_environment": "local", "serve_ray": "run"},
)
