"""Prometheus metrics of one managed server, on a registry of its own (two servers in one process never mix).

Counters and histograms are fed by the pool and the instances' multiplexers as events happen; gauges of the
pool's state (instances by state, ports, sessions, messages, RSS/CPU, orphans) are read when `/metrics` is
scraped, so they are never stale. Other parts of the server add their own metrics to `Metrics.registry`
(environment builds, a warm pool): a metric is registered by the code that feeds it, never as a placeholder.

Methods and tool names arrive here as bounded labels (each instance's `InstanceStats` maps them, see
`pool/labels.py`): a spec method or `other`, a tool some backend declared or `other`. Nothing a client sends
can add a series.

Besides Prometheus, the last few hundred spawn and call latencies are kept with their times for the
dashboard's charts (a deque append per call; the page draws them).
"""

import time
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING

from mcp.types import JSONRPCError, JSONRPCResponse, RequestId
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mcpsim.pool import Instance, State
from mcpsim.protocol.messages import MESSAGE_KINDS

if TYPE_CHECKING:
    from mcpsim.pool import InstancePool
    from mcpsim.server.fronts.sessions import SessionFront
    from mcpsim.server.ops.resources import ResourceSampler

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
SPAWN_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)
RECENT = 300


class Metrics:
    """The registry, the event-fed metrics, and the pool's `PoolObserver` and every instance's `MuxObserver`."""

    def __init__(self) -> None:
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
            "Proxied request latency, client request to server answer (tool calls labelled by declared tool).",
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
        self.retired_messages = dict.fromkeys(MESSAGE_KINDS, 0)
        """Messages of instances that have ended (live instances' counts are read from their multiplexers)."""
        self.recent_spawns: deque[tuple[float, float]] = deque(maxlen=RECENT)
        self.recent_calls: deque[tuple[float, float, str, bool]] = deque(maxlen=RECENT)
        self.mux_observer = self

    def collect_from(self, pool: "InstancePool", sessions: "SessionFront", resources: "ResourceSampler") -> None:
        """Read the pool's, the sessions' and the processes' state at every scrape. A method, not a constructor
        argument, because the pool is built with these metrics as its observer: one of the two is late."""
        self.registry.register(_PoolCollector(pool, sessions, self))
        self.registry.register(_ResourceCollector(pool, resources))

    # -- MuxObserver --------------------------------------------------------------------------------------------

    def on_request(self, method: str, tool: str | None) -> None:
        self.requests.labels(method).inc()

    def on_response(
        self,
        method: str,
        tool: str | None,
        seconds: float,
        is_error: bool,
        *,
        request_id: RequestId | None = None,
        reply: JSONRPCResponse | JSONRPCError | None = None,
    ) -> None:
        self.request_seconds.labels(method, tool or "").observe(seconds)
        if is_error:
            self.request_errors.labels(method, tool or "").inc()
        if method == "tools/call":
            self.recent_calls.append((time.time(), seconds, tool or "", is_error))

    # -- PoolObserver -------------------------------------------------------------------------------------------

    def instance_ready(self, instance: Instance) -> None:
        if instance.ready_at is not None:
            seconds = instance.ready_at - instance.started_at
            self.spawn_seconds.observe(seconds)
            self.recent_spawns.append((instance.ready_at, seconds))

    def instance_failed(self, instance: Instance) -> None:
        self.spawn_failures.inc()

    def instance_ended(self, instance: Instance) -> None:
        self.instances_ended.inc()
        if instance.mux is not None:
            for kind, count in instance.mux.message_counts.items():
                self.retired_messages[kind] += count

    def environment_built(self, kind: str, seconds: float) -> None:
        self.env_build_seconds.labels(kind).observe(seconds)

    def environment_reused(self, kind: str) -> None:
        self.env_reused.labels(kind).inc()

    def environment_failed(self, kind: str) -> None:
        self.env_failed.labels(kind).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _PoolCollector(Collector):
    def __init__(self, pool: "InstancePool", sessions: "SessionFront", metrics: Metrics) -> None:
        self.pool, self.sessions, self.metrics = pool, sessions, metrics

    def collect(self) -> Iterator[Metric]:
        by_state = GaugeMetricFamily("mcpsim_instances", "Instances by state.", labels=["state"])
        counts = self.pool.counts()
        for state in State:
            by_state.add_metric([str(state)], counts.get(str(state), 0))
        yield by_state
        yield GaugeMetricFamily("mcpsim_instances_live", "Instances whose process may run.", value=self.pool.live_count)
        yield GaugeMetricFamily("mcpsim_instances_limit", "--max-instances.", value=self.pool.config.max_instances)
        yield GaugeMetricFamily("mcpsim_sessions_open", "Open /mcp sessions.", value=len(self.sessions.sessions))
        yield CounterMetricFamily(
            "mcpsim_sessions_created", "Sessions opened since start.", value=self.sessions.created
        )
        yield CounterMetricFamily("mcpsim_sessions_ended", "Sessions ended since start.", value=self.sessions.ended)
        yield CounterMetricFamily(
            "mcpsim_session_requests_fast",
            "Requests on handshake-era /mcp sessions carried by the envelope-only path (not the SDK transport).",
            value=self.sessions.fast_requests,
        )
        warm = self.pool.warm
        yield CounterMetricFamily("mcpsim_warm_hits", "Sessions that found their instance warm.", value=warm.hits)
        yield CounterMetricFamily("mcpsim_warm_misses", "Sessions that had to start their instance.", value=warm.misses)
        yield GaugeMetricFamily(
            "mcpsim_warm_unclaimed", "Warm instances waiting for a session.", value=warm.unclaimed_count
        )
        yield GaugeMetricFamily("mcpsim_warm_queued", "Announced seeds not started yet.", value=len(warm.queue))
        modern = self.sessions.modern
        if modern is not None:  # 2026-07-28 on handshake backends: input_required rounds and listen streams
            yield CounterMetricFamily(
                "mcpsim_input_rounds", "input_required rounds made of server requests.", value=modern.rounds.rounds
            )
            yield GaugeMetricFamily(
                "mcpsim_input_held", "Calls held for a client's inputResponses.", value=len(modern.rounds.held)
            )
            listens = sum(len(hub.listeners) for hub in modern.listens.hubs.values())
            yield GaugeMetricFamily("mcpsim_listens_open", "Translated subscriptions/listen streams.", value=listens)
            yield CounterMetricFamily(
                "mcpsim_listing_refreshes",
                "Listing-cache entries dropped because a server announced a list change.",
                value=modern.listings.refreshes,
            )
        messages = CounterMetricFamily(
            "mcpsim_messages",
            "JSON-RPC messages proxied, by sender (client or server) and kind.",
            labels=["sender", "kind"],
        )
        totals = dict(self.metrics.retired_messages)
        for instance in list(self.pool.instances.values()):
            if instance.mux is not None:
                for kind, count in instance.mux.message_counts.items():
                    totals[kind] += count
        for kind, count in totals.items():
            messages.add_metric(kind.split("."), count)
        yield messages
        ports = self.pool.ports
        yield GaugeMetricFamily(
            "mcpsim_ports_leased", "Ports of the range leased to instances.", value=len(ports.leased)
        )
        yield GaugeMetricFamily("mcpsim_ports_total", "Ports in the range.", value=ports.size)
        internal = CounterMetricFamily(
            "mcpsim_internal_errors",
            "Unexpected errors (bugs, logged with a traceback) that ended one session or failed one request.",
            labels=["where"],
        )
        for where, count in self.pool.internal_errors.items():
            internal.add_metric([where], count)
        yield internal


