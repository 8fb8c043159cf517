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
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

MAX_REASONS = 50  # distinct reject-reason labels per process; beyond this they are counted as "other"
REASON_CHARS = 48
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
BATCH_SECONDS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
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


class WorkerMetrics:
    """What scoring workers export: items, rejects by stage and reason class, batch sizes and times, lag."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.received = Counter("finsent_items_received_total", "Messages taken from news.raw.", registry=registry)
        self.stored = Counter("finsent_items_stored_total", "Articles scored and stored.", registry=registry)
        self.duplicates = Counter(
            "finsent_items_duplicate_total", "Messages recognised as already stored and skipped.", registry=registry
        )
        self.rejected = Counter(
            "finsent_items_rejected_total",
            "Messages rejected (each input once, redeliveries of a known reject not counted).",
            registry=registry,
        )
        self.rejects = Counter(
            "finsent_rejects_total",
            "Rejections by stage and reason class (every rejection seen, a redelivered one included).",
            ["stage", "reason"],
            registry=registry,
        )
        self.batch_size = Histogram(
            "finsent_batch_size", "Messages per batch.", buckets=BATCH_SIZE_BUCKETS, registry=registry
        )
        self.batch_seconds = Histogram(
            "finsent_batch_seconds",
            "Seconds to process a batch: admit, score, store, dead-letter, commit offsets.",
            buckets=BATCH_SECONDS_BUCKETS,
            registry=registry,
        )
        self.latency = Histogram(
            "finsent_latency_seconds",
            "Seconds from a message's publication on news.raw to its score being stored.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.last_batch = Gauge(
            "finsent_last_batch_timestamp_seconds", "Unix time of the last processed batch.", registry=registry
        )
        self.lag = Gauge(
            "finsent_consumer_lag",
            "Messages in news.raw not yet read by this worker, per owned partition (highwater - position).",
            ["topic", "partition"],
            registry=registry,
        )
        self._reasons: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def _reason_labels(self, key: str) -> tuple[str, str]:
        stage, sep, reason = str(key).partition(":")
        if not sep:
            stage, reason = "unknown", stage
        labels = (reason_class(stage)[:32], reason_class(reason))
        with self._lock:
            if labels not in self._reasons:
                if len(self._reasons) >= MAX_REASONS:
                    return labels[0], "other"
                self._reasons.add(labels)
        return labels

    def record_batch(self, report: Any, duration_s: float | None = None) -> None:
        """Count one `BatchReport` (received, stored, duplicates, rejected, reject_reasons, latencies_ms)."""
        self.received.inc(report.received)
        self.stored.inc(report.stored)
        self.duplicates.inc(report.duplicates)
        self.rejected.inc(report.rejected)
        for key, n in dict(getattr(report, "reject_reasons", None) or {}).items():
            stage, reason = self._reason_labels(key)
            self.rejects.labels(stage=stage, reason=reason).inc(n)
        self.batch_size.observe(report.received)
        if duration_s is None:
            duration_s = getattr(report, "duration_s", None)
        if duration_s is not None:
            self.batch_seconds.observe(duration_s)
        for ms in getattr(report, "latencies_ms", None) or ():
            self.latency.observe(max(0.0, ms / 1000))
        self.last_batch.set(time.time())

    def set_lag(self, lag: Mapping[tuple[str, int], int]) -> None:
        """Replace the lag gauge with the partitions this worker owns now (revoked partitions disappear)."""
        with self._lock:
            self.lag.clear()
            for (topic, partition), n in lag.items():
                self.lag.labels(topic=topic, partition=str(partition)).set(max(0, n))


class BatchClock:
    """Wraps a worker's processor to note when each batch starts, so `on_batch` can time the whole batch.

    The scoring worker calls `processor.process(...)`, then dead-letters rejects and commits offsets, then calls
    `on_batch(report)`; `elapsed()` inside `on_batch` therefore covers all of it. Everything else is forwarded.
    """

    def __init__(self, processor: Any) -> None:
        self._processor = processor
        self._started: float | None = None

    def process(self, *args: Any, **kwargs: Any) -> Any:
        self._started = time.perf_counter()
        return self._processor.process(*args, **kwargs)

    def elapsed(self) -> float | None:
        """Seconds since the current batch started (None before the first one)."""
        return None if self._started is None else time.perf_counter() - self._started

    def __getattr__(self, name: str) -> Any:
        return getattr(self._processor, name)


def batch_hook(
    metrics: WorkerMetrics, *, clock: BatchClock | None = None, transport: Any = None
) -> Callable[[Any], None]:
    """An `on_batch` callback for `ScoringWorker`: records the report, its duration and the consumer lag.

    It runs on the worker's own thread, so asking the (not thread-safe) Kafka consumer for its lag is safe here.
    """

    def on_batch(report: Any) -> None:
        duration = getattr(report, "duration_s", None)  # the worker's own timing, where it reports one
        if duration is None and clock is not None:
            duration = clock.elapsed()
        metrics.record_batch(report, duration)
        lag = getattr(transport, "lag", None)
        if lag is not None:
            try:
                metrics.set_lag(lag())
            except Exception:  # a broker hiccup must not fail a batch that is already stored and committed
                log.debug("consumer lag not available", exc_info=True)

    return on_batch


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
