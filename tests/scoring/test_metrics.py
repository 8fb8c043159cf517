"""scoring.metrics: what a scoring worker exports, recorded from real `BatchReport`s and scraped over HTTP."""

from __future__ import annotations

from collections import Counter

import pytest
from prometheus_client import CollectorRegistry

from core.transport import MemoryBroker, MemoryTransport
from scoring.metrics import MAX_REASONS, WorkerMetrics, batch_hook, reason_class
from scoring.processor import BatchReport as Report
from tests.support.metrics import scrape, served_registry, value


@pytest.fixture
def endpoint():
    with served_registry() as served:
        yield served


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
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    # A hostile producer can invent field names without end; the label set must not grow with them.
    flood = Counter({f"decode: extras.k{chr(65 + i % 26)}{chr(65 + i // 26 % 26)}{i // 676}": 1 for i in range(300)})
    metrics.record_batch(Report(received=300, rejected=300, reject_reasons=flood), 0.1)
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
    hook(Report(received=len(got), stored=len(got)), 0.01)
    lag = scrape(url)
    per_partition = {
        dict(labels)["partition"]: v for (name, labels), v in lag.items() if name == "finsent_consumer_lag"
    }
    assert set(per_partition) == {"0", "1"} and sum(per_partition.values()) == 6
    while consumer.poll(100, 0.1):
        pass
    hook(Report(), 0.01)
    assert {v for (name, _), v in scrape(url).items() if name == "finsent_consumer_lag"} == {0}
    second = MemoryTransport(broker)  # a rebalance: the first consumer keeps one partition, the gauge follows
    second.subscribe(["news.raw"], "g")
    hook(Report(), 0.01)
    assert len([1 for (name, _), _v in scrape(url).items() if name == "finsent_consumer_lag"]) == 1


def test_reject_reason_classes_are_short_and_fold_numbers():
    assert reason_class("invalid UTF-8 at byte 29") == "invalid UTF-N at byte N"
    assert reason_class("message is 2,000,000 bytes, over the 1,048,576-byte limit") == reason_class(
        "message is 3,000,000 bytes, over the 1,048,576-byte limit"
    )
    assert reason_class("tickers.17: Input should be a valid string") == "tickers.N"
    assert len(reason_class("x" * 500)) <= 48 and reason_class("") == "unknown"
