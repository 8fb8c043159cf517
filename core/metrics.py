"""What every stage's metrics share: the Prometheus `/metrics` endpoint and one set of metrics per registry.
Each stage defines and records its own metrics (`scoring.metrics`, `monitor.metrics`).

Every metric is named `finsent_*` and lives on a registry passed in (the process-wide default unless a test gives
its own), so one process that runs several stages (`finsent run`) exports them all from one endpoint.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, TypeVar
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server

M = TypeVar("M")


def serve_metrics(port: int, host: str = "127.0.0.1", registry: CollectorRegistry = REGISTRY) -> WSGIServer:
    """Serve `registry` at http://host:port/metrics in a daemon thread; returns the server (port 0: a free port)."""
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server


_shared: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # registry -> {kind: instance}
_shared_lock = threading.Lock()


def shared(kind: type[M], registry: CollectorRegistry = REGISTRY, **kwargs: Any) -> M:
    """The one `kind` (WorkerMetrics, MonitorMetrics, FeedMetrics) of `registry`: a registry refuses a metric twice."""
    with _shared_lock:
        of_registry = _shared.setdefault(registry, {})
        if kind not in of_registry:
            of_registry[kind] = kind(registry=registry, **kwargs)
        return of_registry[kind]
