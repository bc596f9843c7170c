"""Prometheus metrics: one registry per process, HTTP request metrics for every app."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

if TYPE_CHECKING:
    from flask import Flask, Response

_LAT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


def _get_or_create(kind: type, name: str, doc: str, labels: tuple[str, ...], **kw: object):
    """Metrics are process-global; several app instances (tests) must share them."""
    existing = REGISTRY._names_to_collectors.get(name)  # type: ignore[attr-defined]
    if existing is not None:
        return existing
    return kind(name, doc, labels, **kw)


def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
    return _get_or_create(Counter, name, doc, labels)


def histogram(name: str, doc: str, labels: tuple[str, ...] = (),
              buckets: tuple[float, ...] = _LAT_BUCKETS) -> Histogram:
    return _get_or_create(Histogram, name, doc, labels, buckets=buckets)


# A label takes values from this set only: a client inventing methods (`curl -X M1`, `-X M2`, ...)
# added a series per name to every scrape, without limit and without a key.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def init_app(app: Flask, service: str) -> None:
    """Time every request and serve ``GET /metrics``."""
    from flask import Response, g, request

    requests = counter("finpulse_http_requests", "HTTP requests",
                       ("service", "endpoint", "method", "status"))
    latency = histogram("finpulse_http_request_seconds", "HTTP request latency",
                        ("service", "endpoint"))

    @app.before_request
    def _start_timer() -> None:
        g._fp_started = time.perf_counter()

    @app.after_request
    def _record(response: Response) -> Response:
        started = g.pop("_fp_started", None)
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        if started is not None:
            latency.labels(service, endpoint).observe(time.perf_counter() - started)
        method = request.method if request.method in HTTP_METHODS else "other"
        requests.labels(service, endpoint, method, str(response.status_code)).inc()
        return response

    @app.get("/metrics")
    def metrics() -> Response:
        """Prometheus text exposition of this process's metrics."""
        # content_type, not mimetype: Flask appends a charset to a mimetype, and this one has it
        return Response(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)


def render(registry: CollectorRegistry = REGISTRY) -> bytes:
    return generate_latest(registry)
