"""The scoring worker (`finsent score`): consume news.raw in dynamic batches, process each batch, dead-letter its
rejects, then commit offsets.

Delivery is at least once and storage is exactly once: offsets are committed only after the transaction that
stored a batch committed, and a message delivered again (after a crash between the two commits, or a
rebalance) is recognised by the admission as already stored and skipped. A lost database or broker makes the
worker retry with backoff and then stop loudly, without committing offsets for work it did not store.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from core.messages import Envelope
from core.rejects import dlq_value
from core.transport import CommitFailedError, Record, Transport, TransportError
from scoring.processor import TRANSIENT, BatchProcessor, BatchReport

log = logging.getLogger(__name__)


@dataclass(slots=True)
class WorkerStats:
    """Running totals of a worker (what `finsent score` and `finsent run` print)."""

    batches: int = 0
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: int = 0
    batch_sizes: Counter = field(default_factory=Counter)
    seconds: Counter = field(default_factory=Counter)  # time spent by stage, summed over batches

    def add(self, report: BatchReport) -> None:
        self.batches += 1
        self.received += report.received
        self.stored += report.stored
        self.duplicates += report.duplicates
        self.rejected += report.rejected
        self.batch_sizes[report.received] += 1
        self.seconds.update(report.seconds)


def _short(exc: BaseException) -> str:
    """One line for a log: the driver's own message for a database error, not the SQL statement and its rows."""
    cause = getattr(exc, "orig", None) or exc
    text = " ".join(str(cause).split())
    return f"{type(cause).__name__}: {text[:300]}"


def envelope_of(record: Record) -> Envelope:
    """The pipeline's view of a consumed record."""
    return Envelope(
        value=record.value,
        origin=f"{record.topic}:{record.partition}:{record.offset}",
        key=record.key,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        published_ms=record.timestamp_ms,
    )


