"""Prometheus metrics of one managed server, on a registry of its own (two servers in one process never mix).

Counters and histograms are fed by the pool and the instances' multiplexers as events happen; gauges of the
pool's state (instances by state, ports) are read when `/metrics` is scraped, so they are never stale.
"""

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mcpsim.pool.instance import Instance, State

if TYPE_CHECKING:
    from mcpsim.pool.pool import InstancePool
    from mcpsim.server.sessions import SessionFront

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
SPAWN_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)


class Metrics:
    def __init__(self, pool: "InstancePool", sessions: "SessionFront") -> None:
        self.registry = CollectorRegistry()
        self.spawn_seconds = Histogram(
            "mcpsim_spawn_seconds",
            "Time from asking for an instance to its server answering initialize.",
            buckets=SPAWN_BUCKETS,
            registry=self.registry,
        )
        self.spawn_failures = Counter(
            "mcpsim_spawn_failures", "Instances that failed to start.", registry=self.registry
        )
        self.instances_ended = Counter("mcpsim_instances_ended", "Instances that have ended.", registry=self.registry)
        self.requests = Counter(
            "mcpsim_requests", "Client requests proxied to instances.", ["method"], registry=self.registry
        )
        self.request_seconds = Histogram(
            "mcpsim_request_seconds",
            "Proxied request latency, client request to server answer.",
            ["method", "tool"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.request_errors = Counter(
            "mcpsim_request_errors",
            "Proxied requests answered with an error or an isError tool result.",
            ["method", "tool"],
            registry=self.registry,
        )
        self.env_build_seconds = Histogram(
            "mcpsim_environment_build_seconds",
            "Time to build an isolated environment.",
            ["kind"],
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 900),
            registry=self.registry,
        )
        self.env_reused = Counter(
            "mcpsim_environment_cache_hits", "Environments found already built.", ["kind"], registry=self.registry
        )
        self.env_failed = Counter(
            "mcpsim_environment_build_failures", "Environment builds that failed.", ["kind"], registry=self.registry
        )
        self.registry.register(_PoolCollector(pool, sessions))
        self.mux_observer = self

    # -- MuxObserver --------------------------------------------------------------------------------------------

    def on_request(self, method: str, tool: str | None) -> None:
        self.requests.labels(method).inc()

    def on_response(self, method: str, tool: str | None, seconds: float, is_error: bool) -> None:
        self.request_seconds.labels(method, tool or "").observe(seconds)
        if is_error:
            self.request_errors.labels(method, tool or "").inc()

    # -- PoolObserver -------------------------------------------------------------------------------------------

    def instance_ready(self, instance: Instance) -> None:
        if instance.ready_at is not None:
            self.spawn_seconds.observe(instance.ready_at - instance.started_at)

    def instance_failed(self, instance: Instance) -> None:
        self.spawn_failures.inc()

    def instance_ended(self, instance: Instance) -> None:
        self.instances_ended.inc()

    def environment_built(self, kind: str, seconds: float) -> None:
        self.env_build_seconds.labels(kind).observe(seconds)

    def environment_reused(self, kind: str) -> None:
        self.env_reused.labels(kind).inc()

    def environment_failed(self, kind: str) -> None:
        self.env_failed.labels(kind).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _PoolCollector(Collector):
    def __init__(self, pool: "InstancePool", sessions: "SessionFront") -> None:
        self.pool, self.sessions = pool, sessions

    def collect(self) -> Iterator[Metric]:
        by_state = GaugeMetricFamily("mcpsim_instances", "Instances by state.", labels=["state"])
        counts = self.pool.counts()
        for state in State:
            by_state.add_metric([str(state)], counts.get(str(state), 0))
        yield by_state
        yield GaugeMetricFamily("mcpsim_sessions_open", "Open /mcp sessions.", value=len(self.sessions.sessions))
        yield CounterMetricFamily(
            "mcpsim_sessions_created", "Sessions opened since start.", value=self.sessions.created
        )
        yield CounterMetricFamily("mcpsim_sessions_ended", "Sessions ended since start.", value=self.sessions.ended)
        warm = self.pool.warm
        yield CounterMetricFamily("mcpsim_warm_hits", "Sessions that found their instance warm.", value=warm.hits)
        yield CounterMetricFamily("mcpsim_warm_misses", "Sessions that had to start their instance.", value=warm.misses)
        yield GaugeMetricFamily(
            "mcpsim_warm_unclaimed", "Warm instances waiting for a session.", value=warm.unclaimed_count
        )
        yield GaugeMetricFamily("mcpsim_warm_queued", "Announced seeds not started yet.", value=len(warm.queue))
        ports = self.pool.ports
        yield GaugeMetricFamily(
            "mcpsim_ports_leased", "Ports of the range leased to instances.", value=len(ports.leased)
        )
        yield GaugeMetricFamily("mcpsim_ports_total", "Ports in the range.", value=ports.size)
