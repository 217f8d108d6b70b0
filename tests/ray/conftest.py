"""One local Ray cluster (head + 2 workers) for every test of tests/ray, and the fronts the tests share.

Everything Ray writes goes under a temporary directory of its own (`RAY_TMPDIR`, token in the environment),
its ports are fixed at offsets 1800-1899 of MCPSIM_TEST_PORT_BASE (`mcpsim.ray.local` lays them out), and at
the end a scan fails the session if any process of ours survives: Ray's daemons and workers (they carry the
directory in their command line or environment), the agents' mcpsim, and every instance the tests saw.
"""

import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from helpers.serve import ServeProcess, ports, start_serve, survivors

pytest.importorskip("ray")

import contextlib

from mcpsim.ray import LocalCluster, ray_environment
from mcpsim.ray.local import node_args

PORT_BASE = ports(1800, 100)[0]
SERVED = ("--fork-server", "--max-instances", "3", "--idle-timeout", "60")
"""The options of every front (fronts sharing agents must agree): 3 instances per node, 9 in the cluster."""


class RayTestCluster:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.local = LocalCluster(3, PORT_BASE, root)
        self.seen_pids: dict[int, float] = {}
        self.fronts: list[ServeProcess] = []

    def front(self, tmp: Path, *extra: str, address: str = "", env: dict[str, str] | None = None) -> ServeProcess:
        serve = start_serve(tmp, "--ray", address or self.local.address, *SERVED, *extra, env=env, ready_timeout=120)
        self.fronts.append(serve)
        return serve

    def replace_node(self, index: int) -> None:
        """A fresh worker node in place of a removed one (its own ports: layout index 3)."""
        self.local.nodes[index] = self.local.cluster.add_node(**node_args(3, PORT_BASE))

    def note(self, pid: int | None) -> None:
        """Remember a process the teardown scan must find gone."""
        if pid:
            with contextlib.suppress(psutil.NoSuchProcess):
                self.seen_pids[pid] = psutil.Process(pid).create_time()

    def ours(self) -> list[psutil.Process]:
        """Processes of this cluster: Ray's daemons and workers, and anything started under them."""
        marker = str(self.root)
        found = []
        for process in psutil.process_iter(["pid", "cmdline"]):
            if process.pid == os.getpid():
                continue
            try:
                if marker in " ".join(process.info["cmdline"] or []) or process.environ().get("RAY_TMPDIR") == marker:
                    found.append(process)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        return found


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayTestCluster]:
    import ray

    root = Path(tempfile.mkdtemp(prefix="mcpsim-ray-"))  # short: Ray's socket paths live under it
    with ray_environment(root):
        cluster = RayTestCluster(root)
        try:
            cluster.local.start()
            ray.init(address=cluster.local.address, namespace="mcpsim", log_to_driver=False)
            yield cluster
        finally:
            try:  # the cluster stops below whatever happens here
                for front in cluster.fronts:
                    if front.process.poll() is None:
                        front.stop(signal.SIGTERM)
                if ray.is_initialized():
                    for actor in _agents():
                        with contextlib.suppress(Exception):
                            ray.get(actor.stop.remote(), timeout=30)
                        ray.kill(actor)
            finally:
                ray.shutdown()
                cluster.local.stop()
            left = _still_running(cluster, deadline_s=10)
            left += survivors(cluster.seen_pids, deadline_s=10)
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            shutil.rmtree(root, ignore_errors=True)
            assert not left, f"processes of the Ray cluster survived its end: {sorted(set(left))}"


def _still_running(cluster: RayTestCluster, deadline_s: float) -> list[int]:
    end = time.monotonic() + deadline_s
    while True:
        left = []
        for process in cluster.ours():
            try:
                if process.status() != psutil.STATUS_ZOMBIE:
                    left.append(process.pid)
            except psutil.NoSuchProcess:
                pass
        if not left or time.monotonic() > end:
            return left
        time.sleep(0.2)


def _agents() -> list:
    import ray

    found = []
    for info in ray.util.list_named_actors(all_namespaces=True):
        if info["namespace"] == "mcpsim" and info["name"].startswith("mcpsim-agent-"):
            with contextlib.suppress(ValueError):
                found.append(ray.get_actor(info["name"], namespace="mcpsim"))
    return found


@pytest.fixture(scope="session")
def front(ray_cluster: RayTestCluster, tmp_path_factory: pytest.TempPathFactory) -> ServeProcess:
    """The front most tests use (no lease)."""
    return ray_cluster.front(tmp_path_factory.mktemp("front"))
