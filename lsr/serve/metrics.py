"""Prometheus metrics (prometheus_client): requests by endpoint, method and status, latency histograms by
endpoint, errors, requests in flight, the commit served.

With several worker processes, `lsr serve` sets ``PROMETHEUS_MULTIPROC_DIR`` (a fresh folder) before they
start, and ``/metrics`` on any worker then reports the sum over all of them (prometheus_client's
multiprocess mode), so a scrape does not depend on which worker answers it.
"""
from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = CONTENT_TYPE_LATEST  # the exposition format's media type

# Seconds; a sparse query is ~1-50 ms here, a hybrid one tens of ms, an /ask answer tens of seconds.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class Metrics:
    def __init__(self):
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry(auto_describe=True)
        kw = {"registry": self.registry}
        self.requests = Counter("lsr_requests_total", "HTTP requests answered", ["endpoint", "method", "status"], **kw)
        self.errors = Counter("lsr_request_errors_total", "HTTP requests answered with a 4xx or 5xx status",
                              ["endpoint", "status"], **kw)
        self.latency = Histogram("lsr_request_duration_seconds", "Time to answer a request", ["endpoint"],
                                 buckets=BUCKETS, **kw)
        gauge = {"multiprocess_mode": "livesum"} if self.multiprocess else {}
        self.in_flight = Gauge("lsr_requests_in_flight", "Requests being answered", **kw, **gauge)
        self.generation = Gauge("lsr_index_generation", "Commit generation of the index served (0: one-folder)",
                                **kw, **({"multiprocess_mode": "max"} if self.multiprocess else {}))

    def observe(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, method, str(status)).inc()
        if status >= 400:
            self.errors.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def render(self) -> bytes:
        if not self.multiprocess:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)
        return generate_latest(merged)
