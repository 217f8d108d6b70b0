"""Operating a managed server, and viewing what it recorded.

- `health.py`: `/health` and `/metrics`. `metrics.py`: `Metrics`, the Prometheus registry (the pool's observer).
- `resources.py`: RSS/CPU per instance and the orphan check. `logs.py`: JSON or text log lines with ids.
- `dashboard.py` (+ `static/dashboard.html`): the `/` page. `viewer.py` (+ `static/viewer.html`): `mcpsim view`.
"""

from mcpsim.server.ops.dashboard import dashboard_routes
from mcpsim.server.ops.health import health, ops_routes
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
