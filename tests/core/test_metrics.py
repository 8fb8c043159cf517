"""core.metrics: what the worker, monitor and feed export, scraped over HTTP from a real /metrics endpoint."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from core.metrics import MAX_REASONS, MonitorMetrics, WorkerMetrics, batch_hook, reason_class, serve_metrics, shared
from core.transport import MemoryBroker, MemoryTransport


def scrape(url: str, **headers: str) -> dict[tuple[str, frozenset], float]:
    """GET a /metrics URL and parse it with prometheus_client's own parser: {(sample name, labels): value}."""
    response = httpx.get(url, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@dataclass
class Report:  # the fields of model.worker.BatchReport that metrics read (the real one is used in tests/model)
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    reject_reasons: Counter = field(default_factory=Counter)


@pytest.fixture
def endpoint():
    """A fresh registry served on a free 127.0.0.1 port: (registry, url)."""
    registry = CollectorRegistry()
    server = serve_metrics(0, "127.0.0.1", registry)
    yield registry, f"http://127.0.0.1:{server.server_address[1]}/metrics"
    server.shutdown()
    server.server_close()


def test_batches_are_counted_and_histogrammed(endpoint):
    registry, url = endpoint
    metrics = WorkerMetrics(registry)
    metrics.record_batch(
        Report(
            received=5,
            stored=3,
            duplicates=1,
            rejected=1,
            latencies_ms=[120.0, 480.0, 2500.0],
            reject_reasons=Counter({"decode: title": 1}),
        ),
        duration_s=0.2,
    )
    metrics.record_batch(Report(received=2, stored=2, latencies_ms=[40.0, 90.0]), duration_s=0.05)
    got = scrape(url)
    assert value(got, "finsent_items_received_total") == 7
    assert value(got, "finsent_items_stored_total") == 5
    assert value(got, "finsent_items_duplicate_total") == 1
    assert value(got, "finsent_items_rejected_total") == 1
    assert value(got, "finsent_rejects_total", stage="decode", reason="title") == 1
    assert value(got, "finsent_batch_size_count") == 2 and value(got, "finsent_batch_size_sum") == 7
    assert value(got, "finsent_batch_size_bucket", le="4.0") == 1  # the batch of 2
    assert value(got, "finsent_batch_seconds_count") == 2
    assert value(got, "finsent_batch_seconds_sum") == pytest.approx(0.25)
    assert value(got, "finsent_latency_seconds_count") == 5
    assert value(got, "finsent_latency_seconds_bucket", le="0.1") == 2  # 40 ms and 90 ms
    assert value(got, "finsent_latency_seconds_bucket", le="0.5") == 4
    assert value(got, "finsent_latency_seconds_sum") == pytest.approx(3.23)
    assert value(got, "finsent_last_batch_timestamp_seconds") > 1.7e9


def test_reject_reason_labels_stay_bounded():
    assert reason_class("invalid UTF-8 at byte 29") == "invalid UTF-N at byte N"
    assert reason_class("message is 2,000,000 bytes, over the 1,048,576-byte limit") == reason_class(
        "message is 3,000,000 bytes, over the 1,048,576-byte limit"
    )
    assert reason_class("tickers.17: Input should be a valid string") == "tickers.N"
    assert len(reason_class("x" * 500)) <= 48 and reason_class("") == "unknown"
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    # A hostile producer can invent field names without end; the label set must not grow with them.
    flood = Counter({f"decode: extras.k{chr(65 + i % 26)}{chr(65 + i // 26 % 26)}{i // 676}": 1 for i in range(300)})
    metrics.record_batch(Report(received=300, rejected=300, reject_reasons=flood))
    reasons = {
        s.labels["reason"]
        for f in registry.collect()
        if f.name == "finsent_rejects"
        for s in f.samples
        if s.name == "finsent_rejects_total"
    }
    assert len(reasons) <= MAX_REASONS + 1 and "other" in reasons
    assert registry.get_sample_value("finsent_rejects_total", {"stage": "decode", "reason": "other"}) > 0
    total = sum(
        s.value
        for f in registry.collect()
        if f.name == "finsent_rejects"
        for s in f.samples
        if s.name == "finsent_rejects_total"
    )
    assert total == 300  # nothing is lost, only folded


def test_consumer_lag_follows_the_memory_transport(endpoint):
    registry, url = endpoint
    broker = MemoryBroker(default_partitions=2)
    producer, consumer = MemoryTransport(broker), MemoryTransport(broker)
    producer.ensure_topics(["news.raw"], partitions=2)
    consumer.subscribe(["news.raw"], "g")
    for i in range(10):
        producer.publish("news.raw", f"k{i}".encode(), b"v")
    assert sum(consumer.lag().values()) == 10
    hook = batch_hook(WorkerMetrics(registry), transport=consumer)
    got = consumer.poll(4, 0.1)
    hook(Report(received=len(got), stored=len(got)))
    lag = scrape(url)
    per_partition = {
        dict(labels)["partition"]: v for (name, labels), v in lag.items() if name == "finsent_consumer_lag"
    }
    assert set(per_partition) == {"0", "1"} and sum(per_partition.values()) == 6
    while consumer.poll(100, 0.1):
        pass
    hook(Report())
    assert {v for (name, _), v in scrape(url).items() if name == "finsent_consumer_lag"} == {0}
    second = MemoryTransport(broker)  # a rebalance: the first consumer keeps one partition, the gauge follows
    second.subscribe(["news.raw"], "g")
    hook(Report())
    assert len([1 for (name, _), _v in scrape(url).items() if name == "finsent_consumer_lag"]) == 1


def test_monitor_gauges_replace_what_they_said_before(endpoint):
    registry, url = endpoint
    metrics = MonitorMetrics(registry)
    metrics.set_state({"firing": 2, "pending": 1}, {"desk": 3, "slack": 1}, {"desk": 2})
    got = scrape(url)
    assert [value(got, "finsent_alerts", state=s) for s in ("pending", "firing", "resolved")] == [1, 2, 0]
    assert value(got, "finsent_notifications_pending", receiver="desk") == 3
    assert value(got, "finsent_notifications_failed", receiver="desk") == 2
    metrics.set_state({"resolved": 3}, {}, {})
    got = scrape(url)
    assert [value(got, "finsent_alerts", state=s) for s in ("pending", "firing", "resolved")] == [0, 0, 3]
    assert value(got, "finsent_notifications_pending", receiver="desk") is None  # delivered: the series is gone


def test_one_set_of_metrics_per_registry():
    registry = CollectorRegistry()
    assert shared(WorkerMetrics, registry) is shared(WorkerMetrics, registry)
    with pytest.raises(ValueError, match="Duplicated"):
        WorkerMetrics(registry)  # why `shared` exists: a registry refuses the same metric twice


def test_the_endpoint_binds_loopback_by_default():
    registry = CollectorRegistry()
    server = serve_metrics(0, registry=registry)
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.shutdown()
        server.server_close()
