"""Operating a managed server, and viewing what it recorded.

- `endpoints.py`: `/health` and `/metrics`. `metrics.py`: `Metrics`, the Prometheus registry (the pool's observer).
- `resources.py`: RSS/CPU per instance and the orphan check. `logs.py`: JSON or text log lines with ids.
- `dashboard.py` (+ `static/dashboard.html`): the `/` page. `viewer.py` (+ `static/viewer.html`): `mcpsim view`.
"""

from typing import TYPE_CHECKING

from mcpsim.faces import lazy_names

if TYPE_CHECKING:
    from mcpsim.server.ops.dashboard import dashboard_routes
    from mcpsim.server.ops.endpoints import health, ops_routes
    from mcpsim.server.ops.logs import LEVELS, configure_logging
    from mcpsim.server.ops.metrics import Metrics
    from mcpsim.server.ops.resources import ResourceSampler
    from mcpsim.server.ops.viewer import create_viewer_app, view

__all__ = [
    "LEVELS",
    "Metrics",
    "ResourceSampler",
    "configure_logging",
    "create_viewer_app",
    "dashboard_routes",
    "health",
    "ops_routes",
    "view",
]

__getattr__ = lazy_names(
    __name__,
    {
        "dashboard_routes": "dashboard",
        "health": "endpoints",
        "ops_routes": "endpoints",
        "LEVELS": "logs",
        "configure_logging": "logs",
        "Metrics": "metrics",
        "ResourceSampler": "resources",
        "create_viewer_app": "viewer",
        "view": "viewer",
    },
)
