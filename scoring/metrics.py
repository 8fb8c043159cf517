"""Prometheus metrics of the scoring workers: items, rejects by stage and reason class, batch sizes and times, lag.

Recorded from the worker's `on_batch` hook (see `batch_hook`); the endpoint and the shared helpers are in
`core.metrics`.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from core.transport import Transport
from scoring.processor import BatchReport

log = logging.getLogger(__name__)

BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
BATCH_SECONDS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
# Reject reasons are reduced to a short class (digits folded, at most MAX_REASONS distinct labels per process, the
# rest counted as `other`): a hostile producer can invent reasons without end, a label set must stay bounded.
MAX_REASONS = 50  # distinct reject-reason labels per process; beyond this they are counted as "other"
REASON_CHARS = 48

_NUMBER = re.compile(r"\d[\d,._]*")
_UNSAFE = re.compile(r"[^A-Za-z0-9 _.\-()/]+")


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

    def record_batch(self, report: BatchReport, duration_s: float) -> None:
        """Count one batch and how long the worker spent on it."""
        self.received.inc(report.received)
        self.stored.inc(report.stored)
        self.duplicates.inc(report.duplicates)
        self.rejected.inc(report.rejected)
        for key, n in report.reject_reasons.items():
            stage, reason = self._reason_labels(key)
            self.rejects.labels(stage=stage, reason=reason).inc(n)
        self.batch_size.observe(report.received)
        self.batch_seconds.observe(duration_s)
        for ms in report.latencies_ms:
            self.latency.observe(max(0.0, ms / 1000))
        self.last_batch.set(time.time())

    def set_lag(self, lag: Mapping[tuple[str, int], int]) -> None:
        """Replace the lag gauge with the partitions this worker owns now (revoked partitions disappear)."""
        with self._lock:
            self.lag.clear()
            for (topic, partition), n in lag.items():
                self.lag.labels(topic=topic, partition=str(partition)).set(max(0, n))


def batch_hook(metrics: WorkerMetrics, *, transport: Transport | None = None) -> Callable[[BatchReport, float], None]:
    """An `on_batch` callback for `ScoringWorker`: records the report, the batch's duration and the consumer lag.

    It runs on the worker's own thread, so asking the (not thread-safe) Kafka consumer for its lag is safe here.
    """

    def on_batch(report: BatchReport, duration_s: float) -> None:
        metrics.record_batch(report, duration_s)
        if transport is not None:
            try:
                metrics.set_lag(transport.lag())
            except Exception:  # a broker hiccup must not fail a batch that is already stored and committed
                log.debug("consumer lag not available", exc_info=True)

    return on_batch