class ScoringWorker:
    """Consumes `news.raw` with dynamic batching, Triton-style.

    A batch is whatever is waiting, up to `max_batch` records. If less than a full batch is waiting, the worker
    waits for more until the oldest record has been queued for `max_delay_s` (its publish timestamp tells how long
    it has already waited), then goes with what it has. Light traffic: batches of one or a few, latency about
    `max_delay_s` plus one forward pass. Heavy traffic or a backlog: the oldest record has waited long enough
    already, so full batches go at once and the per-batch costs (queries, commit, offset commit) are shared by
    many items.
    """

    def __init__(
        self,
        *,
        transport: Transport,
        processor: BatchProcessor,
        topic: str = "news.raw",
        dlq_topic: str = "news.dlq",
        group: str = "finsent-model",
        max_batch: int = 256,
        max_delay_s: float = 0.02,
        poll_timeout_s: float = 0.5,
        max_failures: int = 5,
        backoff_s: float = 1.0,
        on_batch: Callable[[BatchReport, float], None] | None = None,
    ) -> None:
        self.transport = transport
        self.processor = processor
        self.topic = topic
        self.dlq_topic = dlq_topic
        self.group = group
        self.max_batch = max_batch
        self.max_delay_s = max_delay_s
        self.poll_timeout_s = poll_timeout_s
        self.max_failures = max_failures
        self.backoff_s = backoff_s
        self.on_batch = on_batch
        self.stats = WorkerStats()
        self._subscribed = False
        # For readiness (/readyz): when the loop last came round, and the failure it is retrying, if any.
        self.last_step_at: float | None = None
        self.failing: str | None = None

    def _fill(self) -> list[Record]:
        records = self.transport.poll(self.max_batch, self.poll_timeout_s)
        if not records or len(records) >= self.max_batch:
            return records
        stamps = [r.timestamp_ms for r in records if r.timestamp_ms is not None]
        waited = max(0.0, time.time() - min(stamps) / 1000) if stamps else 0.0
        deadline = time.monotonic() + max(0.0, self.max_delay_s - waited)
        while len(records) < self.max_batch and (left := deadline - time.monotonic()) > 0:
            more = self.transport.poll(self.max_batch - len(records), left)
            if not more:
                break
            records += more
        return records

    def step(self) -> BatchReport | None:
        """Poll one batch, store it, send its rejects to the DLQ, then commit offsets; None when nothing came."""
        if not self._subscribed:
            self.transport.subscribe([self.topic], self.group)
            self._subscribed = True
        records = self._fill()
        if not records:
            return None
        started = time.perf_counter()
        report = self.processor.process([envelope_of(r) for r in records])
        for r in report.rejections:
            self.transport.publish(self.dlq_topic, r.key, dlq_value(r))
        if report.rejections:
            self.transport.flush(timeout_s=30)
        try:
            self.transport.commit()
        except CommitFailedError as exc:
            # The rows are stored; the records will come again to whoever owns the partitions now and be
            # recognised as duplicates there.
            log.warning("offset commit failed after storing %d items: %s", report.stored, exc)
        self.stats.add(report)
        if report.rejected or report.duplicates:
            reasons = dict(report.reject_reasons)
            # The counts are fields too, so a JSON log can be queried by them without parsing the message.
            log.info(
                "batch of %d: stored %d, duplicates %d, rejected %d%s",
                report.received,
                report.stored,
                report.duplicates,
                report.rejected,
                f" {reasons}" if reasons else "",
                extra={
                    "received": report.received,
                    "stored": report.stored,
                    "duplicates": report.duplicates,
                    "rejected": report.rejected,
                    "reject_reasons": reasons,
                },  # fmt: skip
            )
        if self.on_batch:  # the whole batch: processing, dead-lettering and the offset commit
            self.on_batch(report, time.perf_counter() - started)
        return report

    def run(self, stop: threading.Event | None = None, idle_exit_s: float | None = None) -> WorkerStats:
        """Process until `stop` is set (or nothing arrived for `idle_exit_s`); retries transient failures."""
        stop = stop or threading.Event()
        failures, idle_since = 0, time.monotonic()
        try:
            while not stop.is_set():
                try:
                    report = self.step()
                    failures, self.failing = 0, None
                    self.last_step_at = time.monotonic()
                except (*TRANSIENT, TransportError) as exc:  # TRANSIENT: what process() lets through as retryable
                    failures += 1
                    self.stats.errors += 1
                    self.failing = f"retrying after {failures} failed batch(es): {_short(exc)}"
                    if failures > self.max_failures:
                        log.error("giving up after %d failures in a row: %s", failures, exc)
                        raise
                    wait = min(30.0, self.backoff_s * 2 ** (failures - 1))
                    log.warning(
                        "batch failed (%s); its offsets are not committed, so it comes again (rows it stored are "
                        "then duplicates); retrying in %.1fs",
                        _short(exc),
                        wait,
                    )
                    self._resubscribe()
                    stop.wait(wait)
                    continue
                if report is not None:
                    idle_since = time.monotonic()
                elif idle_exit_s is not None and time.monotonic() - idle_since >= idle_exit_s:
                    break
        finally:
            self.transport.close()
        return self.stats

    def problem(self, stale_after_s: float = 120.0) -> str | None:
        """Why this worker is not ready (a readiness check), or None: it is retrying a failure (the broker or the
        database is away), or its loop has not come round for `stale_after_s` (stuck), or it has not started."""
        if self.failing:
            return self.failing
        if self.last_step_at is None:
            return "not polling yet"
        stale = time.monotonic() - self.last_step_at
        return f"no poll for {stale:.0f} s (bound {stale_after_s:.0f} s)" if stale > stale_after_s else None

    def _resubscribe(self) -> None:
        # Records polled for the failed batch are uncommitted; leaving and rejoining makes them come again.
        try:
            self.transport.close()
        except TransportError as exc:
            log.warning("closing the consumer after a failure: %s", exc)
        self._subscribed = False
