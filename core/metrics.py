"""Prometheus metrics of the scoring worker, the monitor and the feed server, and the `/metrics` HTTP endpoint.

Every metric is named `finsent_*` and lives on a registry passed in (the process-wide default unless a test gives
its own), so one process that runs several stages (`finsent run`) exports them all from one endpoint. Labels are
bounded on purpose: reject reasons are reduced to a short class (digits folded, at most `MAX_REASONS` distinct
values, the rest counted as `other`), feed paths to the known ones, partitions to those the topic has.

This module records numbers; it never reads the database or the broker itself. `cli.py` hands it what the stages
report (`BatchReport`, the transport's `lag()`, the monitor's counts).
"""

from __future__ import annotations

import logging
import re
import threading
import weakref
from collections.abc import Mapping
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

MAX_REASONS = 50  # distinct reject-reason labels per process; beyond this they are counted as "other"
REASON_CHARS = 48
EVALUATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
ALERT_STATES = ("pending", "firing", "resolved")

_NUMBER = re.compile(r"\d[\d,._]*")
_UNSAFE = re.compile(r"[^A-Za-z0-9 _.\-()/]+")


def serve_metrics(port: int, host: str = "127.0.0.1", registry: CollectorRegistry = REGISTRY):
    """Serve `registry` at http://host:port/metrics in a daemon thread; returns the server (port 0: a free port)."""
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server


def reason_class(reason: str) -> str:
    """A short, low-cardinality class of a reject reason: the part before ':', numbers folded to N, truncated."""
    head = reason.split(":", 1)[0].strip()
    head = _UNSAFE.sub("?", _NUMBER.sub("N", head))
    return head[:REASON_CHARS] or "unknown"


class MonitorMetrics:
    """What the monitor exports: alerts by state, the notification outbox, rule evaluations and deliveries."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.alerts = Gauge(
            "finsent_alerts", "Alerts by state (replayed history excluded).", ["state"], registry=registry
        )
        self.pending = Gauge(
            "finsent_notifications_pending",
            "Outbox rows not yet delivered, per receiver.",
            ["receiver"],
            registry=registry,
        )
        self.failing = Gauge(
            "finsent_notifications_failed",
            "Outbox rows not yet delivered whose last attempt failed, per receiver.",
            ["receiver"],
            registry=registry,
        )
        self.evaluation_seconds = Histogram(
            "finsent_rule_evaluation_seconds",
            "Seconds per rule evaluation (buckets folded in, rules evaluated, alerts updated).",
            buckets=EVALUATION_BUCKETS,
            registry=registry,
        )
        self.transitions = Counter(
            "finsent_alert_transitions_total", "Alert state changes by event.", ["event"], registry=registry
        )
        self.sent = Counter("finsent_notifications_sent_total", "Notifications delivered.", registry=registry)
        self.delivery_failures = Counter(
            "finsent_notification_failures_total", "Failed delivery attempts.", registry=registry
        )
        self._lock = threading.Lock()

    def record_evaluation(self, report: Any, duration_s: float) -> None:
        """Count one `EvaluationReport` and how long it took."""
        self.evaluation_seconds.observe(duration_s)
        for event, _rule, _subject in getattr(report, "changes", ()):
            self.transitions.labels(event=str(event)[:32]).inc()

    def record_delivery(self, report: Any) -> None:
        """Count one `DeliveryReport`."""
        self.sent.inc(report.sent)
        self.delivery_failures.inc(report.failed)

    def set_state(
        self, alerts_by_state: Mapping[str, int], pending: Mapping[str, int], failing: Mapping[str, int]
    ) -> None:
        """Replace the gauges with a fresh look at the alerts and the outbox."""
        with self._lock:
            for state in ALERT_STATES:
                self.alerts.labels(state=state).set(alerts_by_state.get(state, 0))
            for gauge, values in ((self.pending, pending), (self.failing, failing)):
                gauge.clear()
                for receiver, n in values.items():
                    gauge.labels(receiver=receiver).set(n)


class FeedMetrics:
    """What the feed server exports: requests by path and status, and their duration."""

    def __init__(self, paths: tuple[str, ...], registry: CollectorRegistry = REGISTRY) -> None:
        self.paths = frozenset(paths)
        self.requests = Counter(
            "finsent_feed_requests_total",
            "Feed server requests by path and status.",
            ["path", "status"],
            registry=registry,
        )
        self.seconds = Histogram(
            "finsent_feed_request_seconds",
            "Seconds to answer a feed request, by path.",
            ["path"],
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )

    def record(self, path: str, status: int, duration_s: float | None) -> None:
        """Count one response; unknown paths are counted as `other` (request paths are attacker-controlled)."""
        label = path if path in self.paths else "other"
        self.requests.labels(path=label, status=str(int(status))).inc()
        if duration_s is not None:
            self.seconds.labels(path=label).observe(duration_s)


_shared: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # registry -> {kind: instance}
_shared_lock = threading.Lock()


def shared(kind: type, registry: CollectorRegistry = REGISTRY, **kwargs: Any) -> Any:
    """The one `kind` (WorkerMetrics, MonitorMetrics, FeedMetrics) of `registry`: a registry refuses a metric twice."""
    with _shared_lock:
        of_registry = _shared.setdefault(registry, {})
        if kind not in of_registry:
            of_registry[kind] = kind(registry=registry, **kwargs)
        return of_registry[kind]
