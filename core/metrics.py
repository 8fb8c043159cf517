"""What every stage's metrics share: the Prometheus `/metrics` endpoint, one set of metrics per registry, and
bounded reject-reason labels. Each stage defines and records its own metrics (`scoring.metrics`,
`monitor.metrics`).

Every metric is named `finsent_*` and lives on a registry passed in (the process-wide default unless a test gives
its own), so one process that runs several stages (`finsent run`) exports them all from one endpoint. Labels are
bounded on purpose: reject reasons are reduced to a short class (digits folded, at most `MAX_REASONS` distinct
values per process, the rest counted as `other`).
"""

from __future__ import annotations

import re
import threading
import weakref
from typing import Any, TypeVar
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server

M = TypeVar("M")

MAX_REASONS = 50  # distinct reject-reason labels per process; beyond this they are counted as "other"
REASON_CHARS = 48

_NUMBER = re.compile(r"\d[\d,._]*")
_UNSAFE = re.compile(r"[^A-Za-z0-9 _.\-()/]+")


def serve_metrics(port: int, host: str = "127.0.0.1", registry: CollectorRegistry = REGISTRY) -> WSGIServer:
    """Serve `registry` at http://host:port/metrics in a daemon thread; returns the server (port 0: a free port)."""
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server


def reason_class(reason: str) -> str:
    """A short, low-cardinality class of a reject reason: the part before ':', numbers folded to N, truncated."""
    head = reason.split(":", 1)[0].strip()
    head = _UNSAFE.sub("?", _NUMBER.sub("N", head))
    return head[:REASON_CHARS] or "unknown"


_shared: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # registry -> {kind: instance}
_shared_lock = threading.Lock()


def shared(kind: type[M], registry: CollectorRegistry = REGISTRY, **kwargs: Any) -> M:
    """The one `kind` (WorkerMetrics, MonitorMetrics, FeedMetrics) of `registry`: a registry refuses a metric twice."""
    with _shared_lock:
        of_registry = _shared.setdefault(registry, {})
        if kind not in of_registry:
            of_registry[kind] = kind(registry=registry, **kwargs)
        return of_registry[kind]
