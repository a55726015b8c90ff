"""Prometheus metrics of a node: requests by path and status, latency, in-flight, work, store,
the /work refused or harmed by the node's protections and fault window, and how slow a node
it is (its service factor and extra wait).

With several uvicorn workers the CLI sets ``PROMETHEUS_MULTIPROC_DIR`` (a private temporary
directory) before any worker imports ``prometheus_client``; each worker then writes its figures to
memory-mapped files there and a scrape, answered by any one worker, merges all of them: one scrape
sees the whole node. Without that variable (in-process tests) a plain registry is used.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

__all__ = ["CONTENT_TYPE_LATEST", "MULTIPROC_ENV", "NodeMetrics", "route_label"]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Light paths take well under a millisecond, /work up to tens of seconds: one set covers both.
_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip

_KNOWN_PATHS = frozenset(
    {"/health", "/data", "/work", "/metrics", "/fault", "/docs", "/openapi.json"}
)


def route_label(path: str) -> str:
    """A bounded ``path`` label: the route template, never the raw path (keys would explode it)."""
    if path in _KNOWN_PATHS:
        return path
    if path.startswith("/data/"):
        return "/data/{key}"
    return "other"


class NodeMetrics:
    """The metric objects of one app, and the scrape that renders them."""

    def __init__(self, multiproc_dir: str | None = None) -> None:
        self.multiproc_dir = multiproc_dir
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "nodelab_http_requests",
            "HTTP requests answered, by route and status.",
            ["path", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "nodelab_http_request_duration_seconds",
            "Time from request arrival to the end of the answer, by route.",
            ["path"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "nodelab_http_requests_in_flight",
            "Requests being served or queued now (summed over workers; /health not counted).",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.work_service = Histogram(
            "nodelab_work_service_seconds",
            "Server-side service time of /work (inside the worker's lock, queueing excluded).",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.work_queue = Histogram(
            "nodelab_work_queue_seconds",
            "Time a /work waited for its worker's lock.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.store_keys = Gauge(
            "nodelab_store_keys",
            "Keys stored (summed over worker stores).",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.store_bytes = Gauge(
            "nodelab_store_bytes",
            "Bytes stored, keys + values (summed over worker stores).",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.shed = Counter(
            "nodelab_work_shed",
            "/work answered 503 at once because the worker's queue was full (--max-queue).",
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "nodelab_work_rate_limited",
            "/work answered 429 because the worker's token bucket was empty (--rate-limit).",
            registry=self.registry,
        )
        self.fault_affected = Counter(
            "nodelab_work_fault_affected",
            "/work slowed or failed by the fault window (POST /fault), by mode.",
            ["mode"],
            registry=self.registry,
        )
        for mode in ("slow", "fail"):  # both series from the start, 0 until a window bites
            self.fault_affected.labels(mode)
        self.fib_calls = Counter(
            "nodelab_work_fib_calls",
            "CPU work done by /work, in calls of the recursive fib (the same on any machine).",
            registry=self.registry,
        )
        # Every worker sets the same figure: a scrape shows the node's whichever one answers.
        self.service_factor = Gauge(
            "nodelab_node_service_factor",
            "How many times as long each /work's CPU and I/O take on this node (--service-factor).",
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.extra_millis = Gauge(
            "nodelab_node_extra_millis",
            "Fixed extra wait of each /work on this node, ms (--extra-millis).",
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        # labels() takes a lock and builds a tuple per call; the hot path looks children up here.
        self._request_children: dict[tuple[str, int], Counter] = {}
        self._latency_children: dict[str, Histogram] = {}

    def observe(self, path_label: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency."""
        key = (path_label, status)
        counter = self._request_children.get(key)
        if counter is None:
            counter = self._request_children[key] = self.requests.labels(path_label, str(status))
        counter.inc()
        histogram = self._latency_children.get(path_label)
        if histogram is None:
            histogram = self._latency_children[path_label] = self.latency.labels(path_label)
        histogram.observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition of this node (all workers in multiprocess mode)."""
        if self.multiproc_dir is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        # prometheus_client's multiprocess module has no annotations.
        multiprocess.MultiProcessCollector(registry, path=self.multiproc_dir)  # type: ignore[no-untyped-call]
        return generate_latest(registry)

    def worker_stopped(self) -> None:
        """Drop this worker's live gauges, so in-flight and store figures of the node stay true."""
        if self.multiproc_dir is not None:
            multiprocess.mark_process_dead(os.getpid(), self.multiproc_dir)  # type: ignore[no-untyped-call]
