"""Prometheus metrics of the monitor (alerts, outbox, evaluations, deliveries) and of its feed server.

Like every finsent metric they are named `finsent_*` and live on a registry passed in (core.metrics.shared gives
one instance per registry). Feed paths are bounded to the known ones: request paths are attacker-controlled. This
module records numbers from the reports the jobs return; it never reads the database itself.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from monitor.alerts import STATES, EvaluationReport
from monitor.notify import DeliveryReport

EVALUATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


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

    def record_evaluation(self, report: EvaluationReport, duration_s: float) -> None:
        """Count one evaluation's alert state changes and how long it took."""
        self.evaluation_seconds.observe(duration_s)
        for event, _rule, _subject in report.changes:
            self.transitions.labels(event=str(event)[:32]).inc()

    def record_delivery(self, report: DeliveryReport) -> None:
        """Count one delivery run's sent and failed notifications."""
        self.sent.inc(report.sent)
        self.delivery_failures.inc(report.failed)

    def set_state(
        self, alerts_by_state: Mapping[str, int], pending: Mapping[str, int], failing: Mapping[str, int]
    ) -> None:
        """Replace the gauges with a fresh look at the alerts and the outbox."""
        with self._lock:
            for state in STATES:
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