class _ResourceCollector(Collector):
    """What the last resource pass saw (the `/metrics` endpoint refreshes it first when it is older than 1 s)."""

    def __init__(self, pool: "InstancePool", resources: "ResourceSampler") -> None:
        self.pool, self.resources = pool, resources

    def collect(self) -> Iterator[Metric]:
        live = [self.resources.usage(instance.id) for instance in list(self.pool.instances.values())]
        yield GaugeMetricFamily(
            "mcpsim_instances_rss_bytes",
            "Resident memory of all instance processes (each instance's whole process tree).",
            value=sum(usage.rss_bytes for usage in live),
        )
        yield GaugeMetricFamily(
            "mcpsim_instances_cpu_percent",
            "CPU use of all instance processes since the previous sample (100 = one core).",
            value=sum(usage.cpu_percent for usage in live),
        )
        yield GaugeMetricFamily(
            "mcpsim_instance_processes",
            "Processes in the instances' process trees.",
            value=sum(usage.processes for usage in live),
        )
        yield CounterMetricFamily(
            "mcpsim_orphan_checks", "Passes over the process tree looking for orphans.", value=self.resources.checks
        )
        yield GaugeMetricFamily(
            "mcpsim_orphan_processes",
            "Processes under this server owned by no live instance, at the last check.",
            value=len(self.resources.orphans),
        )
        yield GaugeMetricFamily(
            "mcpsim_resource_pass_seconds",
            "Duration of the last resource/orphan pass.",
            value=self.resources.last_pass_seconds,
        )
