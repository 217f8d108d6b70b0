"""`--ray local[:N]`: a Ray cluster of N nodes on this machine, started and ended by the one who asks for it.

`ray.cluster_utils.Cluster` runs each node's raylet and object store as children of this process; the head also
runs the GCS. Everything Ray writes goes under `temp_dir` (its session directories and the address file), its
token lives in the environment (`RAY_AUTH_TOKEN`, never `~/.ray/auth_token`), every node binds 127.0.0.1, and
the dashboard is off. With a port base, every port is explicit (the layout below) so nothing lands in someone
else's range, in particular not Ray's default worker ports 10002-19999 over mcpsim's `--port-range 10000-11000`.
Fast health checks make a killed node dead for Ray within ~1 s instead of 15 s.
"""

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mcpsim.errors import ClusterUnreachable

HEAD_GCS_OFFSET = 0
NODE_PORTS_OFFSET = 10
"""Node i's own ports are base+10+10i .. base+15+10i: node manager, object manager, metrics export, metrics
agent, dashboard agent, runtime env agent."""
WORKER_PORTS_OFFSET = 100
WORKER_PORTS_PER_NODE = 25
"""Node i's workers bind base+100+25i .. base+124+25i (an agent is one worker; Ray itself needs a few)."""
FAST_HEALTH_CHECKS = {
    "health_check_initial_delay_ms": 500,
    "health_check_period_ms": 300,
    "health_check_timeout_ms": 300,
    "health_check_failure_threshold": 3,
}
"""A node missing three 300 ms checks is dead (~1 s); Ray's default takes 15 s."""
NODE_MEMORY = 80 * 1024 * 1024
"""Each node's object store (mcpsim moves no objects through it; Ray's minimum is ~75 MB)."""


def node_args(index: int, base: int) -> dict[str, Any]:
    """RayParams of node `index` (0 is the head) for a cluster laid out from port `base` (0: free ports)."""
    args: dict[str, Any] = {
        "num_cpus": 1,
        "object_store_memory": NODE_MEMORY,
        "node_ip_address": "127.0.0.1",
        "include_dashboard": False,
        "resources": {f"mcpsim_node_{index}": 1},
    }
    if base:
        own = base + NODE_PORTS_OFFSET + 10 * index
        workers = base + WORKER_PORTS_OFFSET + WORKER_PORTS_PER_NODE * index
        args.update(
            node_manager_port=own,
            object_manager_port=own + 1,
            metrics_export_port=own + 2,
            metrics_agent_port=own + 3,
            dashboard_agent_listen_port=own + 4,
            runtime_env_agent_port=own + 5,
            min_worker_port=workers,
            max_worker_port=workers + WORKER_PORTS_PER_NODE - 1,
        )
    if index == 0 and base:
        args["gcs_server_port"] = base + HEAD_GCS_OFFSET
        args["dashboard_port"] = base + HEAD_GCS_OFFSET + 1  # its head process runs even with the UI off
    return args


@contextlib.contextmanager
def ray_environment(temp_dir: Path | None) -> Iterator[dict[str, str]]:
    """This process's environment for a local cluster (children inherit it): token auth with a fresh token,
    `RAY_TMPDIR`, no usage reporting; restored afterwards. Yields the variables a driver in another process
    needs to join the cluster."""
    variables = {
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # Ray then keeps 127.0.0.1 (not the LAN address) for nodes
    }
    if temp_dir is not None:
        variables["RAY_TMPDIR"] = str(temp_dir)
    saved = {name: os.environ.get(name) for name in [*variables, "RAY_AUTH_TOKEN_PATH"]}
    os.environ.pop("RAY_AUTH_TOKEN_PATH", None)
    os.environ.update(variables)
    _refresh_ray_config()
    try:
        yield variables
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        _refresh_ray_config()


def _refresh_ray_config() -> None:
    """Ray reads these variables once, on import; when it is already imported, have it read them again
    (`RAY_AUTH_MODE` as Ray itself does after enabling tokens, the cluster switch where Ray looks it up)."""
    import sys

    if "ray._raylet" in sys.modules:
        from ray._private import ray_constants
        from ray._raylet import Config

        Config.initialize("")
        ray_constants.ENABLE_RAY_CLUSTER = os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "1") != "0"


class LocalCluster:
    """N nodes here (`start`, `stop`; a context manager). `remove(i)` kills worker node i hard (tests, bench)."""

    def __init__(self, nodes: int, port_base: int = 0, temp_dir: Path | None = None, fast: bool = True) -> None:
        self.count = nodes
        self.port_base = port_base
        self.temp_dir = temp_dir
        self.fast = fast
        self.cluster: Any = None
        self.nodes: list[Any] = []

    @property
    def address(self) -> str:
        return str(self.cluster.address)

    def start(self) -> "LocalCluster":
        from ray.cluster_utils import Cluster

        head = node_args(0, self.port_base)
        if self.temp_dir is not None:  # RAY_TMPDIR=D: Ray's root is D/ray (the address file goes there)
            (self.temp_dir / "ray").mkdir(parents=True, exist_ok=True)
            head["temp_dir"] = str(self.temp_dir / "ray")
        if self.fast:
            head["_system_config"] = dict(FAST_HEALTH_CHECKS)
        self.cluster = Cluster(shutdown_at_exit=False)  # set before any node starts, so `stop` reaches them all
        try:
            self.nodes = [self.cluster.add_node(**head)]
            for index in range(1, self.count):
                self.nodes.append(self.cluster.add_node(**node_args(index, self.port_base)))
        except Exception as exc:  # Ray raises plain exceptions (a port taken, a binary that fails)
            self.stop()
            raise ClusterUnreachable(f"--ray local:{self.count}: the local Ray cluster did not start: {exc}") from exc
        return self

    def node_id(self, index: int) -> str:
        return str(self.nodes[index].node_id)

    def remove(self, index: int, graceful: bool = False) -> None:
        """Kill worker node `index` (not the head) as a machine loss would: its raylet and store at once."""
        node = self.nodes[index]
        self.cluster.remove_node(node, allow_graceful=graceful)

    def stop(self) -> None:
        """Every node's processes ended, the head last; the workers Ray started die with their raylets."""
        if self.cluster is None:
            return
        cluster, self.cluster = self.cluster, None
        with contextlib.suppress(Exception):
            cluster.shutdown()
        if self.temp_dir is not None:
            _kill_leftovers(self.temp_dir)


def _kill_leftovers(temp_dir: Path) -> None:
    """SIGKILL what Ray left of this cluster: a node whose start timed out is not in the `Cluster`'s books, so
    `shutdown` does not reach its daemons. Only this process's descendants that name the cluster's directory."""
    import psutil

    marker = str(temp_dir / "ray")
    for process in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if marker in " ".join(process.cmdline()):
                process.kill()
